"""Sheets (vacuum rule): in-plane MD supercells and k-meshes from the builders, refusals with the fix."""

from __future__ import annotations

from aiida import orm
from aiida.plugins import WorkflowFactory
from aiida_slem.workflows.dimensionality import kpoints_from_distance, structure_vacuum_axes
from aiida_slem.workflows.md_sampling import validate_inputs as validate_md
from aiida_slem.workflows.pipeline import SlemPipelineWorkChain
from aiida_slem.workflows.pipeline_inputs import validate_inputs as validate_pipeline
from ase.build import bulk, graphene

from slem.train.config import validate_config
from slem.train.duration import DURATION_KEYS

MdSamplingWorkChain = WorkflowFactory("slem.md_sampling")
OperatorWorkChain = WorkflowFactory("slem.operator")


def sheet() -> orm.StructureData:
    atoms = graphene(a=2.46, vacuum=7.5)
    atoms.pbc = True  # what the projection accepts: the vacuum makes it 2D
    return orm.StructureData(ase=atoms)


def test_the_vacuum_axis_is_found_with_pbc_all_true(aiida_profile):
    assert structure_vacuum_axes(sheet()) == (False, False, True)
    assert structure_vacuum_axes(orm.StructureData(ase=bulk("C", "diamond", a=3.567))) == (False,) * 3


def test_md_builder_keeps_a_sheet_in_plane(codes, pseudo_family):
    fast = MdSamplingWorkChain.get_builder_from_protocol(codes["pw"], sheet(), protocol="fast")
    assert fast.md.kpoints.get_kpoints_mesh() == ([1, 1, 1], [0.5, 0.5, 0.0])
    balanced = MdSamplingWorkChain.get_builder_from_protocol(codes["pw"], sheet(), protocol="balanced")
    assert balanced.supercell.get_list() == [2, 2, 1]
    assert balanced.md.kpoints.get_kpoints_mesh() == ([2, 2, 1], [0.0, 0.0, 0.0])
    bulk_c = orm.StructureData(ase=bulk("C", "diamond", a=3.567))
    assert MdSamplingWorkChain.get_builder_from_protocol(
        codes["pw"], bulk_c, protocol="balanced"
    ).supercell.get_list() == [2, 2, 2]


def test_md_validator_refuses_stacking_or_k_along_the_vacuum(codes, pseudo_family):
    builder = MdSamplingWorkChain.get_builder_from_protocol(codes["pw"], sheet(), protocol="balanced")
    inputs = builder._inputs(prune=True)
    assert validate_md(inputs, None) is None
    inputs["supercell"] = orm.List([2, 2, 2])
    assert "use [2, 2, 1]" in validate_md(inputs, None)
    inputs["supercell"] = orm.List([2, 2, 1])
    kpoints = orm.KpointsData()
    kpoints.set_kpoints_mesh([2, 2, 2], [0.5, 0.5, 0.5])
    inputs["md"]["kpoints"] = kpoints
    assert "use mesh [2, 2, 1] offset [0.5, 0.5, 0.0]" in validate_md(inputs, None)


def test_operator_builder_gives_one_k_point_along_the_vacuum(codes, pseudo_family):
    fast = OperatorWorkChain.get_builder_from_protocol(
        codes["pw"], codes["pp"], codes["slem"], sheet(), protocol="fast"
    )
    assert fast.scf.kpoints.get_kpoints_mesh() == ([5, 5, 1], [0.0, 0.0, 0.0])  # 2.95 / 0.6 -> 5
    balanced = OperatorWorkChain.get_builder_from_protocol(
        codes["pw"], codes["pp"], codes["slem"], sheet(), protocol="balanced"
    )
    # |b1| = |b2| = 2.95 / Angstrom over 0.3 -> 10 in-plane; aiida would have put 1 only for pbc False
    assert balanced.scf.kpoints.get_kpoints_mesh() == ([10, 10, 1], [0.0, 0.0, 0.0])
    assert "kpoints_distance" not in balanced.scf
    bulk_c = orm.StructureData(ase=bulk("C", "diamond", a=3.567))
    bulk_builder = OperatorWorkChain.get_builder_from_protocol(
        codes["pw"], codes["pp"], codes["slem"], bulk_c, protocol="balanced"
    )
    assert bulk_builder.scf.kpoints_distance.value == 0.3  # 3D cells keep aiida's own k-point distance


def test_kpoints_from_distance_matches_aiida_in_plane(aiida_profile):
    structure = sheet()
    reference = orm.KpointsData()
    reference.set_cell(structure.cell, pbc=(True, True, False))
    reference.set_kpoints_mesh_from_density(0.2, force_parity=False)
    assert kpoints_from_distance(structure, 0.2).get_kpoints_mesh()[0] == reference.get_kpoints_mesh()[0]


def test_pipeline_refuses_a_sheet_behind_a_bulk_supercell(codes, pseudo_family):
    structures = {"diamond": orm.StructureData(ase=bulk("C", "diamond", a=3.567)), "graphene": sheet()}
    builder = SlemPipelineWorkChain.get_builder_from_protocol(codes, structures, protocol="balanced")
    error = validate_pipeline(builder._inputs(prune=True), None)
    assert "structure graphene" in error and "separate pipelines" in error
    alone = SlemPipelineWorkChain.get_builder_from_protocol(codes, {"graphene": sheet()}, protocol="balanced")
    assert validate_pipeline(alone._inputs(prune=True), None) is None
    assert alone.md.supercell.get_list() == [2, 2, 1]


def test_fast_sheets_train_longer_and_overrides_still_win(codes, pseudo_family):
    """The fast protocol's ``sheet`` settings (train.yaml) reach a sheet's training only, under the user's
    overrides; the other protocols have none."""

    def steps(structure, protocol="fast", overrides=None):
        builder = SlemPipelineWorkChain.get_builder_from_protocol(
            codes, {"s": structure}, protocol=protocol, overrides=overrides
        )
        training = builder.train.train.config.get_dict()["training"]
        duration = {key: training[key] for key in DURATION_KEYS if key in training}
        assert validate_config({"dataset": {"path": "f.h5"}, "training": training})  # one duration, not two
        return duration.get("max_steps", duration)

    bulk_c = orm.StructureData(ase=bulk("C", "diamond", a=3.567))
    by_epochs = {"epochs": 100, "epoch_step_bounds": [800, 2000]}  # 800 steps for Si8's default data
    assert (steps(bulk_c), steps(sheet())) == (by_epochs, 2000)
    assert steps(sheet(), "balanced") == steps(bulk_c, "balanced") == 2000
    assert steps(sheet(), "precise") == 10000
    user = {"train": {"config": {"training": {"max_steps": 900}}}}
    assert steps(sheet(), overrides=user) == steps(bulk_c, overrides=user) == 900
    tuned = {"train": {"sheet": {"config": {"training": {"max_steps": 1200}}}}}
    assert (steps(sheet(), overrides=tuned), steps(bulk_c, overrides=tuned)) == (1200, by_epochs)
    longer = {"train": {"config": {"training": {"epochs": 300}}}}
    assert steps(bulk_c, overrides=longer) == steps(sheet(), overrides=longer) == {"epochs": 300}
