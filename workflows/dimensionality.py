"""The vacuum rule (``slem.data.dimensionality``) applied to StructureData: k-points and supercells of
sheets.

A monolayer is a 3D-periodic cell with a vacuum gap (pw.x and the projection need 3D periodicity, and
``calcjobs/checks.py`` refuses pbc other than all True), so its vacuum axis is found from the geometry.
Along it the bands do not disperse: one k-point (no 0.5 offset), and no supercell repetition (stacked
sheets with a 15 Angstrom gap would double the cost and sample nothing new).
"""

from __future__ import annotations

import numpy as np
from aiida import orm

from slem.data.dimensionality import in_plane_mesh, in_plane_repetitions, mesh_from_distance, vacuum_axes


def structure_vacuum_axes(structure: orm.StructureData) -> tuple[bool, bool, bool]:
    positions = np.array([site.position for site in structure.sites]).reshape(-1, 3)
    return vacuum_axes(np.array(structure.cell), positions, structure.pbc)


def is_sheet(structure: orm.StructureData) -> bool:
    return any(structure_vacuum_axes(structure))


def in_plane_kpoints(structure: orm.StructureData, mesh, offset) -> orm.KpointsData:
    """``mesh`` and ``offset`` with one unshifted k-point along the vacuum axes of ``structure``."""
    mesh, offset = in_plane_mesh(mesh, offset, structure_vacuum_axes(structure))
    kpoints = orm.KpointsData()
    kpoints.set_kpoints_mesh(mesh, offset)
    return kpoints


def kpoints_from_distance(structure: orm.StructureData, distance: float) -> orm.KpointsData:
    """The mesh PwBaseWorkChain makes from ``kpoints_distance`` (ceil(|b_i| / distance), b with 2 pi, in
    1/Angstrom), but with one k-point along vacuum axes, which aiida only does for pbc False."""
    periodic = [not v for v in structure_vacuum_axes(structure)]
    kpoints = orm.KpointsData()
    kpoints.set_kpoints_mesh(
        mesh_from_distance(np.array(structure.cell), distance, periodic), [0.0, 0.0, 0.0]
    )
    return kpoints


def in_plane_supercell(structure: orm.StructureData, repetitions) -> list[int]:
    return in_plane_repetitions(repetitions, structure_vacuum_axes(structure))


def sheet_problem(structure: orm.StructureData, repetitions, kpoints: orm.KpointsData | None) -> str | None:
    """Why ``repetitions`` or a k-mesh ``kpoints`` do not fit a sheet, with the fix; None if they do."""
    vacuum = structure_vacuum_axes(structure)
    if not any(vacuum):
        return None
    axes = [i for i, v in enumerate(vacuum) if v]
    if any(int(repetitions[i]) != 1 for i in axes):
        return (
            f"the structure is a sheet (vacuum along cell axis {axes}: slem.data.dimensionality) but the "
            f"supercell {list(repetitions)} repeats it along the vacuum; use "
            f"{in_plane_repetitions(repetitions, vacuum)} (get_builder_from_protocol does)"
        )
    if kpoints is None:
        return None
    try:
        mesh, offset = kpoints.get_kpoints_mesh()
    except AttributeError:
        return None  # an explicit k-point list is the user's choice
    if any(mesh[i] != 1 or offset[i] != 0 for i in axes):
        fixed = in_plane_mesh(mesh, offset, vacuum)
        return (
            f"the structure is a sheet (vacuum along cell axis {axes}) but the k-mesh {list(mesh)} with "
            f"offset {list(offset)} samples along the vacuum; use mesh {fixed[0]} offset {fixed[1]}"
        )
    return None
