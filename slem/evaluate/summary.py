"""Headline numbers of a validation report (frame-averaged, meV) and the verdict against thresholds."""

from __future__ import annotations

import numpy as np

from slem.data.operators import SPIN_CHANNELS


def _mean(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _mean_abs(values: list[float | None]) -> float | None:
    values = [abs(v) for v in values if v is not None]
    return float(np.mean(values)) if values else None


def verdict(summary: dict, thresholds: dict) -> dict:
    """Check each threshold (an upper bound on |summary entry|); ``passed`` if all hold."""
    checks = {}
    for key, limit in sorted(thresholds.items()):
        value = summary.get(key)
        ok = value is not None and abs(value) <= float(limit)
        checks[key] = {"value": value, "threshold": float(limit), "passed": bool(ok)}
        if value is None:
            checks[key]["note"] = f"'{key}' was not measured; known entries: {sorted(summary)}"
    return {"checks": checks, "passed": all(c["passed"] for c in checks.values())}


def summarise(report: dict) -> dict:
    """Flat headline numbers: block MAEs and frame-averaged band errors (meV)."""
    summary = {}
    for op, errors in report["blocks"].items():
        unit = "_meV" if errors["unit"] == "meV" else ""
        summary[f"{op}_mae{unit}"] = errors["all"].get("mae")
        summary[f"{op}_rmse{unit}"] = errors["all"].get("rmse")
        for kind in ("onsite", "hopping"):
            if kind in errors:
                summary[f"{op}_{kind}_mae{unit}"] = errors[kind].get("mae")
    for base, unit in (("H", "_meV"), ("D", "")):
        # a spin-polarised model's headline H and D errors: the mean over its two equally sized channels
        channels = [f"{base}_{c}" for c in SPIN_CHANNELS]
        if base not in report["blocks"] and all(c in report["blocks"] for c in channels):
            for kind in ("", "_onsite", "_hopping"):
                key = f"{kind}_mae{unit}"
                summary[f"{base}{key}"] = _mean([summary.get(f"{c}{key}") for c in channels])
    bands = list(report["bands"].values())
    summary["frames_with_reference_S"] = sum(b["overlap_used"] != "predicted" for b in bands)
    for ref in ("vs_lcao", "vs_pw", "lcao_vs_pw"):
        entries = [b[ref]["all"] for b in bands if ref in b]
        if not entries:
            continue
        for key in ("valence_mae_meV", "conduction_mae_meV", "offset_meV"):
            summary[f"{key[:-4]}_{ref}_meV"] = _mean([e.get(key) for e in entries])
        if any(e.get("n_semicore") for e in entries):
            summary[f"semicore_mae_{ref}_meV"] = _mean([e.get("semicore_mae_meV") for e in entries])
        summary[f"gap_error_{ref}_meV"] = _mean_abs([e.get("gap_error_meV") for e in entries])
        if any(b.get("electronic_type") == "metal" for b in bands):
            summary[f"fermi_window_mae_{ref}_meV"] = _mean([e.get("fermi_window_mae_meV") for e in entries])
            if ref == "vs_lcao":
                summary[f"fermi_error_{ref}_meV"] = _mean_abs([e.get("fermi_error_meV") for e in entries])
    splittings = [b["valence_splitting"] for b in bands if "valence_splitting" in b]
    if splittings:
        # |error| of the splitting of the top valence levels at the VBM of spin-orbit frames, and of its
        # spin-orbit part (slem/evaluate/splitting.py), frame-averaged
        for key, name in (("error_meV", "vs_lcao"), ("error_vs_pw_meV", "vs_pw"),
                          ("lcao_vs_pw_meV", "lcao_vs_pw"), ("spin_orbit_part_error_meV", "so_part_vs_lcao")):
            if any(key in e for e in splittings):
                summary[f"vbm_splitting_error_{name}_meV"] = _mean_abs([e.get(key) for e in splittings])
    return summary
