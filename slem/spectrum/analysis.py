"""Band edges and DOS of one frame: sparse H(k), S(k) -> KPM DOS -> shift-invert edges, with timings.

``frame_spectrum`` is what ``slem spectrum`` and ``benchmarks/spectrum.py`` run. Energies are in eV; the DOS
counts states of H c = E S c per eV per cell without spin (it integrates to the number of orbitals), so
the electron count is twice the integrated DOS. A spin-orbit frame is solved as its spinor H (twice the
orbitals, complex Hermitian even at Gamma): its DOS counts spinor states, each holding one electron.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable

import numpy as np
import scipy.sparse

from slem.data.frame import Frame
from slem.data.operators import channel_names, has_spin_orbit

from .edges import band_edges, channel_occupations, occupied_states
from .kpm import KpmMoments, kpm_moments
from .overlap import LU_MAX_ORBITALS, OverlapSolver, lanczos_bounds
from .sparse import BlochPattern, missing_partners

# S conditioning above which "auto" solves with a sparse LU (if the size allows) instead of CG
CG_MAX_CONDITION = 1.0e3


class SpectrumError(ValueError):
    """The frame cannot give a spectrum (no H or S, no electron count)."""


def electron_count(frame: Frame) -> tuple[float, str]:
    """(N_electrons, where it came from): the frame's ``n_electrons`` metadata (projected frames), else
    Tr(D S) = sum over blocks of D_ij(R) * S_ij(R) elementwise (predicted frames with D), rounded."""
    if frame.metadata.get("n_electrons"):
        return float(frame.metadata["n_electrons"]), "metadata"
    densities = channel_names(frame.operators, "D")  # D, or D_up and D_down
    if densities and "S" in frame.operators:
        weight = 1.0 + missing_partners(frame)
        d = sum(frame.operators[name] for name in densities)
        offsets = frame.block_offsets[:-1]
        per_pair = np.add.reduceat(d * frame.operators["S"], offsets) if len(frame.pairs) else np.zeros(0)
        total = float((per_pair * weight).sum())
        return float(round(total)), f"Tr(DS) = {total:.4f}"
    raise SpectrumError(
        "the frame has no n_electrons in its metadata and no D to count them; give the electron count"
    )


def channel_moments(hs, s, overlap, overlap_bounds, n_moments, n_vectors, seed) -> list[KpmMoments]:
    """KPM moments of each spin channel's pencil (H_c, S), on one interval (the union of the channels'
    Lanczos bounds) so that their moments add up to those of the block-diagonal pencil."""
    if len(hs) == 1:
        return [
            kpm_moments(hs[0], s, n_moments, n_vectors, seed, overlap=overlap, overlap_bounds=overlap_bounds)
        ]
    bounds = [lanczos_bounds(h, s, overlap.solve, steps=40, seed=seed)[:2] for h in hs]
    interval = (min(b[0] for b in bounds), max(b[1] for b in bounds))
    return [
        kpm_moments(
            h, s, n_moments, n_vectors, seed, overlap=overlap, bounds=interval, overlap_bounds=overlap_bounds
        )
        for h in hs
    ]


def summed(channels: list[KpmMoments]) -> KpmMoments:
    """The moments of the block-diagonal pencil: the channels' sum (same interval, same random vectors)."""
    first = channels[0]
    info = {**first.info, "seconds": sum(c.info.get("seconds", 0.0) for c in channels)}
    return KpmMoments(
        sum(c.per_vector for c in channels),
        first.centre,
        first.half_width,
        sum(c.n_orbitals for c in channels),
        (min(c.spectrum[0] for c in channels), max(c.spectrum[1] for c in channels)),
        info,
    )


def channel_counts(channels: list[KpmMoments], level: float) -> dict:
    """States of each spin channel below ``level`` (KPM) and the moment they give: one electron per state,
    so M = N_up - N_down (mu_B per cell), with its stochastic standard error."""
    below = [float(c.integrated(np.array([level]))[0]) for c in channels]
    errors = [float(c.integrated_error(np.array([level]))[0]) for c in channels]
    return {
        "channel_count_level_eV": float(level),
        "states_below_level_up": below[0],
        "states_below_level_down": below[1],
        "magnetization_mub": below[0] - below[1],
        "magnetization_error_mub": float(np.hypot(*errors)),
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB (Linux ru_maxrss is in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def occupation_line(occupations: dict) -> str:
    up, down = occupations["occupied_up"], occupations["occupied_down"]
    line = f"channels: {up:g} up and {down:g} down states occupied (inertia)"
    if "fermi_multiplet" in occupations:
        multiplet = occupations["fermi_multiplet"]
        low, high = occupations["magnetization_range_mub"]
        line += (
            f"; states N and N + 1 are degenerate: {multiplet['electrons']:g} electrons in a multiplet of "
            f"{multiplet['states_up']} up + {multiplet['states_down']} down states, filled equally (integer "
            f"fillings give {low:g} to {high:g} mu_B)"
        )
    return line


def frame_spectrum(
    frame: Frame,
    kpt=(0.0, 0.0, 0.0),
    n_electrons: float | None = None,
    n_moments: int = 256,
    n_vectors: int = 8,
    edges: bool = True,
    nearest: int = 4,
    overlap_solver: str = "auto",
    energies: np.ndarray | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    points: int = 2001,
) -> dict:
    """Sparse H(k), S(k), the KPM DOS and (``edges``) the HOMO/LUMO by shift-invert with inertia.

    ``energies``: the DOS grid (default ``points`` energies over the spectrum, 1 eV margins).
    Returns a JSON-ready dict of scalars plus numpy arrays ``energies_eV``, ``dos_states_per_eV``,
    ``integrated_dos`` and ``edge_eigenvalues_eV``; per-stage wall and CPU seconds and the peak RSS (before
    the edges' factorization and at the end) in ``timings``."""
    say = log or (lambda _: None)
    timings: dict[str, float] = {}
    clock = {}

    def begin() -> None:
        clock.update(wall=time.perf_counter(), cpu=time.process_time())

    def end(stage: str) -> None:
        # wall and process CPU seconds: on a shared machine the CPU time is the steadier number
        timings[f"{stage}_s"] = time.perf_counter() - clock["wall"]
        timings[f"{stage}_cpu_s"] = time.process_time() - clock["cpu"]

    result: dict = {"n_atoms": frame.n_atoms, "kpoint_reduced": [float(x) for x in np.ravel(kpt)]}
    channels = channel_names(frame.operators, "H")
    if not channels or "S" not in frame.operators:
        raise SpectrumError(f"the frame holds {sorted(frame.operators)}; a spectrum needs H and S")
    spinor = has_spin_orbit(frame.operators)
    # electrons per state: a spinor state holds one, and so does a state of one spin channel (H_up, H_down
    # are solved as one block-diagonal pencil, filled to one Fermi level)
    per_state = 1 if spinor or len(channels) > 1 else 2
    result.update(spinor=spinor, electrons_per_state=per_state, spin_channels=channels)
    if n_electrons is None:
        n_electrons, source = electron_count(frame)
    else:
        source = "given"
    result.update(n_electrons=float(n_electrons), n_electrons_source=source)
    say(f"electrons: {n_electrons:g} ({source})")
    if source.startswith("Tr(DS)"):
        total = float(source.split("=")[1])
        if abs(total - round(total)) > 0.05:
            # a trained D gives an integer to a few 1e-3; far from one, the count (and the edges) are guesses
            result["n_electrons_warning"] = (
                f"Tr(DS) = {total:.3f} is not close to an integer: the predicted D is unreliable; give the "
                "electron count"
            )
            say(f"warning: {result['n_electrons_warning']}")

    begin()
    hs, s_channel = BlochPattern(frame).channels(kpt)
    h, s = hs[0], s_channel
    if len(hs) > 1:
        h = scipy.sparse.block_diag(hs, format="csr")
        s = scipy.sparse.block_diag([s_channel] * len(hs), format="csr")
    end("assembly")
    result.update(n_orbitals=int(h.shape[0]), nnz=int(h.nnz), dtype=str(h.dtype))
    kind = "spinor orbitals" if spinor else ("spin orbitals (up, down)" if len(hs) > 1 else "orbitals")
    say(f"H(k), S(k): {h.shape[0]} {kind}, {h.nnz} entries in H, {h.dtype} ({timings['assembly_s']:.1f} s)")

    begin()
    s_low, s_high, info = lanczos_bounds(s_channel, steps=40, seed=seed)
    if info["ritz_low"] <= 0:
        raise SpectrumError(
            f"S(k) is not positive definite (Lanczos finds an eigenvalue {info['ritz_low']:.3e}); the "
            "overlap blocks are unphysical (train S longer) or incomplete"
        )
    s_low = s_low if s_low > 0 else 0.5 * info["ritz_low"]
    condition = s_high / s_low
    method = overlap_solver
    if method == "auto":
        method = "lu" if condition > CG_MAX_CONDITION and h.shape[0] <= LU_MAX_ORBITALS else "cg"
    overlap = OverlapSolver(s_channel, method, rtol=1e-5)
    result["overlap"] = {
        "smallest_eigenvalue_bound": s_low,
        "largest_eigenvalue_bound": s_high,
        "condition_bound": condition,
        "solver": method,
    }
    end("overlap")

    begin()
    per_channel = channel_moments(
        hs, s_channel, overlap, (0.95 * s_low, 1.02 * s_high), n_moments, n_vectors, seed
    )
    moments = per_channel[0] if len(hs) == 1 else summed(per_channel)
    end("kpm")
    n_states = n_electrons / per_state
    fermi = moments.level(n_states)
    if energies is None:
        energies = np.linspace(moments.spectrum[0] - 1.0, moments.spectrum[1] + 1.0, points)
    dos, integrated = moments.dos(energies), moments.integrated(energies)
    result["kpm"] = {
        "n_moments": n_moments,
        "n_vectors": n_vectors,
        "kernel": "jackson",
        "resolution_eV": moments.resolution,
        "spectrum_eV": list(moments.spectrum),
        "scaled_interval_eV": [moments.centre - moments.half_width, moments.centre + moments.half_width],
        "integrated_total": float(moments.integrated(np.array([moments.centre + moments.half_width]))[0]),
        "fermi_level_eV": fermi,
        **{k: v for k, v in moments.info.items() if k != "seconds"},
    }
    say(
        f"KPM: {n_moments} moments, {n_vectors} vectors, spectrum {moments.spectrum[0]:.3f} .. "
        f"{moments.spectrum[1]:.3f} eV, E_F ~ {fermi:.3f} eV ({timings['kpm_s']:.1f} s)"
    )
    result.update(energies_eV=energies, dos_states_per_eV=dos, integrated_dos=integrated)
    if len(hs) > 1:
        result.update(
            dos_up_states_per_eV=per_channel[0].dos(energies),
            dos_down_states_per_eV=per_channel[1].dos(energies),
        )
    timings["peak_rss_before_edges_mb"] = peak_rss_mb()  # assembly and KPM: linear in the atoms

    result["edges"] = None
    edge_values = np.zeros(0)
    if edges:
        begin()
        found = band_edges(
            h, s, n_electrons, fermi, k=nearest, integrated=moments.integrated, per_state=per_state
        )
        end("edges")
        result["edges"] = {k: v for k, v in found.as_dict().items() if k != "eigenvalues_eV"}
        edge_values = found.eigenvalues
        midgap = 0.5 * (found.homo + found.lumo)
        counted = float(moments.integrated(np.array([midgap]))[0])
        error = float(moments.integrated_error(np.array([midgap]))[0])
        result["kpm"]["states_below_midgap"] = counted
        result["kpm"]["states_below_midgap_error"] = error
        exact = occupied_states(n_electrons, per_state)
        result["kpm"]["states_below_midgap_exact"] = exact
        say(
            f"edges: HOMO {found.homo:.4f} eV, LUMO {found.lumo:.4f} eV, gap {found.gap:.4f} eV "
            f"(inertia {found.inertia}, {len(found.history)} factorization(s), {timings['edges_s']:.1f} s); "
            f"KPM counts {counted:.1f} +- {error:.1f} states below mid-gap, exact {exact}"
        )
    if len(hs) > 1:
        # between the exact states N and N+1 when the edges were found; else the KPM estimate of E_F
        level = 0.5 * (found.homo + found.lumo) if edges else fermi
        result["kpm"].update(channel_counts(per_channel, level))
        if edges:
            # exact at this k: the inertia of H_c - E S counts channel c's states below E
            begin()
            occupations = channel_occupations(hs, s_channel, n_electrons, found.homo, found.lumo)
            end("channel_inertia")
            if occupations is not None:
                result["edges"].update(occupations)
                say(occupation_line(occupations))
    result["edge_eigenvalues_eV"] = edge_values
    timings["peak_rss_mb"] = peak_rss_mb()
    result["timings"] = timings
    return result
