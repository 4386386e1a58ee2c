"""Transfer splits of a pipeline: which input structures are held out, and the split of every test frame.

A test frame belongs to one split, reported separately by the validation:

* ``in_distribution``: held-out-temperature snapshots of structures the model trained on;
* ``held_out_structure``: every snapshot of the structure named by ``hold_out_structure``, when a training
  structure has its composition (lonsdaleite after diamond Si); otherwise its frames are a
  ``held_out_composition`` (AlGa3As4 after GaAs, AlAs and AlGaAs2);
* ``held_out_composition``: every snapshot of the structures holding all of ``hold_out_elements``
  (e.g. Si and C: SiC, after training on Si and on C);
* ``larger_cells``: thermally displaced supercells of the training structures (``larger_cells``), a test
  of the strict locality that promises size transfer.

The names are ``slem.evaluate.settings.SPLITS``: the report of ``slem validate`` is keyed by them.
"""

from __future__ import annotations

import math

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from slem.data.dimensionality import mesh_from_distance
from slem.qe.kpoints import folded_points, mesh_points, supercell_mesh

from .dimensionality import structure_vacuum_axes
from .thermal import displaced, repeated

Compositions = dict[str, dict[str, int]]  # {structure label: {element: count}}


def reduced_formula(composition: dict[str, int]) -> tuple:
    """The composition with its counts divided by their common factor: Si8 and Si2 are one composition, GaAs
    and AlGa3As4 are two."""
    factor = math.gcd(*composition.values())
    return tuple(sorted((element, count // factor) for element, count in composition.items()))


def held_out_structures(
    compositions: Compositions, hold_out_structure: str | None, hold_out_elements: list[str] | None
) -> dict[str, str]:
    """{structure label: split} of the structures whose frames are all held out. ``compositions`` maps each
    structure's label to its {element: count}. The structure held out by label is a held-out composition
    when no training structure has its reduced formula (AlGa3As4 after GaAs, AlAs and AlGaAs2), else a
    held-out structure (lonsdaleite after diamond Si)."""
    held = {}
    if hold_out_elements:
        wanted = set(hold_out_elements)
        held.update({label: "held_out_composition" for label, c in compositions.items() if wanted <= set(c)})
    if hold_out_structure is not None:
        training = {label: c for label, c in compositions.items() if label not in held}
        training.pop(hold_out_structure, None)
        trained = {reduced_formula(c) for c in training.values()}
        known = reduced_formula(compositions[hold_out_structure]) in trained
        held[hold_out_structure] = "held_out_structure" if known else "held_out_composition"
    return held


def transfer_problem(
    compositions: Compositions, hold_out_structure: str | None, hold_out_elements: list[str] | None
) -> str | None:
    """Why these hold-out choices cannot give a transfer test, or None; known before any DFT runs."""
    symbols = {label: set(c) for label, c in compositions.items()}
    if hold_out_structure is not None and hold_out_structure not in symbols:
        return f"hold_out_structure {hold_out_structure!r} is not one of the structures {sorted(symbols)}"
    if hold_out_elements is not None:
        if len(set(hold_out_elements)) < 2:
            return (
                f"hold_out_elements {list(hold_out_elements)} must name at least two elements: the "
                "structures holding all of them are held out (e.g. ['Si', 'C'] holds out SiC)"
            )
        if not any(set(hold_out_elements) <= s for s in symbols.values()):
            return (
                f"no structure holds all of hold_out_elements {sorted(hold_out_elements)}; the structures "
                f"hold {dict((k, sorted(v)) for k, v in sorted(symbols.items()))}"
            )
    held = held_out_structures(compositions, hold_out_structure, hold_out_elements)
    training = [label for label in symbols if label not in held]
    if held and not training:
        return f"every structure ({sorted(symbols)}) is held out; keep at least one to train on"
    trained = set().union(*(symbols[label] for label in training)) if training else set()
    for label in sorted(held):
        missing = sorted(symbols[label] - trained)
        if missing:
            return (
                f"held-out structure {label!r} has {missing}, which no training structure has: the model "
                f"would never see {', '.join(missing)}. Add a structure with {', '.join(missing)} to train on"
            )
    return None


def frame_splits(
    snapshots: dict[str, str], held: dict[str, str], larger: set[str] | frozenset = frozenset()
) -> dict[str, str]:
    """{test frame label: split}; ``snapshots`` maps each test frame to its structure's label, ``held``
    is ``held_out_structures``, ``larger`` the frames of larger cells."""
    return {
        frame: "larger_cells" if frame in larger else held.get(structure, "in_distribution")
        for frame, structure in snapshots.items()
    }


def larger_cells_problem(repetitions: list, md: dict) -> str | None:
    if len(repetitions) != 3 or any(not isinstance(n, int) or n < 1 for n in repetitions):
        return (
            "larger_cells must be three positive integers (repetitions of the MD supercell), got "
            f"{repetitions}"
        )
    if all(n == 1 for n in repetitions):
        return "larger_cells [1, 1, 1] is the MD supercell itself; give e.g. [2, 2, 2] for 8x the atoms"
    if "einstein_frequency" not in md:
        return (
            "larger_cells displaces its supercells as in harmonic equilibrium, which needs "
            "md.einstein_frequency (THz); set it, or drop larger_cells"
        )
    return None


@calcfunction
def thermal_supercell(
    structure: orm.StructureData,
    repetitions: orm.List,
    temperature: orm.Float,
    frequency: orm.Float | orm.Dict,
    seed: orm.List,
) -> orm.StructureData:
    """``structure`` repeated and displaced as in harmonic equilibrium at ``temperature``: a larger-cell
    test frame with an environment of its own, not a copy of a trained snapshot."""
    big = repeated(structure, repetitions.get_list())
    return displaced(big, temperature.value, frequency, seed.get_list())


def larger_cell_frames(inputs, held: dict) -> tuple[dict, dict]:
    """One thermally displaced ``larger_cells`` supercell of every training structure at the first held-out
    temperature (else the first training one): ({frame label: StructureData}, {frame label: repetitions of
    the MD supercell}). ``inputs`` are the pipeline's."""
    if "larger_cells" not in inputs:
        return {}, {}
    md = inputs.md
    factors = inputs.larger_cells.get_list()
    repetitions = [a * b for a, b in zip(md.supercell.get_list(), factors, strict=True)]
    temperatures = md.held_out_temperatures.get_list() or md.temperatures.get_list()
    frames = {}
    for number, (label, structure) in enumerate(sorted(inputs.structures.items())):
        if label in held:
            continue
        frames[f"{label}_larger_000"] = thermal_supercell(
            structure,
            orm.List(repetitions),
            orm.Float(temperatures[0]),
            md.einstein_frequency,
            orm.List([md.seed.value, 104729, number]),  # its own stream, apart from the MD runs' seeds
            metadata={"call_link_label": f"larger_{label}"},
        )
    return frames, {frame: list(factors) for frame in frames}


def larger_cell_kpoints(scf: dict, structure: orm.StructureData, factors: list[int]) -> orm.KpointsData:
    """The k-points with which a supercell (``factors`` repetitions of a training frame's cell) samples the
    training frames' Brillouin-zone points (slem/qe/kpoints.py): the mesh n / r where r divides n, else the
    folded points. ``scf`` holds the training SCF's ``kpoints`` or ``kpoints_distance``. Without this a
    single shifted k-point of Si8 against the same point of Si64 (8x as dense) moved the onsite H by 0.2 eV,
    which the size test read as a locality error."""
    points = weights = None
    if "kpoints" in scf:
        try:
            mesh, offset = scf["kpoints"].get_kpoints_mesh()
        except AttributeError:  # an explicit list
            points, weights = scf["kpoints"].get_kpoints(also_weights=True)
    else:
        small = np.array(structure.cell) / np.asarray(factors, dtype=float)[:, None]
        periodic = [not v for v in structure_vacuum_axes(structure)]
        mesh, offset = mesh_from_distance(small, float(scf["kpoints_distance"]), periodic), [0.0, 0.0, 0.0]
    kpoints = orm.KpointsData()
    if points is None:
        exact = supercell_mesh(mesh, offset, factors)
        if exact is not None:
            kpoints.set_kpoints_mesh(*exact)
            return kpoints
        points = mesh_points(mesh, offset)
        weights = np.full(len(points), 1.0 / len(points))
    kpoints.set_cell_from_structure(structure)
    folded, folded_weights = folded_points(points, weights, factors)
    kpoints.set_kpoints(folded, weights=folded_weights)
    return kpoints

