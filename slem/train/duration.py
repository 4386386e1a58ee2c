"""How long to train: a fixed step count, or epochs over the training frames within step bounds.

``max_steps`` is an exact step count. ``epochs`` counts passes over the training frames, so the step count
grows with the data; ``epoch_step_bounds: [low, high]`` keeps it within two step counts. The fast protocol
trains 100 epochs within 800 and 2000 steps: an 8-atom cell's default dataset keeps its 800 steps, while a
pipeline of several structures, whose 800 steps would be a few epochs each, trains longer (measured in
docs/transfer.md, session 28: 40 Si frames at 2000 instead of 800 steps, lonsdaleite 65 instead of 178 meV).

A config is often a protocol's with a user's override on top. ``with_duration`` lets the override's
duration replace the protocol's instead of clashing with it (``max_steps`` beside the protocol's ``epochs``).
"""

from __future__ import annotations

from collections.abc import Mapping

# the keys that say how long to train; a config layer that names any of them replaces all of them
DURATION_KEYS = ("max_steps", "epochs", "epoch_step_bounds")


def with_duration(training: Mapping, duration: Mapping) -> dict:
    """``training`` whose duration is ``duration``'s wherever ``duration`` names one (its own keys alone,
    so ``max_steps`` drops a protocol's ``epochs`` and bounds), else ``training``'s own. Keys set to None
    are dropped: a layer writes ``max_steps: null`` to remove a step count."""
    given = {k: duration[k] for k in DURATION_KEYS if k in duration}
    out = dict(training)
    if given:
        out = {k: v for k, v in out.items() if k not in DURATION_KEYS}
        out.update(given)
    return {k: v for k, v in out.items() if not (k in DURATION_KEYS and v is None)}


def duration_problems(t: Mapping) -> list[str]:
    """What is wrong with the duration keys of a training section (raw mapping)."""
    if t.get("max_steps") is None and t.get("epochs") is None:
        return ["give 'training.max_steps' or 'training.epochs' (how long to train)"]
    if t.get("max_steps") is not None and t.get("epochs") is not None:
        return ["give only one of 'training.max_steps' and 'training.epochs'"]
    bounds = t.get("epoch_step_bounds")
    if bounds is None:
        return []
    if t.get("epochs") is None:
        return ["'training.epoch_step_bounds' bounds the step count of 'training.epochs'; with "
                "'training.max_steps' the step count is fixed: drop the bounds"]
    counts = len(bounds) == 2 and all(type(b) is int and b > 0 for b in bounds)
    if not counts or bounds[0] > bounds[1]:
        return [f"'training.epoch_step_bounds' must be two positive step counts [low, high], low <= high, "
                f"e.g. [800, 2000]; got {bounds}"]
    return []


def training_steps(max_steps: int | None, epochs: int | None, bounds: list[int] | None,
                   batches_per_epoch: int) -> int:
    """The run's step count: ``max_steps``, else ``epochs`` x batches per epoch within ``bounds``."""
    if max_steps:
        return max_steps
    steps = epochs * batches_per_epoch
    if bounds:
        steps = min(max(steps, bounds[0]), bounds[1])
    return steps
