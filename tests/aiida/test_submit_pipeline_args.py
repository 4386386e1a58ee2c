"""``submit_pipeline.py``: structures from --material/--structure, --hold-out, and their errors."""

from __future__ import annotations

import pytest
from aiida_slem.workflows.pipeline import SlemPipelineWorkChain

import submit_pipeline


def _structures(*argv: str):
    return submit_pipeline.load_structures(submit_pipeline.parse_args(list(argv)))


def test_default_is_the_8_atom_si_cell(aiida_profile):
    structures = _structures()
    assert list(structures) == ["Si"] and len(structures["Si"].sites) == 8


def test_two_polymorphs_with_one_held_out_reach_the_builder(aiida_profile, codes, pseudo_family, tmp_path):
    import ase.io
    from ase.build import bulk

    ase.io.write(tmp_path / "strained si.cif", bulk("Si", "diamond", a=5.6, cubic=True))
    structures = _structures("--material", "Si", "--material", "Si_hex",
                             "--structure", str(tmp_path / "strained si.cif"), "--hold-out", "Si_hex")
    assert list(structures) == ["strained_si", "Si", "Si_hex"]
    hexagonal = structures["Si_hex"].get_ase()
    nearest = hexagonal.get_all_distances(mic=True)[0][1:].min()
    assert len(hexagonal) == 8 and nearest == pytest.approx(2.35, abs=0.01)  # the Si-Si bond
    builder = SlemPipelineWorkChain.get_builder_from_protocol(
        codes, structures, protocol="fast", overrides={"hold_out_structure": "Si_hex"})
    assert builder.hold_out_structure.value == "Si_hex"
    assert sorted(builder.structures) == sorted(structures)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--material", "Si", "--hold-out", "Ge"], "--hold-out 'Ge' is not one of the structures"),
        (["--material", "Si", "--hold-out", "Si"], "needs at least two structures"),
        (["--material", "Si", "--material", "Si"], "two structures are labelled 'Si'"),
        (["--structure", "/nonexistent/x.cif"], "no such file"),
    ],
)
def test_bad_structure_arguments_exit_with_the_reason(aiida_profile, argv, message):
    with pytest.raises(SystemExit, match=message):
        _structures(*argv)


def test_transfer_options_reach_the_builder(aiida_profile, codes, pseudo_family):
    argv = ["--material", "Si", "--material", "C", "--material", "SiC", "--hold-out-elements", "Si,C",
            "--larger-cells", "2,2,2", "--strains", "volume,shear"]
    args = submit_pipeline.parse_args(argv)
    overrides = submit_pipeline.pipeline_overrides(args)
    assert overrides["hold_out_elements"] == ["Si", "C"] and overrides["larger_cells"] == [2, 2, 2]
    assert len(overrides["md"]["strains"]) == 4
    builder = submit_pipeline.checked_builder(
        SlemPipelineWorkChain, codes, submit_pipeline.load_structures(args), "fast", overrides, None, None
    )
    assert builder.hold_out_elements.get_list() == ["Si", "C"]
    assert builder.larger_cells.get_list() == [2, 2, 2]
    assert len(builder.md.strains.get_list()) == 4
    with pytest.raises(SystemExit, match="unknown strain preset"):
        submit_pipeline.pipeline_overrides(submit_pipeline.parse_args(["--strains", "twist"]))
    bad = submit_pipeline.parse_args(["--material", "Si", "--material", "C", "--hold-out-elements", "Si,Ge"])
    with pytest.raises(SystemExit, match="no structure holds all of hold_out_elements"):
        submit_pipeline.checked_builder(
            SlemPipelineWorkChain, codes, submit_pipeline.load_structures(bad), "fast",
            submit_pipeline.pipeline_overrides(bad), None, None,
        )
