"""``slem basis``: build the confined PAO basis of every element from its UPF into one basis file."""

from __future__ import annotations

import json
from pathlib import Path

import click

from slem.atomic import atomic_open
from slem.basis.atom import valence_states
from slem.basis.generate import (
    DEFAULT_ENERGY_SHIFT_EV,
    DEFAULT_SPLIT_NORM,
    DEFAULT_SPLIT_NORM_3,
    generate_basis,
)
from slem.basis.orbital import ElementBasis, write_basis
from slem.basis.presets import DEFAULT_PRESET, J_MODES, PRESETS, loses_splitting
from slem.data.orbitals import L_LETTERS
from slem.qe.upf import Upf, read_upf


def _parse_radii(specs: tuple[str, ...]) -> tuple[float | None, dict[str, dict[int, float] | float]]:
    """``4.0`` (all elements), ``Si=4.0`` (one element) or ``Si.p=4.5`` (one l of one element)."""
    default: float | None = None
    per_element: dict[str, dict[int, float] | float] = {}
    for spec in specs:
        key, _, value = spec.rpartition("=")
        try:
            radius = float(value)
        except ValueError:
            raise click.BadParameter(f"{spec!r}: expected 4.0, Si=4.0 or Si.p=4.5 (Angstrom)") from None
        if not key:
            default = radius
        elif "." in key:
            element, _, shell = key.partition(".")
            l = L_LETTERS.index(shell) if shell in L_LETTERS else int(shell) if shell.isdigit() else None
            if l is None:
                raise click.BadParameter(f"{spec!r}: the shell after '.' must be s, p, d, f or an integer l")
            entry = per_element.setdefault(element, {})
            if not isinstance(entry, dict):
                raise click.BadParameter(f"{spec!r}: {element} already has one radius for all l")
            entry[l] = radius
        else:
            per_element[key] = radius
    return default, per_element


def _radii_for(upf: Upf, default, per_element):
    if upf.element not in per_element:
        return default
    value = per_element[upf.element]
    if isinstance(value, dict) and default is not None:
        # Only the valence shells take the global radius; the polarisation shell follows its parent.
        return {**{state.l: default for state in valence_states(upf)}, **value}
    return value


def summary_rows(bases: dict[str, ElementBasis]) -> list[str]:
    head = f"{'element':<8}{'label':<6}{'shells':<10}{'n_orb':>6}  {'radii (Angstrom)':<36}eigenvalues (eV)"
    rows = [head, "-" * len(head)]
    for element, basis in sorted(bases.items()):
        radii = " ".join(f"{l}:{v:.2f}" for l, v in basis.params["radii"].items())
        pol = basis.params.get("polarization")
        if pol and abs(pol["r_c"] - basis.params["radii"][L_LETTERS[pol["l"]]]) > 1e-9:
            radii += f" {L_LETTERS[pol['l']]}pol:{pol['r_c']:.2f}"
        eig = " ".join(
            f"{l}:" + ",".join(f"{e:.2f}" for e in v) for l, v in basis.params["eigenvalues"].items()
        )
        rows.append(f"{element:<8}{basis.label:<6}{basis.shells:<10}{basis.n_orbitals:>6}  {radii:<36}{eig}")
    for element, basis in sorted(bases.items()):
        for shell, split in basis.params.get("spin_orbit_splittings", {}).items():
            missed = split["basis_ev"] / split["atom_ev"] - 1.0 if split["atom_ev"] else 0.0
            suggest = basis.params.get("j_resolved") == "off" and loses_splitting(**split)
            hint = "; --j-resolved auto keeps it" if suggest else ""
            rows.append(
                f"{element} {shell}: spin-orbit splitting {1000 * split['basis_ev']:.1f} meV in the basis, "
                f"{1000 * split['atom_ev']:.1f} meV in the atom ({100 * missed:+.2f} %){hint}"
            )
    return rows


def summary_json(bases: dict[str, ElementBasis], output: Path) -> dict:
    labels = sorted({b.label for b in bases.values()})
    return {
        "file": str(output),
        "elements": sorted(bases),
        "label": labels[0] if len(labels) == 1 else "+".join(labels),
        "shells": {el: b.shells for el, b in bases.items()},
        "radii": {el: float(b.cutoff) for el, b in bases.items()},
        "radii_per_l": {el: b.params["radii"] for el, b in bases.items()},
        "n_orbitals": {el: b.n_orbitals for el, b in bases.items()},
        "eigenvalues": {el: b.params["eigenvalues"] for el, b in bases.items()},
        "upf_md5": {el: b.upf_md5 for el, b in bases.items()},
        "upf_name": {el: b.upf_name for el, b in bases.items()},
        "params": {el: {k: v for k, v in b.params.items() if k != "orbitals"} for el, b in bases.items()},
    }


def _write_json(path: Path, data: dict) -> None:
    with atomic_open(path) as handle:
        json.dump(data, handle, indent=2, sort_keys=True)


@click.command("basis")
@click.argument("upfs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--preset", default=DEFAULT_PRESET, show_default=True, type=click.Choice(list(PRESETS), False))
@click.option(
    "--radius",
    "radius",
    multiple=True,
    help="Confinement radius in Angstrom: 4.0 (all), Si=4.0 (one element) or Si.p=4.5; repeatable. "
    "Unset radii are chosen by --energy-shift.",
)
@click.option(
    "--energy-shift",
    default=DEFAULT_ENERGY_SHIFT_EV,
    show_default=True,
    type=float,
    help="Rise of each confined eigenvalue over the free atom's (eV) that fixes unset radii.",
)
@click.option(
    "--split-norm",
    default=DEFAULT_SPLIT_NORM,
    show_default=True,
    type=float,
    help="Norm of the first zeta beyond the second zeta's radius (SIESTA's PAO.SplitNorm).",
)
@click.option(
    "--split-norm-3",
    default=DEFAULT_SPLIT_NORM_3,
    show_default=True,
    type=float,
    help="Split norm of the third zeta (TZP, TZ2P).",
)
@click.option(
    "--j-resolved",
    type=click.Choice(J_MODES),
    default="off",
    show_default=True,
    help="Fully relativistic UPFs: add the radial function of a valence shell's j = l - 1/2 channel, to "
    "every shell with l > 0 ('all') or where the j-averaged zetas lose over 1 % of the atom's spin-orbit "
    "splitting ('auto'; docs/spin-orbit.md).",
)
@click.option("-o", "--output", default="basis.h5", show_default=True, type=click.Path(path_type=Path))
@click.option(
    "--json-summary",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write a JSON summary (elements, label, shells, radii, UPF md5).",
)
def basis(
    upfs, preset, radius, energy_shift, split_norm, split_norm_3, j_resolved, output, json_summary
) -> None:
    """Build a strictly confined pseudo-atomic-orbital basis from norm-conserving UPF files.

    Example: slem basis Si.pbe-rrkj.UPF C.pbe-mt_gipaw.UPF --preset DZP --radius Si=4.3 -o basis.h5
    """
    default, per_element = _parse_radii(radius)
    bases: dict[str, ElementBasis] = {}
    try:
        upf_data = [read_upf(path, spin_orbit=True) for path in upfs]
        elements = [upf.element for upf in upf_data]
        duplicated = sorted({el for el in elements if elements.count(el) > 1})
        if duplicated:
            raise click.UsageError(f"several UPF files for {', '.join(duplicated)}; give one per element")
        unknown = set(per_element) - set(elements)
        if unknown:
            raise click.UsageError(
                f"--radius names {', '.join(sorted(unknown))}, but no UPF for it was given"
            )
        for path, upf in zip(upfs, upf_data, strict=True):
            bases[upf.element] = generate_basis(
                path,
                preset=preset,
                radii=_radii_for(upf, default, per_element),
                energy_shift_ev=energy_shift,
                split_norm=split_norm,
                split_norm_3=split_norm_3,
                j_resolved=j_resolved,
            )
    except click.UsageError:
        raise
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    write_basis(output, bases)
    for row in summary_rows(bases):
        click.echo(row)
    click.echo(f"wrote {output}")
    if json_summary is not None:
        _write_json(json_summary, summary_json(bases, output))
        click.echo(f"wrote {json_summary}")
