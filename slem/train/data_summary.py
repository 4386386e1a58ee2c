"""What a training config needs from its data, checked against a summary of that data.

The summary comes from the frames file when ``slem train`` starts (``data_checks.py``) or from a dataset
node's attributes when the AiiDA CalcJob is submitted (``calcjobs/train.py``): one rule set, so both print
the same messages. Pure Python: the daemon imports it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass
class DataSummary:
    where: str  # how the messages name it: "dataset frames.h5", "dataset <42>"
    operators: Sequence[str]  # held by every frame
    basis: Mapping[str, str]  # element -> shells
    elements: Sequence[str]
    n_train: int | None = None  # frames in the 'train' split; None: not a training source


def data_problems(operators: Sequence[str], model: Mapping, sources: Sequence[DataSummary]) -> list[str]:
    """Every way the ``operators`` and ``model`` section do not fit the data of ``sources``."""
    problems = []
    for src in sources:
        missing = sorted(set(operators) - set(src.operators))
        if missing:
            problems.append(
                f"{src.where} lacks operator(s) {missing} (it holds {sorted(src.operators)}); drop them from "
                "'operators' or project the frames with them"
            )
        if src.n_train == 0:
            problems.append(f"{src.where} has an empty 'train' split; assign frames to 'train' when writing")
    basis = merged_basis([(src.where, src.basis) for src in sources], problems)
    species = sorted({element for src in sources for element in src.elements})
    wanted = model.get("basis")
    if wanted:
        for element in species:
            if element not in wanted:
                problems.append(f"model.basis has no entry for element {element}, which the data contain")
            elif wanted[element] != basis.get(element):
                problems.append(
                    f"model.basis gives {element}: {wanted[element]} but the data use {basis.get(element)}; "
                    "remove model.basis to take it from the data"
                )
    if model.get("species"):
        extra = sorted(set(species) - set(model["species"]))
        if extra:
            problems.append(f"the data contain element(s) {extra} that model.species does not list")
    r_cut = model.get("r_cut")
    if isinstance(r_cut, Mapping):
        missing = sorted(set(species) - set(r_cut))
        if missing:
            problems.append(f"model.r_cut has no cutoff for {missing}, which the data contain")
    return problems


def merged_basis(parts: Sequence[tuple[str, Mapping[str, str]]], problems: list[str]) -> dict[str, str]:
    """One basis from the (where, element -> shells) of frames or files; a clash is a problem."""
    basis: dict[str, str] = {}
    first: dict[str, str] = {}
    for where, part in parts:
        for element, shells in part.items():
            first.setdefault(element, where)
            if basis.setdefault(element, shells) != shells:
                problems.append(
                    f"element {element} has basis {shells} in {where} but {basis[element]} in "
                    f"{first[element]}; project all frames onto one basis"
                )
    return basis
