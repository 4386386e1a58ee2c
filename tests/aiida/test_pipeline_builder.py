"""Builders and input validation of SlemPipelineWorkChain and SlemValidationWorkChain (nothing is run)."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida_slem.workflows.pipeline import SlemPipelineWorkChain
from aiida_slem.workflows.pipeline_inputs import validate_inputs
from aiida_slem.workflows.train import SlemTrainWorkChain
from aiida_slem.workflows.validation import SlemValidationWorkChain
from aiida_slem.workflows.validation import validate_inputs as validate_validation
from ase.build import bulk


@pytest.fixture
def builder(codes, pseudo_family):
    structure = orm.StructureData(ase=bulk("Si", "diamond", a=5.43, cubic=True))
    return SlemPipelineWorkChain.get_builder_from_protocol(
        codes,
        {"si8": structure},
        protocol="fast",
        overrides={"train": {"config": {"training": {"max_steps": 7}}}, "options": {"queue_name": "gpu"}},
        options={"account": "abc"},
        gpus=1,
    )


def test_builder_follows_protocol_and_overrides(builder):
    assert builder.train.train.config["training"]["max_steps"] == 7
    assert builder.train.train.config["operators"] == ["H", "S", "D"]
    assert builder.train.train.gpus.value == 1
    assert builder.validation.predict.gpus.value == 1
    # the pipeline's own options go to training and prediction; --options to every job
    assert builder.train.train.metadata.options["queue_name"] == "gpu"
    assert builder.train.train.metadata.options["account"] == "abc"
    assert builder.md.md.pw.metadata.options["account"] == "abc"
    assert "queue_name" not in builder.md.md.pw.metadata.options
    assert "queue_name" not in builder.validation.pw_options.get_dict()
    assert builder.validation.settings["thresholds"] == {"H_mae_meV": 10.0, "valence_mae_vs_lcao_meV": 20.0}
    recorded = builder.builder_parameters.get_dict()
    assert recorded["protocol"] == "fast" and recorded["gpus"] == 1
    assert recorded["overrides"]["train"]["config"]["training"]["max_steps"] == 7
    assert set(builder.md.md.pw.pseudos) == {"Si"}


def test_unknown_protocol_is_refused(codes, pseudo_family):
    with pytest.raises(ValueError, match="unknown protocol"):
        SlemPipelineWorkChain.get_builder_from_protocol(codes, bulk_si(), protocol="quick")


def bulk_si() -> orm.StructureData:
    return orm.StructureData(ase=bulk("Si", "diamond", a=5.43))


def cubic(formula: str, a: float) -> orm.StructureData:
    lattice = "zincblende" if len(formula) > 2 else "diamond"
    return orm.StructureData(ase=bulk(formula, lattice, a=a, cubic=True))


def _inputs(builder, structures: dict, **extra) -> dict:
    pseudos = dict(builder.md.md.pw.pseudos)
    return {"structures": structures, "md": {"md": {"pw": {"pseudos": pseudos}}}, **extra}


@pytest.fixture
def mixed(codes, pseudo_family):
    structures = {"si": cubic("Si", 5.43), "c": cubic("C", 3.567), "sic": cubic("SiC", 4.36)}
    builder = SlemPipelineWorkChain.get_builder_from_protocol(
        codes, structures, protocol="fast", overrides={"hold_out_elements": ["Si", "C"]}
    )
    return builder, structures


def test_mixed_compositions_share_the_largest_cutoffs_and_every_pseudopotential(mixed):
    builder, _ = mixed
    assert set(builder.md.md.pw.pseudos) == {"Si", "C"}
    assert set(builder.dataset.operator.scf.pw.pseudos) == {"Si", "C"}
    # Debian's fast cutoffs: Si 20/80, C 40/160 Ry; every SCF of one dataset takes the larger
    scf = builder.dataset.operator.scf.pw
    for system in (builder.md.md.pw.parameters["SYSTEM"], scf.parameters["SYSTEM"]):
        assert (system["ecutwfc"], system["ecutrho"]) == (40.0, 160.0)
    assert builder.hold_out_elements.get_list() == ["Si", "C"]
    # the recorded overrides stay the user's own, so 'aiida-slem retrain' derives its cutoffs anew
    assert "pw_parameters" not in builder.builder_parameters["overrides"]["md"]
    assert validate_inputs(builder._inputs(prune=True), None) is None


def test_validator_refuses_what_cannot_give_a_transfer_test(mixed):
    builder, structures = mixed
    si, c = structures["si"], structures["c"]
    assert validate_inputs(_inputs(builder, {"si": si, "c": c}), None) is None
    refusals = {
        "is not one of the structures": {"hold_out_structure": orm.Str("ge")},
        "at least two elements": {"hold_out_elements": orm.List(["Si"])},
        "no structure holds all": {"hold_out_elements": orm.List(["Si", "Ge"])},
        "would never see C": {"hold_out_structure": orm.Str("c")},
    }
    for message, extra in refusals.items():
        assert message in validate_inputs(_inputs(builder, {"si": si, "c": c}, **extra), None)
    only = _inputs(builder, {"sic": structures["sic"]}, hold_out_elements=orm.List(["Si", "C"]))
    assert "keep at least one to train on" in validate_inputs(only, None)
    # a kind name means one element (one pseudopotential per kind name)
    renamed = orm.StructureData(cell=c.cell)
    renamed.append_atom(position=(0, 0, 0), symbols="C", name="Si")
    assert "rename one of the kinds" in validate_inputs(_inputs(builder, {"si": si, "x": renamed}), None)


def test_larger_cells_are_checked_before_any_dft(mixed):
    builder, structures = mixed
    md = {"md": {"pw": {"pseudos": dict(builder.md.md.pw.pseudos)}}}
    inputs = {"structures": {"si": structures["si"]}, "md": md}
    inputs["larger_cells"] = orm.List([2, 2])
    assert "three positive integers" in validate_inputs(inputs, None)
    inputs["larger_cells"] = orm.List([1, 1, 1])
    assert "the MD supercell itself" in validate_inputs(inputs, None)
    inputs["larger_cells"] = orm.List([2, 2, 2])
    assert "needs md.einstein_frequency" in validate_inputs(inputs, None)
    md["einstein_frequency"] = orm.Float(10.0)
    assert validate_inputs(inputs, None) is None


def test_each_test_frame_gets_its_split():
    from aiida_slem.workflows.splits import frame_splits, held_out_structures

    compositions = {"si": {"Si": 8}, "c": {"C": 8}, "sic": {"Si": 4, "C": 4}, "si_hex": {"Si": 4}}
    held = held_out_structures(compositions, "si_hex", ["Si", "C"])
    assert held == {"sic": "held_out_composition", "si_hex": "held_out_structure"}
    origin = {"si_f0": "si", "sic_f0": "sic", "si_hex_f0": "si_hex", "si_larger_000": None}
    assert frame_splits(origin, held, {"si_larger_000"}) == {
        "si_f0": "in_distribution",
        "sic_f0": "held_out_composition",
        "si_hex_f0": "held_out_structure",
        "si_larger_000": "larger_cells",
    }


def test_a_structure_held_out_by_label_is_a_composition_when_no_training_structure_has_its_formula():
    """AlGa3As4 after GaAs, AlAs and AlGaAs2 is a new composition of known elements; lonsdaleite (Si4)
    after diamond (Si8) is a new structure of a known one, whatever the cells' sizes."""
    from aiida_slem.workflows.splits import held_out_structures, reduced_formula

    compositions = {"GaAs": {"Ga": 4, "As": 4}, "AlAs": {"Al": 4, "As": 4},
                    "AlGaAs2": {"Al": 2, "Ga": 2, "As": 4}, "AlGa3As4": {"Al": 1, "Ga": 3, "As": 4}}
    assert held_out_structures(compositions, "AlGa3As4", None) == {"AlGa3As4": "held_out_composition"}
    assert held_out_structures(compositions, "AlGaAs2", None) == {"AlGaAs2": "held_out_composition"}
    assert held_out_structures({"Si": {"Si": 8}, "Si_hex": {"Si": 4}}, "Si_hex", None) == {
        "Si_hex": "held_out_structure"}
    # the hold-out by elements removes GaAs-like cells from training: a second GaAs polymorph is then new
    both = {"GaAs": {"Ga": 4, "As": 4}, "GaAs_wz": {"Ga": 2, "As": 2}, "Ga": {"Ga": 4}, "As": {"As": 2}}
    assert held_out_structures(both, "GaAs_wz", ["Ga", "As"]) == {
        "GaAs": "held_out_composition", "GaAs_wz": "held_out_composition"}
    assert reduced_formula({"Ga": 4, "As": 4}) == reduced_formula({"As": 1, "Ga": 1})
    assert reduced_formula({"Ga": 4, "As": 4}) == (("As", 1), ("Ga", 1))


def _operator(tmp_path, element: str, shells: str = "1s1p"):
    from aiida_slem.data.operator import OperatorData
    from slem.data.frame import frame_from_blocks, write_frames

    n = 4 if shells == "1s1p" else 1
    blocks = {op: {(0, 0, 0, 0, 0): np.eye(n)} for op in ("H", "S", "D")}
    frame = frame_from_blocks(
        [element], np.zeros((1, 3)), np.eye(3) * 4.0, [True] * 3, {element: shells}, blocks
    )
    path = write_frames(tmp_path / f"{element}.h5", [frame])
    return OperatorData(path, summary={"n_electrons": 4.0})


def _model(tmp_path):
    import zipfile

    from aiida_slem.data.model import SlemModelData

    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as handle:
        handle.writestr("data.pkl", b"0")
    return SlemModelData(
        path, config={"species": ["Si"], "basis": {"Si": "1s1p"}, "r_cut": 7.0, "n_params": 1}
    )


def test_validation_refuses_foreign_elements_and_bases(tmp_path):
    model = _model(tmp_path)
    settings = orm.Dict({})
    ok = {"model": model, "frames": {"a": _operator(tmp_path, "Si")}, "settings": settings}
    assert validate_validation(ok, None) is None
    carbon = {"model": model, "frames": {"a": _operator(tmp_path, "C")}, "settings": settings}
    assert "not trained on" in validate_validation(carbon, None)
    other_basis = {"model": model, "frames": {"a": _operator(tmp_path, "Si", "1s")}, "settings": settings}
    assert "another basis" in validate_validation(other_basis, None)
    bad_settings = {**ok, "settings": orm.Dict({"kpath_points": 3})}
    assert "unknown validation setting" in validate_validation(bad_settings, None)
    none_at_once = {**ok, "max_concurrent": orm.Int(0)}
    assert "max_concurrent must be at least 1" in validate_validation(none_at_once, None)
    assert "not produced by a slem.project job" in validate_validation({**ok, "pw_code": object()}, None)


def test_validation_builder_from_protocol(tmp_path, codes):
    builder = SlemValidationWorkChain.get_builder_from_protocol(
        codes["slem"],
        _model(tmp_path),
        {"a": _operator(tmp_path, "Si")},
        pw_code=codes["pw"],
        protocol="precise",
        overrides={"settings": {"n_random_k": 3}},
    )
    assert builder.settings["n_random_k"] == 3
    assert builder.settings["kpath_npoints"] == 100
    assert builder.settings["thresholds"]["H_mae_meV"] == 2.0


def test_the_pipeline_delegates_to_each_steps_builder(builder, codes):
    """The train and validation sections come from the steps' own protocol files and builders, with the
    pipeline's top-level 'options' override passed to both (as in aiida-quantumespresso)."""
    assert SlemTrainWorkChain.get_protocol_filepath().name == "train.yaml"
    assert SlemValidationWorkChain.get_protocol_filepath().name == "validation.yaml"
    common = {"protocol": "fast", "options": {"account": "abc"}, "gpus": 1}
    train = SlemTrainWorkChain.get_builder_from_protocol(
        codes["slem"],
        overrides={"config": {"training": {"max_steps": 7}}, "options": {"queue_name": "gpu"}},
        **common,
    )
    assert builder.train.train.config.get_dict() == train.train.config.get_dict()
    assert dict(builder.train.train.metadata.options) == dict(train.train.metadata.options)
    assert builder.train.max_iterations.value == train.max_iterations.value
    validation = SlemValidationWorkChain.get_builder_from_protocol(
        codes["slem"], pw_code=codes["pw"], overrides={"options": {"queue_name": "gpu"}}, **common
    )
    assert builder.validation.settings.get_dict() == validation.settings.get_dict()
    assert dict(builder.validation.predict.metadata.options) == dict(validation.predict.metadata.options)
    assert builder.validation.max_concurrent.value == validation.max_concurrent.value == 4
    with pytest.raises(ValueError, match="unknown override 'confg'"):
        SlemTrainWorkChain.get_builder_from_protocol(codes["slem"], overrides={"confg": {}})


def _with_training(inputs: dict, **training) -> None:
    config = inputs["train"]["train"]["config"].get_dict()
    config["training"].update(training)
    inputs["train"]["train"]["config"] = orm.Dict(config)


def _with_model(inputs: dict, **model) -> None:
    config = inputs["train"]["train"]["config"].get_dict()
    config["model"] = {**config.get("model", {}), **model}
    inputs["train"]["train"]["config"] = orm.Dict(config)


def _with_setting(inputs: dict, **settings) -> None:
    inputs["validation"]["settings"] = orm.Dict({**inputs["validation"]["settings"].get_dict(), **settings})


def _set(section: str, key: str, node_type: str, value):
    def change(inputs: dict) -> None:
        inputs[section][key] = getattr(orm, node_type)(value)  # nodes need the test profile: made here

    return change


def _set_predict_gpus(inputs: dict) -> None:
    inputs["validation"]["predict"]["gpus"] = orm.Int(2)


@pytest.mark.parametrize(
    ("section", "change", "message"),
    [
        ("train", lambda i: _with_training(i, lr=-1), "'training.lr' must be positive"),
        ("train", lambda i: _with_training(i, learning_rate=1e-3), "did you mean 'lr'"),
        # the model section: until the one schema these ran the whole DFT first and failed in slem train
        ("train", lambda i: _with_model(i, n_layers="three"), "'model.n_layers' must be int, got 'three'"),
        ("train", lambda i: _with_model(i, n_layers=0), "'model.n_layers' must be >= 1, got 0"),
        ("train", lambda i: _with_model(i, hidden_irreps="4x1o"), "'model.hidden_irreps' needs 0e channels"),
        ("train", lambda i: _with_model(i, num_layers=2), "unknown key 'model.num_layers'; did you mean"),
        ("validation", lambda i: _with_setting(i, kpath_npoint=4), "unknown validation setting"),
        ("validation", _set_predict_gpus, "prediction runs on one device"),
        ("md", _set("md", "stride", "Int", 0), "stride and n_snapshots must be >= 1"),
        ("dataset", _set("dataset", "validation_fraction", "Float", 1.5), "must lie in [0, 1)"),
    ],
)
def test_each_steps_validator_refuses_bad_input_before_any_dft(builder, section, change, message):
    """The pipeline exposes each step's namespace without switching its validator off: the step's own
    check names the problem at submission, with the namespace in the message."""
    inputs = builder._inputs(prune=True)
    assert SlemPipelineWorkChain.spec().inputs.validate(inputs) is None
    change(inputs)
    error = SlemPipelineWorkChain.spec().inputs.validate(inputs)
    assert error is not None and message in str(error), error
    assert section in str(error)


def test_a_refused_pipeline_stores_no_process(builder):
    from aiida.engine import run_get_node

    builder.train.train.config = orm.Dict({**builder.train.train.config.get_dict(), "trian": {}})
    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    with pytest.raises(ValueError, match="unknown key 'config.trian'; did you mean 'training'"):
        run_get_node(builder)
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before


def test_larger_cell_kpoints_sample_the_training_cells_points():
    """A mesh the repetitions divide becomes the supercell's mesh; otherwise the folded points; a k-point
    distance is turned into the training cell's mesh first (slem/qe/kpoints.py)."""
    from aiida_slem.workflows.splits import larger_cell_kpoints

    big = orm.StructureData(ase=bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 2, 2)))
    mesh = orm.KpointsData()
    mesh.set_kpoints_mesh([2, 2, 2], [0.5, 0.5, 0.5])
    assert larger_cell_kpoints({"kpoints": mesh}, big, [2, 2, 2]).get_kpoints_mesh() == (
        [1, 1, 1],
        [0.5, 0.5, 0.5],
    )
    single = orm.KpointsData()
    single.set_kpoints_mesh([1, 1, 1], [0.5, 0.5, 0.5])
    folded, weights = larger_cell_kpoints({"kpoints": single}, big, [2, 2, 2]).get_kpoints(also_weights=True)
    assert np.allclose(folded, 0.0) and np.allclose(weights, 1.0)
    # Si8 (a = 5.43 A) at 0.3 / A: 4 per axis, so the 2x2x2 supercell takes 2 per axis, unshifted
    by_distance = larger_cell_kpoints({"kpoints_distance": 0.3}, big, [2, 2, 2])
    assert by_distance.get_kpoints_mesh() == ([2, 2, 2], [0.0, 0.0, 0.0])
