"""Errors of predicted operator blocks against reference blocks, per operator, element pair and
onsite/hopping.

Blocks are matched by (i, j, R). A frame may store a bond in one direction only; the transposed partner
is then filled in, so half and full pair lists compare equally. A block present in only one of the two
frames counts against the zero block: a model that misses a bond the reference has is penalised.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from slem.data.frame import Frame
from slem.data.operators import OPERATORS, base_operator

# H in eV is reported in meV; S and D are dimensionless and reported as they are.
_SCALE = {"H": 1000.0, "S": 1.0, "D": 1.0}
_UNIT = {"H": "meV", "S": "1", "D": "1"}
SCALE = {name: _SCALE[base_operator(name)] for name in OPERATORS}
UNIT = {name: _UNIT[base_operator(name)] for name in OPERATORS}


def _full_blocks(frame: Frame, operator: str) -> dict[tuple, np.ndarray]:
    blocks = dict(frame.blocks(operator))
    for (i, j, *r), block in list(blocks.items()):
        partner = (j, i, *(-x for x in r))
        if partner not in blocks:
            blocks[partner] = block.T
    return blocks


def _pair_label(symbols: list[str], i: int, j: int) -> str:
    return "-".join(sorted((symbols[i], symbols[j])))


def _summary(diff: np.ndarray, reference: np.ndarray, scale: float) -> dict:
    if diff.size == 0:
        return {"n": 0}
    return {
        "n": int(diff.size),
        "mae": float(np.abs(diff).mean() * scale),
        "rmse": float(np.sqrt((diff**2).mean()) * scale),
        "max": float(np.abs(diff).max() * scale),
        "ref_mean_abs": float(np.abs(reference).mean() * scale),
    }


def block_differences(predicted: Frame, reference: Frame, operator: str):
    """Yield (group keys, predicted values, reference values) per block over the union of blocks."""
    if predicted.n_atoms != reference.n_atoms or np.any(predicted.numbers != reference.numbers):
        raise ValueError(
            "predicted and reference frames hold different atoms; predict the reference frames "
            "themselves (same order) to compare them"
        )
    if np.abs(predicted.positions - reference.positions).max() > 1e-4:
        raise ValueError("predicted and reference frames have different positions (> 1e-4 Angstrom apart)")
    pred, ref = _full_blocks(predicted, operator), _full_blocks(reference, operator)
    symbols = reference.symbols
    for key in sorted(set(pred) | set(ref)):
        i, j, *r = key
        onsite = i == j and not any(r)
        shape = (ref.get(key) if key in ref else pred[key]).shape
        p = pred.get(key, np.zeros(shape))
        q = ref.get(key, np.zeros(shape))
        yield (_pair_label(symbols, i, j), "onsite" if onsite else "hopping", key in pred, key in ref), p, q


def block_errors(predicted: list[Frame], reference: list[Frame], operators: list[str]) -> dict:
    """MAE, RMSE and max error (H in meV, S and D dimensionless) per operator: ``all``, ``onsite``,
    ``hopping`` and per element pair (``Si-Si``, ``onsite Si-Si``, ...), over all frames."""
    if len(predicted) != len(reference):
        raise ValueError(f"{len(predicted)} predicted frames for {len(reference)} reference frames")
    out = {}
    for op in operators:
        groups: dict[str, list] = defaultdict(lambda: [[], []])
        missing, extra = 0, 0
        for pred, ref in zip(predicted, reference, strict=True):
            if op not in pred.operators or op not in ref.operators:
                raise ValueError(f"operator {op} is missing from the predicted or the reference frames")
            for (pair, kind, in_pred, in_ref), p, q in block_differences(pred, ref, op):
                missing += not in_pred
                extra += not in_ref
                for name in ("all", kind, pair, f"{kind} {pair}"):
                    groups[name][0].append((p - q).ravel())
                    groups[name][1].append(q.ravel())
        out[op] = {
            name: _summary(np.concatenate(d), np.concatenate(r), SCALE[op])
            for name, (d, r) in sorted(groups.items())
        }
        out[op]["unit"] = UNIT[op]
        out[op]["blocks_missing_in_prediction"] = missing
        out[op]["blocks_missing_in_reference"] = extra
    return out


def parity_samples(
    predicted: list[Frame], reference: list[Frame], operator: str, limit: int = 20000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(reference, predicted) matrix elements for a parity plot, at most ``limit`` of them (seeded)."""
    ps, qs = [], []
    for pred, ref in zip(predicted, reference, strict=True):
        for _, p, q in block_differences(pred, ref, operator):
            ps.append(p.ravel())
            qs.append(q.ravel())
    p, q = np.concatenate(ps), np.concatenate(qs)
    if len(p) > limit:
        pick = np.random.default_rng(seed).choice(len(p), limit, replace=False)
        p, q = p[pick], q[pick]
    return q * SCALE[operator], p * SCALE[operator]
