"""Bad training inputs are refused at submission, before any job exists, with a message naming the fix."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida_slem.calcjobs.train import SlemTrainCalculation
from aiida_slem.workflows.train import SlemTrainWorkChain
from aiida_test_helpers import dataset_node, tiny_config, truncate_basis


def refused(code, dataset, config: dict, **inputs) -> str:
    """Run with invalid inputs; return the validation message and check no process node was made."""
    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    builder = SlemTrainCalculation.get_builder()
    builder.code = code
    builder.dataset = dataset
    builder.config = orm.Dict(config)
    for key, value in inputs.items():
        builder[key] = value
    with pytest.raises(ValueError) as info:
        run_get_node(builder)
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before
    return str(info.value)


def test_invalid_config_is_refused(slem_code, si64_dataset):
    config = tiny_config()
    config["training"]["lr"] = -1.0
    config["training"]["max_stpes"] = 3
    message = refused(slem_code, si64_dataset, config)
    assert "'training.lr' must be positive" in message
    assert "did you mean 'max_steps'" in message


def test_local_dataset_path_in_config_is_refused(slem_code, si64_dataset):
    config = {**tiny_config(), "dataset": {"path": "/home/me/frames.h5"}}
    assert "config.dataset must not be given" in refused(slem_code, si64_dataset, config)


def test_operator_missing_from_the_dataset_is_refused(slem_code, si64_dataset):
    config = {**tiny_config(), "operators": ["H", "S", "D"]}
    message = refused(slem_code, si64_dataset, config)
    assert "dataset <" in message and "lacks operator(s) ['D'] (it holds ['H', 'S'])" in message
    assert "drop them from 'operators'" in message


def test_empty_training_split_is_refused(slem_code, si64_frames, tmp_path):
    dataset = dataset_node(tmp_path / "val_only.h5", si64_frames, {"validation": [0]})
    message = refused(slem_code, dataset, tiny_config())
    assert "has an empty 'train' split" in message


def test_model_basis_in_config_must_match_the_dataset(slem_code, si64_dataset):
    config = tiny_config()
    config["model"]["basis"] = {"Si": "2s2p1d"}
    message = refused(slem_code, si64_dataset, config)
    assert "model.basis gives Si: 2s2p1d but the data use 1s1p" in message


def test_parent_model_with_another_basis_is_refused(slem_code, si64_frames, si_model, tmp_path):
    """A 1s1p model cannot be fine-tuned on frames of the 1s sub-basis."""
    dataset = dataset_node(tmp_path / "si64_1s.h5", [truncate_basis(si64_frames[0], "1s", 1)], {"train": [0]})
    message = refused(slem_code, dataset, tiny_config(), parent_model=si_model)
    assert "does not match the basis of parent_model" in message and "'Si': ('1s1p', '1s')" in message


def test_gpu_request_the_scheduler_cannot_express_is_refused(slem_code, si64_dataset):
    message = refused(slem_code, si64_dataset, tiny_config(), gpus=orm.Int(1), gpu_kind=orm.Str("a100 --x"))
    assert "gpu_kind" in message


def test_workchain_applies_the_same_checks(slem_code, si64_dataset):
    config = {**tiny_config(), "operators": ["H", "D"]}
    builder = SlemTrainWorkChain.get_builder()
    builder.train.code = slem_code
    builder.train.dataset = si64_dataset
    builder.train.config = orm.Dict(config)
    with pytest.raises(ValueError, match=r"lacks operator\(s\) \['D'\]"):
        run_get_node(builder)


def test_exact_overlap_needs_the_datasets_basis(slem_code, si64_dataset, tmp_path):
    """model.overlap: basis without a basis input, or with a basis of other shells, never reaches a job."""
    from aiida_slem.data.basis import BasisData
    from slem.basis.generate import generate_basis
    from slem.basis.orbital import write_basis
    from slem.qe.inputs import DEFAULT_PSEUDO_DIR

    config = tiny_config()
    config["model"]["overlap"] = "basis"
    assert "pass the `basis` input" in refused(slem_code, si64_dataset, config)
    upf = DEFAULT_PSEUDO_DIR / "Si.pbe-rrkj.UPF"
    if not upf.is_file():
        pytest.skip("Debian's Si.pbe-rrkj.UPF is not installed")
    write_basis(tmp_path / "basis.h5", {"Si": generate_basis(upf, preset="DZP")})
    message = refused(slem_code, si64_dataset, config, basis=BasisData(tmp_path / "basis.h5"))
    assert "has shells {'Si': '2s2p1d'} but the dataset holds {'Si': '1s1p'}" in message
