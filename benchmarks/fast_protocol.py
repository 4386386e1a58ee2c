"""The fast protocol's inputs of one workflow, read from workflows/protocols/<name>.yaml without AiiDA:
``default_inputs`` with the ``fast`` protocol merged in, nested dicts key by key (as
aiida-quantumespresso's ``recursive_merge`` does for the workchains)."""

from __future__ import annotations

from pathlib import Path

import yaml

PROTOCOLS = Path(__file__).resolve().parents[1] / "workflows" / "protocols"


def merged(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        nested = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merged(out[key], value) if nested else value
    return out


def fast_inputs(name: str) -> dict:
    """E.g. ``fast_inputs("train")["config"]`` or ``fast_inputs("validation")["settings"]``."""
    protocol = yaml.safe_load((PROTOCOLS / f"{name}.yaml").read_text())
    return merged(protocol["default_inputs"], protocol["protocols"]["fast"])
