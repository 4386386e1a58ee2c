"""Builders and input validation of SlemPipelineWorkChain and SlemValidationWorkChain (nothing is run)."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida_slem.workflows.pipeline import SlemPipelineWorkChain, validate_inputs
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


def test_validator_refuses_mixed_kinds_and_unknown_hold_out(builder):
    inputs = {
        "structures": {"si": bulk_si(), "c": orm.StructureData(ase=bulk("C", "diamond", a=3.567))},
        "md": {"md": {"pw": {"pseudos": dict(builder.md.md.pw.pseudos)}}},
    }
    assert "different kinds" in validate_inputs(inputs, None)
    inputs["structures"] = {"si": bulk_si(), "si8": bulk_si()}
    inputs["hold_out_structure"] = orm.Str("ge")
    assert "is not one of the structures" in validate_inputs(inputs, None)
    inputs["hold_out_structure"] = orm.Str("si8")
    assert validate_inputs(inputs, None) is None


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
