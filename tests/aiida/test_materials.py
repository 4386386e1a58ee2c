"""Built-in ``--material`` cells: sizes, bond lengths, sheets by the vacuum rule, metals flagged."""

from __future__ import annotations

import numpy as np
import pytest

import submit_pipeline
from aiida_slem.materials import MATERIALS, electronic_type, material_names
from slem.data.dimensionality import VACUUM_GAP_ANGSTROM, vacuum_axes, vacuum_gaps

# nearest-neighbour distances (Angstrom) that the lattice constants must reproduce
BONDS = {
    "Al": 4.05 / 2**0.5,
    "Cu": 3.615 / 2**0.5,
    "GaAs": 5.653 * 3**0.5 / 4,
    "GaN": 1.95,  # wurtzite Ga-N, u = 0.377
    "graphene": 2.46 / 3**0.5,
    "hBN": 2.504 / 3**0.5,
    "HfO2": 5.08 * 3**0.5 / 4,
    "MoS2": 2.41,  # Mo-S in 2H MoS2 with a = 3.18, S-S 3.13
    "Si_4H": 3.84 * 3**0.5 / 8**0.5,
    "Si_hex": 3.84 * 3**0.5 / 8**0.5,
}
SHEETS = {"graphene", "hBN", "MoS2"}


@pytest.mark.parametrize("name", material_names())
def test_every_material_is_small_periodic_and_2d_only_if_a_sheet(name):
    atoms = MATERIALS[name].build()
    assert len(atoms) <= 12 and atoms.pbc.all()  # the projection refuses pbc other than all True
    vacuum = vacuum_axes(atoms.cell[:], atoms.positions)
    assert vacuum == ((False, False, True) if name in SHEETS else (False, False, False))
    if name in SHEETS:
        assert vacuum_gaps(atoms.cell[:], atoms.positions)[2] >= 15.0 > VACUUM_GAP_ANGSTROM
    if name in BONDS:
        distances = atoms.get_all_distances(mic=True)
        nearest = distances[distances > 0].min()
        assert nearest == pytest.approx(BONDS[name], abs=0.01)


def test_4h_silicon_has_diamond_and_lonsdaleite_sites():
    from ase.neighborlist import neighbor_list

    def third_neighbours(atoms):
        """Per atom, its nearest distance beyond the 12 second neighbours at a_hex: 3.92 A eclipsed
        (hexagonal site), 4.50 A staggered (cubic site)."""
        i, d = neighbor_list("id", atoms, 4.6)
        return sorted(round(float(np.sort(d[i == k])[16]), 2) for k in range(len(atoms)))

    assert third_neighbours(MATERIALS["Si_4H"].build()) == [3.92] * 4 + [4.5] * 4
    assert set(third_neighbours(MATERIALS["Si_hex"].build())) == {3.92}
    assert set(third_neighbours(MATERIALS["Si"].build())) == {4.5}


def test_algaas_alloys_cation_shells():
    """Per Al, its 12 cation second neighbours at a / sqrt 2: AlGaAs2 mixes them (4 Al, 8 Ga), AlGa3As4 has
    only Ga; every As of AlGa3As4 binds one Al and three Ga, an environment no other III-V cell has (Al3GaAs4,
    its mirror, three Al and one Ga)."""
    from ase.neighborlist import neighbor_list

    def shells(name, centre, lo, hi):
        atoms = MATERIALS[name].build()
        symbols = np.array(atoms.get_chemical_symbols())
        i, j, d = neighbor_list("ijd", atoms, hi)
        return {
            k: sorted(symbols[j[(i == k) & (d > lo)]].tolist())
            for k in range(len(atoms))
            if symbols[k] == centre
        }

    second = 5.655 / 2**0.5
    mixed = shells("AlGaAs2", "Al", second - 0.1, second + 0.1)
    assert all(s == ["Al"] * 4 + ["Ga"] * 8 for s in mixed.values())
    assert list(shells("AlGa3As4", "Al", second - 0.1, second + 0.1).values()) == [["Ga"] * 12]
    bond = 5.655 * 3**0.5 / 4
    assert all(s == ["Al", "Ga", "Ga", "Ga"] for s in shells("AlGa3As4", "As", 0.0, bond + 0.1).values())
    # the mirror: its Ga sees only Al, its As three Al and one Ga
    assert list(shells("Al3GaAs4", "Ga", second - 0.1, second + 0.1).values()) == [["Al"] * 12]
    assert all(s == ["Al", "Al", "Al", "Ga"] for s in shells("Al3GaAs4", "As", 0.0, bond + 0.1).values())


def test_mos2_sulphur_planes_are_3_13_apart():
    atoms = MATERIALS["MoS2"].build()
    z = atoms.positions[np.array(atoms.get_chemical_symbols()) == "S", 2]
    assert abs(z[0] - z[1]) == pytest.approx(3.13)


def test_metals_are_flagged_and_mixing_them_with_insulators_is_refused(aiida_profile):
    metals = sorted(n for n in MATERIALS if MATERIALS[n].electronic_type == "metal")
    assert metals == ["Al", "Cu", "Fe", "Ni", "graphene"]
    # the ferromagnets are the magnetic ones, and nspin=2 needs their smeared occupations
    assert sorted(n for n in MATERIALS if MATERIALS[n].magnetization) == ["Fe", "Ni"]
    assert electronic_type(["Al", "Cu"]) == "metal" and electronic_type(["Si", "SiC"]) == "insulator"
    with pytest.raises(SystemExit, match="run the metals in a pipeline of their own"):
        args = submit_pipeline.parse_args(["--material", "C", "--material", "graphene"])
        submit_pipeline.load_structures(args)


def test_material_choices_are_sorted_and_reach_the_structures(aiida_profile):
    assert material_names() == sorted(material_names(), key=str.lower)
    args = submit_pipeline.parse_args(["--material", "hBN", "--material", "MoS2"])
    structures = submit_pipeline.load_structures(args)
    assert {k: s.get_formula() for k, s in structures.items()} == {"hBN": "BN", "MoS2": "MoS2"}
    assert all(s.pbc == (True, True, True) for s in structures.values())


def test_a_built_in_metal_asks_the_pipeline_for_smearing(aiida_profile):
    assert submit_pipeline.pipeline_overrides(submit_pipeline.parse_args(["--material", "Al"])) == {
        "electronic_type": "metal"
    }
    assert "electronic_type" not in submit_pipeline.pipeline_overrides(
        submit_pipeline.parse_args(["--material", "GaAs"])
    )
    # an explicit override wins
    args = submit_pipeline.parse_args(["--material", "Cu", "--overrides", '{"electronic_type": "insulator"}'])
    assert submit_pipeline.pipeline_overrides(args)["electronic_type"] == "insulator"
