"""PNG plots of a validation: parity of matrix elements and a band-structure overlay."""

from __future__ import annotations

import pathlib

import numpy as np

from .blocks import UNIT


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def parity_plot(path: pathlib.Path, samples: dict[str, tuple[np.ndarray, np.ndarray]], errors: dict) -> None:
    """One panel per operator: predicted against reference matrix elements, MAE in the title."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(samples), figsize=(4 * len(samples), 4), dpi=110, squeeze=False)
    for ax, (op, (ref, pred)) in zip(axes[0], samples.items(), strict=True):
        lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], color="0.6", lw=0.8)
        ax.scatter(ref, pred, s=2, alpha=0.4, color="tab:blue", rasterized=True)
        unit = "meV" if UNIT[op] == "meV" else "dimensionless"
        ax.set_xlabel(f"reference {op} ({unit})")
        ax.set_ylabel(f"predicted {op} ({unit})")
        suffix = " meV" if UNIT[op] == "meV" else ""
        ax.set_title(f"{op}: MAE {errors[op]['all']['mae']:.3g}{suffix}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def band_plot(
    path: pathlib.Path,
    kinfo: dict,
    curves: dict[str, np.ndarray],
    n_valence: int,
    title: str,
    window_eV: float = 4.0,
    zero_label: str = "VBM",
) -> None:
    """Bands along the k-path of ``kinfo``; ``curves`` maps a legend name to (nk_path, nb) energies (eV),
    each already aligned so that its valence-band maximum (``zero_label``: or a metal's E_F) is at zero."""
    plt = _pyplot()
    styles = {
        "pw.x": dict(color="tab:blue", ls="none", marker="o", ms=2.0),
        "LCAO reference": dict(color="k", lw=1.4, alpha=0.7),
        "SLEM": dict(color="tab:red", lw=0.9, ls="--"),
    }
    x = np.asarray(kinfo["x"])
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=120)
    for name, energies in curves.items():
        style = styles.get(name, {})
        ax.plot(x, energies, **style)
        ax.plot([], [], label=name, **style)
    for pos in kinfo["special_x"]:
        ax.axvline(pos, color="0.8", lw=0.5)
    ax.set_xticks(kinfo["special_x"], kinfo["labels"])
    ax.set_xlim(x[0], x[-1])
    # the window follows the references: a poor model can put spurious bands far below them
    references = [e for name, e in curves.items() if name != "SLEM"] or list(curves.values())
    lowest = min(float(e[:, 0].min()) for e in references)
    ax.set_ylim(lowest - 0.5, window_eV)
    ax.axhline(0.0, color="0.5", lw=0.5, ls=":")
    ax.set_ylabel(f"E - {zero_label} (eV)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
