"""``electronic_type`` of the protocols: 'insulator' (fixed occupations) or 'metal' (smearing).

The pw.x settings of each type live in the protocol YAMLs under ``electronic_types``; they are the base
that the protocol's own ``pw_parameters`` and the user's overrides are merged onto, so an explicit
``pw_parameters.SYSTEM.degauss`` still wins. Metals also get enough bands for the smearing tail: with too
few, PwBaseWorkChain's band-occupation check restarts the calculation from scratch with 5 % more bands,
which for an MD run repeats every step done so far.
"""

from __future__ import annotations

import math

from aiida_quantumespresso.workflows.protocols.utils import recursive_merge
from aiida_slem.calcjobs.checks import is_spin_orbit

from slem.projection.occupations import SMEARING_ALIASES

ELECTRONIC_TYPES = ("insulator", "metal")


def apply_electronic_type(inputs: dict, electronic_type: str | None = None) -> dict:
    """Protocol inputs with ``electronic_types[<type>].pw_parameters`` under ``pw_parameters``.

    ``electronic_type`` (the builder's argument) wins over ``inputs['electronic_type']`` (protocol or
    overrides)."""
    kind = electronic_type or inputs.get("electronic_type") or "insulator"
    if kind not in ELECTRONIC_TYPES:
        raise ValueError(
            f"electronic_type {kind!r} is unknown; use 'insulator' (fixed occupations) or 'metal' (smearing)"
        )
    settings = (inputs.get("electronic_types") or {}).get(kind) or {}
    merged = dict(inputs, electronic_type=kind)
    merged["pw_parameters"] = recursive_merge(settings.get("pw_parameters", {}), inputs["pw_parameters"])
    if "kpoints_distance" in settings:
        # A metal's Fermi surface needs a k-mesh the cell's size sets: the fast protocols' one shifted
        # k-point put Al4's pw.x Fermi level 4 eV from the converged one. The type's k-point distance
        # therefore replaces the protocol's fixed mesh (override electronic_types.<type> to change it).
        merged.pop("kpoints_mesh", None)
        merged.pop("kpoints_offset", None)
        merged["kpoints_distance"] = float(settings["kpoints_distance"])
    return merged


def smearing_bands(inputs: dict, parameters: dict, n_electrons: float) -> dict:
    """``parameters`` with SYSTEM.nbnd = ceil(factor * N/2) + extra for smeared runs that set no nbnd."""
    system = parameters.get("SYSTEM", {})
    bands = ((inputs.get("electronic_types") or {}).get(inputs.get("electronic_type")) or {}).get("bands")
    if system.get("occupations") != "smearing" or "nbnd" in system or not bands:
        return parameters
    return {**parameters, "SYSTEM": {**system, "nbnd": smeared_band_count(bands, n_electrons, parameters)}}


def smeared_band_count(bands: dict, n_electrons: float, parameters: dict) -> int:
    """nbnd = ceil(factor * N/2) + extra of ``bands``, doubled for spinor bands (one electron each)."""
    nbnd = math.ceil(bands["factor"] * n_electrons / 2) + int(bands["extra"])
    return 2 * nbnd if is_spin_orbit(parameters) else nbnd


def valence_electrons(structure, pseudos: dict, repetitions: int = 1) -> float:
    """Valence electrons of ``structure`` (times ``repetitions`` for a supercell) from the UPFs' z_valence."""
    return repetitions * sum(float(pseudos[site.kind_name].z_valence) for site in structure.sites)


def check_occupations(parameters: dict) -> str | None:
    """Why the SCF's occupations cannot give a density matrix, or None."""
    system = parameters.get("SYSTEM", {})
    occupations = system.get("occupations")
    if occupations == "fixed":
        return None
    if occupations == "smearing":
        smearing = str(system.get("smearing", "gaussian")).lower()
        if smearing not in SMEARING_ALIASES:
            return (
                f"SYSTEM.smearing {smearing!r} is not a pw.x smearing slem project reproduces; use 'mv' "
                "(cold), 'mp', 'gaussian' or 'fd'"
            )
        if float(system.get("degauss", 0.0)) <= 0.0:
            return "SYSTEM.occupations 'smearing' needs SYSTEM.degauss > 0 (Ry), e.g. 0.02"
        return None
    return (
        f"SYSTEM.occupations must be 'fixed' (insulators) or 'smearing' (metals, e.g. smearing 'mv', degauss "
        f"0.02) for the density matrix, got {occupations!r}; electronic_type='metal' in "
        "get_builder_from_protocol sets the latter"
    )


def smearing_fallback_problem(fallback: dict) -> str | None:
    """Why ``fallback`` ({smearing, degauss, bands: {factor, extra}}) cannot rerun a stalled SCF, or None."""
    unknown = set(fallback) - {"smearing", "degauss", "bands"}
    if unknown:
        return f"smearing_fallback takes smearing, degauss and bands, not {sorted(unknown)}"
    system = {"occupations": "smearing", **{k: fallback[k] for k in ("smearing", "degauss") if k in fallback}}
    error = check_occupations({"SYSTEM": system})
    if error:
        return f"smearing_fallback: {error}"
    bands = fallback.get("bands") or {}
    if set(bands) != {"factor", "extra"} or float(bands["factor"]) < 1.0 or int(bands["extra"]) < 0:
        return "smearing_fallback.bands must be {factor: >= 1, extra: >= 0}; nbnd = ceil(factor*N/2) + extra"
    return None


def smeared_parameters(parameters: dict, fallback: dict, n_electrons: float) -> dict:
    """pw.x ``parameters`` of a fixed-occupation SCF rerun with ``fallback``'s smearing and enough bands."""
    system = dict(parameters.get("SYSTEM", {}))
    system.update(
        occupations="smearing",
        smearing=fallback["smearing"],
        degauss=float(fallback["degauss"]),
        nbnd=smeared_band_count(fallback["bands"], n_electrons, parameters),
    )
    return {**parameters, "SYSTEM": system}


def electronic_stall(scf) -> int | None:
    """PK of the last pw.x run of the failed PwBaseWorkChain ``scf`` when that run stopped because its
    electronic loop never converged (PwCalculation exit 410), else None."""
    from aiida.plugins import CalculationFactory

    pw = CalculationFactory("quantumespresso.pw")
    runs = sorted(
        (c for c in scf.called if c.process_type == pw.build_process_type()), key=lambda c: c.ctime
    )
    stalled = pw.exit_codes.ERROR_ELECTRONIC_CONVERGENCE_NOT_REACHED.status
    if scf.is_finished_ok or not runs or runs[-1].exit_status != stalled:
        return None
    return runs[-1].pk


def smearing_fallback(inputs: dict, parameters: dict) -> dict | None:
    """The protocol's ``smearing_fallback`` for an SCF with fixed occupations, else None (a smeared SCF has
    nothing to fall back to)."""
    fallback = inputs.get("smearing_fallback")
    if not fallback or parameters.get("SYSTEM", {}).get("occupations") != "fixed":
        return None
    return dict(fallback)
