"""Input checks shared by the slem CalcJobs and WorkChains; each returns an error message or ``None``
(the form AiiDA port validators use), so bad input is refused before any process node exists."""

from __future__ import annotations

import itertools

import numpy as np
from aiida import orm

from slem.data.neighbors import MIN_DISTANCE_ANGSTROM  # one rule for the pipeline and slem predict
from slem.qe.upf import UpfError, read_upf


def excluded(ctx, *ports: str) -> bool:
    """Whether a WorkChain that exposes this namespace excluded one of ``ports`` (it supplies those itself,
    later): the validator then checks everything else, as aiida-quantumespresso's do. ``ctx`` is the port
    namespace AiiDA passes to a validator; None (a direct call) excludes nothing."""
    return ctx is not None and any(port not in ctx for port in ports)


def check_norm_conserving(pseudos: dict) -> str | None:
    """Every pseudo must be a norm-conserving UPF that slem can read (scalar or fully relativistic: whether
    a fully relativistic one fits the run is ``check_spin_orbit``'s question)."""
    for kind, pseudo in sorted(pseudos.items()):
        try:
            with pseudo.as_path() as path:
                read_upf(path, spin_orbit=True)
        except UpfError as exc:
            return f"pseudopotential for kind {kind}: {exc}"
        except (AttributeError, OSError) as exc:
            return f"pseudopotential for kind {kind} is not a readable UPF file ({exc})"
    return None


def check_pseudos_cover(structure: orm.StructureData, pseudos: dict) -> str | None:
    missing = sorted(set(structure.get_kind_names()) - set(pseudos))
    if missing:
        return (
            f"no pseudopotential for kind(s) {missing} of structure <{structure.pk or 'unstored'}>; "
            f"the family or 'pseudos' gives only {sorted(pseudos)}. Install a family with a norm-conserving "
            "UPF for every element ('aiida-slem setup --pseudo-dir DIR') and use it (--pseudo-family)"
        )
    return None


def check_periodic_structure(structure: orm.StructureData) -> str | None:
    """The projection and pw.x need a 3D-periodic cell, and atoms not on top of each other."""
    if tuple(structure.pbc) != (True, True, True):
        return (
            f"structure <{structure.pk or 'unstored'}> has pbc={tuple(structure.pbc)}; the LCAO operators "
            "are defined for 3D-periodic cells only. Put a molecule or slab in a box with vacuum and "
            "pbc=(True, True, True)"
        )
    if abs(np.linalg.det(np.array(structure.cell))) < 1e-6:
        return f"structure <{structure.pk or 'unstored'}> has a singular cell {structure.cell}"
    closest = min_distance(structure)
    if closest < MIN_DISTANCE_ANGSTROM:
        return (
            f"structure <{structure.pk or 'unstored'}> has atoms {closest:.3f} Angstrom apart (minimum "
            f"{MIN_DISTANCE_ANGSTROM}); remove duplicated or overlapping atoms"
        )
    return None


def min_distance(structure: orm.StructureData) -> float:
    """Shortest distance between two atoms, periodic images included (one image shell suffices here)."""
    cell = np.array(structure.cell)
    positions = np.array([site.position for site in structure.sites])
    shifts = np.array(list(itertools.product((-1, 0, 1), repeat=3))) @ cell
    best = np.inf
    for i in range(len(positions)):
        diff = positions[None, :, :] + shifts[:, None, :] - positions[i]
        dist = np.linalg.norm(diff, axis=-1)
        dist[13, i] = np.inf  # the atom itself (zero shift is index 13)
        best = min(best, float(dist.min()))
    return best


NONCOLLINEAR_KEYS = ("noncolin", "lforcet")
COLLINEAR_HINT = (
    "collinear magnetism is nspin=2 with a starting magnetisation per element: the pipeline's "
    "magnetization={'Fe': 0.4} (submit_pipeline.py --magnetization Fe=0.4) sets both"
)


def _starting_magnetizations(system: dict) -> list[float]:
    """The starting magnetisations a pw.x SYSTEM namelist gives, in aiida-quantumespresso's {kind: value}
    form or as pw.x's own starting_magnetization(i) keys."""
    values = []
    for key, value in system.items():
        if key == "starting_magnetization" and isinstance(value, dict):
            values.extend(float(v) for v in value.values())
        elif key.startswith("starting_magnetization"):
            values.append(float(value))
    return values


def _system(parameters: dict) -> dict:
    """The SYSTEM namelist of pw.x parameters with lower-case keys, as pw.x reads them."""
    return {key.lower(): value for key, value in parameters.get("SYSTEM", {}).items()}


SPIN_ORBIT_HINT = (
    "spin-orbit coupling is noncolin=.true. with lspinorb=.true., no magnetisation and fully relativistic "
    "pseudopotentials: the pipeline's spin_orbit=True (submit_pipeline.py --spin-orbit) sets both"
)


def is_spin_orbit(parameters: dict) -> bool:
    system = _system(parameters)
    return bool(system.get("lspinorb")) and bool(system.get("noncolin"))


def check_spin(parameters: dict) -> str | None:
    """pw.x parameters (a dict of namelists) must describe a spin-unpolarised run, a collinear
    spin-polarised one (nspin=2) that slem project can split into H_up, H_down, D_up and D_down, or a
    non-magnetic spin-orbit one (noncolin + lspinorb)."""
    system = _system(parameters)
    if system.get("lspinorb") and not system.get("noncolin"):
        return f"SYSTEM lspinorb=True needs noncolin=True (pw.x refuses it otherwise): {SPIN_ORBIT_HINT}"
    if is_spin_orbit(parameters):
        magnetic = [m for m in _starting_magnetizations(system) if m] or system.get("lforcet")
        if magnetic or int(system.get("nspin", 1)) != 1 or "tot_magnetization" in system:
            return (
                "spin-orbit coupling with magnetisation (a nonzero starting_magnetization, nspin, lforcet or "
                "tot_magnetization) is not supported: slem projects non-magnetic spin-orbit SCFs, whose "
                f"spinor H is time-reversal symmetric. {SPIN_ORBIT_HINT}"
            )
        return None
    noncollinear = [f"{key}={system[key]!r}" for key in NONCOLLINEAR_KEYS if system.get(key)]
    if noncollinear:
        return (
            f"non-collinear magnetism is not supported (SYSTEM {', '.join(noncollinear)}): slem projects "
            "nspin=1, collinear nspin=2 and non-magnetic spin-orbit SCFs. Remove these keys; "
            + COLLINEAR_HINT + "; " + SPIN_ORBIT_HINT
        )
    if "tot_magnetization" in system:
        return (
            f"SYSTEM tot_magnetization={system['tot_magnetization']!r} fixes the moment with one Fermi level "
            "per spin channel, which slem project does not reproduce: remove it and give a starting "
            "magnetisation"
        )
    nspin = int(system.get("nspin", 1))
    starting = _starting_magnetizations(system)
    if nspin not in (1, 2):
        return f"SYSTEM nspin={nspin}: slem projects nspin=1 and nspin=2 SCFs"
    if nspin == 1 and starting:
        return f"SYSTEM starting_magnetization is set but nspin is 1: {COLLINEAR_HINT}"
    if nspin == 2:
        if system.get("occupations") != "smearing":
            return (
                f"SYSTEM nspin=2 with occupations={system.get('occupations')!r}: a spin-polarised SCF needs "
                "occupations='smearing' (electronic_type='metal'), the one Fermi level slem project solves "
                "for both channels"
            )
        if not any(abs(m) > 0 for m in starting):
            return f"SYSTEM nspin=2 without a nonzero starting_magnetization (pw.x stops): {COLLINEAR_HINT}"
        if any(abs(m) > 1 for m in starting):
            return f"SYSTEM starting_magnetization {starting} lies outside [-1, 1] (pw.x's range)"
    return None


_RELATIVISTIC: dict[str, bool] = {}  # UPF md5 -> fully relativistic; a family's files are read once


def relativistic_kinds(pseudos: dict) -> dict[str, bool]:
    """{kind: whether its UPF is fully relativistic}; unreadable files are left out (check_norm_conserving
    names them)."""
    relativistic = {}
    for kind, pseudo in sorted(pseudos.items()):
        key = getattr(pseudo, "md5", None)
        value = _RELATIVISTIC.get(key)
        if value is None:
            try:
                with pseudo.as_path() as path:
                    value = read_upf(path, spin_orbit=True).spin_orbit
            except (UpfError, AttributeError, OSError):
                continue
            if key is not None:
                _RELATIVISTIC[key] = value
        relativistic[kind] = value
    return relativistic


def check_spin_orbit(parameters: dict, pseudos: dict) -> str | None:
    """A spin-orbit run needs fully relativistic pseudopotentials, and a fully relativistic file needs a
    spin-orbit run: without lspinorb pw.x merges its j = l +- 1/2 projectors in a way slem does not
    reproduce. Both are known before any pw.x run."""
    relativistic = relativistic_kinds(pseudos)
    if is_spin_orbit(parameters) and not any(relativistic.values()):
        return (
            f"a spin-orbit run (lspinorb) with scalar-relativistic pseudopotentials only ({sorted(pseudos)}) "
            "has no spin-orbit coupling: use a fully relativistic family (aiida-slem setup --pseudo-dir with "
            "the PseudoDojo FR files, then --pseudo-family)"
        )
    if not is_spin_orbit(parameters) and any(relativistic.values()):
        kinds = sorted(k for k, v in relativistic.items() if v)
        return (
            f"fully relativistic pseudopotential(s) for {kinds} without lspinorb: pw.x would merge their "
            "j = l +- 1/2 projectors in a way slem project does not reproduce. Use a scalar-relativistic "
            "family, or turn spin-orbit on (spin_orbit=True, submit_pipeline.py --spin-orbit)"
        )
    return None


def is_spin_polarised(parameters: dict) -> bool:
    return int(_system(parameters).get("nspin", 1)) == 2


def check_structure_and_pseudos(structure: orm.StructureData, pseudos: dict) -> str | None:
    return (
        check_periodic_structure(structure)
        or check_pseudos_cover(structure, pseudos)
        or check_norm_conserving({kind: pseudos[kind] for kind in structure.get_kind_names()})
    )


def check_run(structure: orm.StructureData, pseudos: dict, parameters: dict) -> str | None:
    """``check_structure_and_pseudos``, then whether the pw.x parameters fit the structure's own
    pseudopotentials (``check_spin_orbit``), which needs every kind to have one."""
    return check_structure_and_pseudos(structure, pseudos) or check_spin_orbit(
        parameters, {kind: pseudos[kind] for kind in structure.get_kind_names()}
    )
