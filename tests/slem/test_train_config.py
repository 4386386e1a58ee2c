import json

import numpy as np
import pytest

from slem.data.frame import Frame, write_frames
from slem.train.config import ConfigError, check_config_against_dataset, load_config_file, validate_config

BASE = {"dataset": {"path": "frames.h5"}, "operators": ["H", "S"], "training": {"max_steps": 10}}


def _with(**sections):
    cfg = json.loads(json.dumps(BASE))
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    return cfg


def test_valid_config_defaults():
    cfg = validate_config(BASE)
    assert cfg.training.optimizer == "adam"
    assert cfg.training.max_steps == 10
    assert cfg.operators == ["H", "S"]


def test_yaml_float_strings_are_accepted(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dataset: {path: f.h5}\ntraining: {max_steps: 3, lr: 5e-3}\n")
    cfg = validate_config(load_config_file(path))
    assert cfg.training.lr == pytest.approx(5e-3)


@pytest.mark.parametrize(
    "cfg, fragment",
    [
        (_with(training={"max_step": 10}), "did you mean 'max_steps'"),
        (_with(trainig={"lr": 1}), "did you mean 'training'"),
        (_with(training={"lr": "fast"}), "'training.lr' must be float"),
        (_with(training={"batch_size": 1.5}), "'training.batch_size' must be int"),
        (_with(training={"optimizer": "sgd"}), "'training.optimizer' must be one of"),
        (_with(operators=["H", "X"]), "unknown operator 'X'"),
        (_with(training={"ema": 1.5}), "must lie in (0, 1)"),
        (
            _with(training={"scheduler": "cosine", "scheduler_params": {"patience": 3}}),
            "scheduler_params.patience",
        ),
        (_with(training={"epochs": 3}), "only one of"),
        (_with(training={"epoch_step_bounds": [8, 20]}), "with 'training.max_steps' the step count is fixed"),
        (_with(training={"max_steps": None, "epochs": 3, "epoch_step_bounds": [20, 8]}), "low <= high"),
        (_with(training={"max_steps": None, "epochs": 3, "epoch_step_bounds": [8]}), "two positive step"),
        (_with(training={"max_steps": None, "epochs": 3, "epoch_step_bounds": [0, 8]}), "two positive step"),
        ({"training": {"max_steps": 1}}, "missing section 'dataset'"),
        (_with(dataset={"validation": "v.h5"}), "did you mean 'validation_path'"),
        (_with(operators=["H"], training={"eigenvalue_loss": 1.0}), "needs operators H and S"),
        (_with(training={"onsite_shift": "yes"}), "'training.onsite_shift' must be bool"),
        (_with(training={"block_weighting": "pair"}), "'training.block_weighting' must be one of"),
        (_with(training={"eigenvalue_overlap_tolerance": -1e-2}), "must be >= 0"),
        (_with(training={"eigenvalue_loss": 0.1, "eigenvalue_fermi_bands": -1}), "(0: every band)"),
        (_with(training={"eigenvalue_fermi_bands": 6}), "needs 'training.eigenvalue_loss' > 0"),
    ],
)
def test_config_errors(cfg, fragment):
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert fragment in str(err.value)


def test_all_problems_reported_at_once():
    with pytest.raises(ConfigError) as err:
        validate_config(_with(training={"lr": -1, "max_step": 3}))
    assert len(err.value.problems) >= 2


def _frame(ops=("H", "S")):
    norb = 4  # 1s1p
    pairs = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    shifts = np.zeros((4, 3), int)
    values = {op: np.arange(4 * norb * norb, dtype=float) for op in ops}
    return Frame(
        [14, 14],
        [[0, 0, 0], [1.3, 1.3, 1.3]],
        np.eye(3) * 5.4,
        [True] * 3,
        {"Si": "1s1p"},
        pairs,
        shifts,
        values,
    )


def test_dataset_checks(tmp_path):
    path = tmp_path / "frames.h5"
    write_frames(path, [_frame(), _frame()], split={"train": [0], "validation": [1]})
    cfg = validate_config(_with(dataset={"path": str(path)}))
    info = check_config_against_dataset(cfg)
    assert info["species"] == ["Si"] and info["basis"] == {"Si": "1s1p"}

    with pytest.raises(ConfigError, match="lacks operator"):
        check_config_against_dataset(
            validate_config(_with(dataset={"path": str(path)}, operators=["H", "D"]))
        )
    with pytest.raises(ConfigError, match="model.basis gives Si: 2s2p1d but the data use 1s1p"):
        check_config_against_dataset(
            validate_config(_with(dataset={"path": str(path)}, model={"basis": {"Si": "2s2p1d"}}))
        )
    with pytest.raises(ConfigError, match="does not exist"):
        check_config_against_dataset(validate_config(_with(dataset={"path": str(tmp_path / "none.h5")})))

    with pytest.raises(ConfigError, match="validation file .* does not exist"):
        missing_val = _with(dataset={"path": str(path), "validation_path": str(tmp_path / "v.h5")})
        check_config_against_dataset(validate_config(missing_val))
    val = tmp_path / "val.h5"
    write_frames(val, [_frame(ops=("H",))])
    with pytest.raises(ConfigError, match=r"dataset .*val.h5 lacks operator\(s\) \['S'\] \(it holds \['H'\]"):
        check_config_against_dataset(
            validate_config(_with(dataset={"path": str(path), "validation_path": str(val)}))
        )

    empty = tmp_path / "empty.h5"
    write_frames(empty, [_frame()], split={"train": [], "test": [0]})
    with pytest.raises(ConfigError, match="empty 'train' split"):
        check_config_against_dataset(validate_config(_with(dataset={"path": str(empty)})))


def test_hidden_lmax_below_twice_the_orbital_l_warns():
    import warnings

    from slem.train.model_io import make_model_config

    args = (["Si"], {"Si": "2s2p1d"}, {"Si": 4.0}, ["H", "S"])
    with pytest.warns(UserWarning, match=r"lmax 2, below 2 x the largest orbital l \(4\)"):
        make_model_config({"hidden_irreps": "16x0e+16x1o+8x2e"}, *args)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_model_config({"hidden_irreps": "16x0e+8x1o+8x2e+4x3o+4x4e"}, *args)
        make_model_config({"hidden_irreps": "16x0e+16x1o+8x2e"}, ["Si"], {"Si": "1s1p"}, {"Si": 4.0}, ["H"])


def test_a_layer_with_a_duration_replaces_the_whole_duration():
    """A protocol's epochs and bounds give way to a user's max_steps (and the reverse), instead of the config
    being refused for holding both; a layer without a duration keeps the base's, and null removes a key."""
    from slem.train.duration import with_duration

    fast = {"epochs": 100, "epoch_step_bounds": [800, 2000], "lr": 0.01}
    assert with_duration(fast, {"max_steps": 900, "lr": 0.1}) == {"max_steps": 900, "lr": 0.01}
    assert with_duration(fast, {"lr": 0.1}) == fast
    assert with_duration({"max_steps": 10}, {"epochs": 5}) == {"epochs": 5}
    assert with_duration({"max_steps": None, "epochs": 100}, {}) == {"epochs": 100}
    for merged in (with_duration(fast, {"max_steps": 900}), with_duration({"max_steps": 10}, fast)):
        validate_config(_with(training=None) | {"training": merged})
