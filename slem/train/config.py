"""Training configuration: the schema of its sections, pure validation and the dataset-dependent checks.

The one schema (issue #18): the sections are the dataclasses below and ``slem.model.config.SlemConfig``,
checked by ``slem.schema.check_section``. ``validate_config`` never opens the dataset, so the AiiDA CalcJob
calls it at submission on a machine that does not hold the data, and gets the messages ``slem train`` prints.
``check_config_against_dataset`` checks the config against the frames file by the rules of
``data_summary.py``, which the CalcJob applies to the dataset node's attributes.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from slem.data.operators import OPERATORS, check_operator_set
from slem.model.config import model_problems
from slem.schema import check_section, coerce, suggest

from .duration import duration_problems

OPERATOR_NAMES = OPERATORS


class ConfigError(ValueError):
    """The training configuration is invalid; the message lists every problem found."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("invalid training config:\n  - " + "\n  - ".join(self.problems))


@dataclass
class DatasetSection:
    path: str
    validation_path: str | None = None  # a second frames file whose frames are all used for validation
    # the basis.h5 (slem basis) the frames were projected onto; model.overlap: basis tabulates S from it
    basis_path: str | None = None


@dataclass
class TrainingSection:
    max_steps: int | None = None
    epochs: int | None = None
    epoch_step_bounds: list[int] | None = None  # with epochs: [low, high] steps (duration.py)
    batch_size: int = 1
    # fewest atoms per batch: the batch grows to ceil(batch_atoms / median atoms per training frame) frames,
    # so a 3-atom cell takes as many atoms per step as a protocol tuned on 8-atom cells (batch_size_for)
    batch_atoms: int | None = None
    lr: float = 5e-3
    optimizer: Literal["adam", "adamw"] = "adam"
    weight_decay: float = 0.0
    scheduler: Literal["plateau", "cosine", "none"] = "plateau"
    scheduler_params: dict = field(default_factory=dict)
    ema: float | None = None
    seed: int = 0
    eigenvalue_loss: float = 0.0
    eigenvalue_kpoints: int = 4
    # > 0: the eigenvalue loss uses the reference S, dropping S(k) directions below it (1e-2 for DZP)
    eigenvalue_overlap_tolerance: float = 0.0
    # > 0: the eigenvalue loss takes only this many highest occupied and as many lowest empty bands of each
    # frame, counted from its electrons; in DZP the many high empty bands otherwise dominate the loss
    eigenvalue_fermi_bands: int = 0
    onsite_shift: bool = False
    block_weighting: Literal["none", "norm"] = "none"  # "norm": weight blocks by their target RMS (loss.py)
    operator_weights: dict = field(default_factory=dict)
    checkpoint_every: int = 100
    validate_every: int = 50
    edge_chunk: int | None = None
    grad_clip: float | None = None
    # fine-tuning: start from this model file's weights and output statistics; the model section must
    # describe the same architecture (a walltime restart then rebuilds it without the file)
    init_model: str | None = None
    # fine-tuning on another material: fit the output statistics (onsite means, the two-centre hopping
    # baselines, scales) anew from this run's training frames, keeping the parent's network. Another
    # material has another energy zero (H + mu S) and other bond lengths, which the parent's statistics
    # would otherwise carry into the first steps (docs/training.md)
    refit_statistics: bool = False


@dataclass
class TrainConfig:
    dataset: DatasetSection
    output_dir: str = "slem_run"
    operators: list[str] = field(default_factory=lambda: ["H", "S"])
    model: dict = field(default_factory=dict)
    training: TrainingSection = field(default_factory=TrainingSection)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_SCHEDULER_PARAMS = {
    "plateau": {"factor": float, "patience": int, "min_lr": float, "threshold": float},
    "cosine": {"min_lr": float, "warmup_steps": int},
    "none": {},
}


def validate_config(raw: Mapping[str, Any]) -> TrainConfig:
    """Check a config mapping (as read from YAML/JSON) and return a ``TrainConfig``.

    Pure: reads no files. Raises ``ConfigError`` listing every problem found."""
    problems: list[str] = []
    if not isinstance(raw, Mapping):
        raise ConfigError([f"the config must be a mapping of sections, got {type(raw).__name__}"])
    top = check_section(TrainConfig, raw, "config", problems)
    if "dataset" not in raw:
        problems[:] = [p for p in problems if "config.dataset" not in p]
        problems.append("missing section 'dataset' (give at least dataset.path: frames.h5)")
    dataset = (
        check_section(DatasetSection, raw.get("dataset", {}), "dataset", problems) if "dataset" in raw else {}
    )
    training = check_section(TrainingSection, raw.get("training", {}) or {}, "training", problems)

    ops = top.get("operators", ["H", "S"])
    if not ops:
        problems.append("'operators' is empty; train at least one of H, S, D")
    for op in ops:
        if op not in OPERATOR_NAMES:
            problems.append(
                f"unknown operator {op!r} in 'operators'; expected a subset of {list(OPERATOR_NAMES)}"
            )
    if len(set(ops)) != len(ops):
        problems.append(f"'operators' lists an operator twice: {ops}")
    try:
        check_operator_set(ops)
    except ValueError as exc:
        problems.append(f"'operators': {exc}")

    model = top.get("model", {})
    problems.extend(model_problems(model, "model", complete=False))
    if "heads" in model and sorted(model["heads"]) != sorted(ops):
        problems.append(
            f"model.heads {model['heads']} differs from 'operators' {ops}; drop model.heads "
            "(the heads are the trained operators)"
        )

    if model.get("overlap") == "basis" and "S" in ops and not dataset.get("basis_path") \
            and not training.get("init_model"):
        problems.append("model.overlap: basis computes S from the basis file: give dataset.basis_path (the "
                        "basis.h5 of the slem basis run the frames were projected onto)")
    _check_training(training, ops, problems)
    if problems:
        raise ConfigError(problems)
    return TrainConfig(
        dataset=DatasetSection(**dataset),
        output_dir=top.get("output_dir", "slem_run"),
        operators=list(ops),
        model=dict(model),
        training=TrainingSection(**training),
    )


def _check_training(t: dict, ops: list[str], problems: list[str]) -> None:
    problems.extend(duration_problems(t))
    positive = (
        "max_steps",
        "epochs",
        "batch_size",
        "batch_atoms",
        "checkpoint_every",
        "validate_every",
        "edge_chunk",
        "eigenvalue_kpoints",
    )
    for key in positive:
        if t.get(key) is not None and t[key] <= 0:
            problems.append(f"'training.{key}' must be positive, got {t[key]}")
    if "lr" in t and not t["lr"] > 0:
        problems.append(f"'training.lr' must be positive, got {t['lr']}")
    for key in ("weight_decay", "eigenvalue_loss", "eigenvalue_overlap_tolerance"):
        if t.get(key, 0.0) < 0:
            problems.append(f"'training.{key}' must be >= 0, got {t[key]}")
    if isinstance(t.get("init_model"), str) and not t["init_model"].strip():
        problems.append(f"'training.init_model' must be a slem model file's path, got {t['init_model']!r}")
    if t.get("refit_statistics") and not t.get("init_model"):
        problems.append("'training.refit_statistics' refits a fine-tuned model's output statistics and needs "
                        "'training.init_model'; a model trained from scratch always fits them")
    if t.get("ema") is not None and not 0.0 < t["ema"] < 1.0:
        problems.append(f"'training.ema' is the EMA decay and must lie in (0, 1), e.g. 0.99; got {t['ema']}")
    fermi_bands = t.get("eigenvalue_fermi_bands", 0)
    if fermi_bands < 0:
        problems.append(f"'training.eigenvalue_fermi_bands' must be >= 0 (0: every band), got {fermi_bands}")
    elif fermi_bands > 0 and not t.get("eigenvalue_loss", 0.0) > 0:
        problems.append("'training.eigenvalue_fermi_bands' picks the bands of the eigenvalue loss and needs "
                        "'training.eigenvalue_loss' > 0, e.g. 0.1")
    if t.get("eigenvalue_loss", 0.0) > 0 and not {"H", "S"} <= set(ops):
        problems.append("'training.eigenvalue_loss' needs operators H and S (bands solve H c = E S c)")
    scheduler = t.get("scheduler", "plateau")
    allowed = _SCHEDULER_PARAMS.get(scheduler, {})
    for key, value in t.get("scheduler_params", {}).items():
        if key not in allowed:
            problems.append(
                f"unknown key 'training.scheduler_params.{key}' for scheduler '{scheduler}'"
                f"{suggest(str(key), list(allowed)) if allowed else '; this scheduler takes no parameters'}"
            )
            continue
        ok, _ = coerce(value, allowed[key])
        if not ok:
            problems.append(
                f"'training.scheduler_params.{key}' must be {allowed[key].__name__}, got {value!r}"
            )
    for op, w in t.get("operator_weights", {}).items():
        if op not in ops:
            problems.append(f"'training.operator_weights' names {op!r}, which is not in 'operators' {ops}")
        elif not isinstance(w, (int, float)) or isinstance(w, bool) or w < 0:
            problems.append(f"'training.operator_weights.{op}' must be a number >= 0, got {w!r}")


def load_config_file(path: str | Path) -> dict:
    """Read a YAML or JSON config file into a plain mapping (not yet validated)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"config file {path} does not exist"])
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a config error for the user
        raise ConfigError([f"cannot parse {path}: {exc}"]) from exc
    return data if data is not None else {}


def resolve_paths(config: TrainConfig, base: Path) -> TrainConfig:
    """Make relative dataset and output paths relative to the config file's folder."""

    def fix(p: str | None) -> str | None:
        if p is None or Path(p).is_absolute():
            return p
        return str((base / p).resolve())

    return dataclasses.replace(
        config,
        dataset=DatasetSection(
            path=fix(config.dataset.path), validation_path=fix(config.dataset.validation_path),
            basis_path=fix(config.dataset.basis_path),
        ),
        output_dir=fix(config.output_dir),
    )


def check_config_against_dataset(config: TrainConfig, path: str | Path | None = None) -> dict:
    """Checks that need the frames file: it exists, has a non-empty training split, holds every
    requested operator, and its basis matches ``model.basis`` if that is given.

    Returns ``{"species", "basis", "split", "r_cut"}`` inferred from the data (see data_checks.py)."""
    from .data_checks import check_against_dataset  # keeps validate_config free of h5py

    return check_against_dataset(config, path)


def batch_size_for(training: TrainingSection, atoms_per_frame: list[int]) -> int:
    """Frames per batch: ``batch_size``, grown by ``batch_atoms`` for small frames, at most all frames."""
    if not training.batch_atoms or not atoms_per_frame:
        return training.batch_size
    grown = math.ceil(training.batch_atoms / float(np.median(atoms_per_frame)))
    return max(training.batch_size, min(grown, len(atoms_per_frame)))
