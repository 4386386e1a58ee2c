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
    """Every pseudo must be a norm-conserving, scalar-relativistic UPF that slem can read."""
    for kind, pseudo in sorted(pseudos.items()):
        try:
            with pseudo.as_path() as path:
                read_upf(path)
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


SPIN_KEYS = ("nspin", "starting_magnetization", "tot_magnetization", "noncolin", "lspinorb", "lforcet")


def check_spin_unpolarised(parameters: dict) -> str | None:
    """pw.x parameters (a dict of namelists) must describe a spin-unpolarised run: the projection builds one
    H, S and D per frame and the model predicts one spin channel."""
    system = {key.lower(): value for key, value in parameters.get("SYSTEM", {}).items()}
    asked = [
        f"{key}={value!r}"
        for key, value in sorted(system.items())
        if key.split("(")[0] in SPIN_KEYS
        and not (key == "nspin" and value == 1)
        and value not in (False, None)
    ]
    if asked:
        return (
            f"spin is not supported yet (SYSTEM {', '.join(asked)}): the LCAO operators and the model are "
            "spin-unpolarised. Remove these keys from the overrides' pw_parameters"
        )
    return None


def check_structure_and_pseudos(structure: orm.StructureData, pseudos: dict) -> str | None:
    return (
        check_periodic_structure(structure)
        or check_pseudos_cover(structure, pseudos)
        or check_norm_conserving({kind: pseudos[kind] for kind in structure.get_kind_names()})
    )
