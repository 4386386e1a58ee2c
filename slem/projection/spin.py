"""Checks of a collinear spin-polarised projection against pw.x's magnetisation."""

from __future__ import annotations

import numpy as np

from slem.data.operators import SPIN_CHANNELS
from slem.qe.xml import QeScf

from .errors import ProjectionError

# |M_LCAO - M_pw.x| (Bohr magnetons per cell) beyond which the two potentials cannot be the run's up and
# down channels (swapped, spin_component=0, or another run); a right projection is far closer.
MAGNETIZATION_REFUSAL_MUB = 0.25


def magnetization_checks(scf: QeScf, operators: dict) -> dict:
    """M = sum_R Tr((D_up - D_down) S) against pw.x's total magnetisation; refuses a clear mismatch."""
    up, down = (float(np.dot(operators[f"D_{c}"], operators["S"])) for c in SPIN_CHANNELS)
    qe = scf.magnetization_total
    checks = {
        "electrons_up": up,
        "electrons_down": down,
        "magnetization_mub": up - down,
        "qe_magnetization_mub": qe,
        "qe_absolute_magnetization_mub": scf.magnetization_absolute,
        "magnetization_error_mub": None if qe is None else up - down - qe,
    }
    if qe is not None and abs(up - down - qe) > MAGNETIZATION_REFUSAL_MUB:
        raise ProjectionError(
            f"the projected magnetisation {up - down:.3f} mu_B differs from pw.x's {qe:.3f} mu_B by over "
            f"{MAGNETIZATION_REFUSAL_MUB} mu_B: the potentials are not this run's up and down channels "
            "(swapped, or written with spin_component=0); write them with pp.x plot_num=1 and "
            "spin_component=1 (up), then 2 (down)"
        )
    return checks
