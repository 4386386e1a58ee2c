"""Structures of different compositions in one pipeline: kind names, cutoffs and the shared settings.

The MD and SCF settings of a pipeline are made once, for one structure, and shared (workflows/pipeline.py);
these helpers keep that sound when the structures differ in elements.
"""

from __future__ import annotations

from aiida import orm

from .electronic import valence_electrons
from .md_sampling import MdSamplingWorkChain
from .protocols import recommended_cutoffs


def kind_problem(structures: dict) -> str | None:
    """One set of pseudopotentials serves all structures, keyed by kind name: a name must mean one element."""
    seen: dict[str, tuple[str, str]] = {}
    for label, structure in sorted(structures.items()):
        for kind in structure.kinds:
            other = seen.setdefault(kind.name, (kind.symbol, label))
            if other[0] != kind.symbol:
                return (
                    f"kind {kind.name!r} is {other[0]} in structure {other[1]} but {kind.symbol} in {label}; "
                    "one pipeline gives each kind name one pseudopotential: rename one of the kinds"
                )
    return None


def union_cutoffs(structures: dict, family: str, protocol: str | None, overrides: dict) -> dict:
    """Overrides that set the largest recommended cutoffs over all structures, where they differ in elements
    and the user set none: every SCF of one dataset then shares one plane-wave basis."""
    if len({frozenset(s.get_symbols_set()) for s in structures.values()}) < 2:
        return {"md": {}, "dataset": {}}
    given = [
        (overrides.get("md") or {}).get("pw_parameters", {}).get("SYSTEM", {}),
        ((overrides.get("dataset") or {}).get("operator") or {}).get("pw_parameters", {}).get("SYSTEM", {}),
    ]
    name = MdSamplingWorkChain.protocol_name(protocol)
    pairs = [recommended_cutoffs(s, family, name) for s in structures.values()]
    system = {"ecutwfc": max(p[0] for p in pairs), "ecutrho": max(p[1] for p in pairs)}
    md = {} if "ecutwfc" in given[0] else {"pw_parameters": {"SYSTEM": system}}
    operator = {} if "ecutwfc" in given[1] else {"operator": {"pw_parameters": {"SYSTEM": system}}}
    return {"md": md, "dataset": operator}


def settings_structure(structures: dict, pseudos: dict) -> orm.StructureData:
    """The structure the shared MD and SCF settings are made for: the most valence electrons, so that a
    metal's nbnd (a multiple of N/2) suffices for every structure; the first of equals."""
    return max(structures.values(), key=lambda s: valence_electrons(s, pseudos))
