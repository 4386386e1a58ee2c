"""The one way slem checks a configuration section against its dataclass.

A section is a dataclass whose annotations are the schema: ``check_section`` reports unknown keys (with a
did-you-mean, aliases included), values of the wrong type and missing required keys, all at once, and
returns the values coerced to their declared types. The training config (``slem.train.config``) and the
model config (``slem.model.config``) both go through it, so ``slem train``, ``Trainer`` and the AiiDA
CalcJob's submission check print the same messages. Pure Python: the daemon imports it.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

# names other trainers and model codes use for the same settings
ALIASES = {
    "learning_rate": "lr",
    "steps": "max_steps",
    "num_steps": "max_steps",
    "n_steps": "max_steps",
    "num_epochs": "epochs",
    "n_epochs": "epochs",
    "batch": "batch_size",
    "ema_decay": "ema",
    "lr_scheduler": "scheduler",
    "output": "output_dir",
    "outdir": "output_dir",
    "data": "dataset",
    "num_layers": "n_layers",
    "layers": "n_layers",
    "irreps_hidden": "hidden_irreps",
    "cutoff": "r_cut",
    "r_max": "r_cut",
    "rcut": "r_cut",
    "num_basis": "n_radial",
    "num_radial": "n_radial",
}


def suggest(key: str, allowed: list[str]) -> str:
    """'; did you mean ...' for a misspelt or foreign key, else the allowed keys."""
    if ALIASES.get(key) in allowed:
        return f"; did you mean '{ALIASES[key]}'?"
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else f"; allowed keys: {', '.join(sorted(allowed))}"


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin in (list, dict):
        return f"a {origin.__name__}"
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    """Return (ok, value); ints are accepted for floats, YAML strings like '5e-3' for floats."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, out = coerce(value, arg)
            if ok:
                return True, out
        return False, value
    if origin is Literal:
        return value in typing.get_args(tp), value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        if isinstance(value, str):  # PyYAML reads '5e-3' (no dot) as a string
            try:
                return True, float(value)
            except ValueError:
                return False, value
        return False, value
    if tp is str:
        return isinstance(value, str), value
    if origin is list or tp is list:
        return isinstance(value, (list, tuple)), list(value) if isinstance(value, (list, tuple)) else value
    if origin is dict or tp is dict:
        return isinstance(value, Mapping), dict(value) if isinstance(value, Mapping) else value
    raise TypeError(f"unsupported schema type {tp}")


def check_section(
    cls: type, data: Any, where: str, problems: list[str], required: bool = True
) -> dict:
    """Values of ``data`` coerced to the types of dataclass ``cls``; every problem is appended.

    Fields that are themselves dataclasses (sub-sections) are skipped: the caller checks them.
    ``required=False`` accepts a section whose required keys will come from elsewhere (the data)."""
    if not isinstance(data, Mapping):
        problems.append(f"'{where}' must be a mapping, got {type(data).__name__}")
        return {}
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for key, value in data.items():
        if key not in fields:
            problems.append(f"unknown key '{where}.{key}'{suggest(str(key), list(fields))}")
            continue
        if dataclasses.is_dataclass(hints[key]):
            continue
        ok, coerced = coerce(value, hints[key])
        if not ok:
            problems.append(
                f"'{where}.{key}' must be {type_name(hints[key])}, got {value!r} ({type(value).__name__})"
            )
            continue
        out[key] = coerced
    for name, f in fields.items():
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and no_default and name not in data:
            problems.append(f"missing required key '{where}.{name}'")
    return out
