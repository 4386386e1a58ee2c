"""Transfer table of finished pipelines (issue 16 targets), one row per split:
``verdi run benchmarks/transfer.py PK [PK ...]`` in the profile that ran them (no PK: every finished
SlemPipelineWorkChain with splits).

Targets: held-out structure or composition, valence band MAE vs LCAO <= 30 meV; larger cells, within 1.5x
the in-distribution error of the same run. The runs themselves are ``submit_pipeline.py`` commands
(docs/transfer.md); this script only reads their metrics, so it costs nothing to rerun.
"""

from __future__ import annotations

import os
import sys

from aiida import orm

TARGET_MEV = 30.0
SIZE_RATIO = 1.5


def band_error(summary: dict) -> tuple[str, float | None]:
    """The split's headline band error: valence (insulators) or the window around E_F (metals)."""
    if summary.get("valence_mae_vs_lcao_meV") is not None:
        return "valence", summary["valence_mae_vs_lcao_meV"]
    return "E_F +-1 eV", summary.get("fermi_window_mae_vs_lcao_meV")


def rows(node: orm.WorkflowNode) -> list[tuple]:
    metrics = node.outputs.metrics.get_dict()
    splits = metrics.get("splits", {})
    labels = "+".join(sorted(node.inputs.structures))
    wall = (node.mtime - node.ctime).total_seconds() / 60.0
    reference = band_error(splits.get("in_distribution", {}).get("summary", {}))[1]
    out = []
    for name, split in splits.items():
        kind, value = band_error(split["summary"])
        if name == "in_distribution":
            target, ratio = "-", None
        elif name == "larger_cells":
            target = f"<= {SIZE_RATIO} x in-distribution"
            ratio = None if value is None or not reference else value / (SIZE_RATIO * reference)
        else:
            target = f"<= {TARGET_MEV:g} meV"
            ratio = None if value is None else value / TARGET_MEV
        h_mae = split["summary"].get("H_mae_meV")
        n_frames = len(split["frames"])
        out.append((node.pk, labels, f"{wall:.0f}", name, n_frames, h_mae, kind, value, target, ratio))
    return out


def main(pks: list[int]) -> None:
    if not pks:
        query = orm.QueryBuilder().append(
            orm.WorkflowNode, filters={"attributes.process_label": "SlemPipelineWorkChain"}, project="id"
        )
        pks = sorted(query.all(flat=True))
    nodes = [orm.load_node(pk) for pk in pks]
    nodes = [n for n in nodes if n.is_finished_ok and "splits" in n.outputs.metrics.get_dict()]
    if not nodes:
        sys.exit("no finished pipeline with transfer splits; run one of the commands in docs/transfer.md")
    header = ("PK", "structures", "wall min", "split", "frames", "H MAE meV", "bands", "band MAE meV")
    header += ("target", "ratio")
    print(f"load average {os.getloadavg()[0]:.1f} now (the runs' own load is in docs/transfer.md)")
    print(" | ".join(header))
    for node in nodes:
        for row in rows(node):
            cells = [f"{c:.2f}" if isinstance(c, float) else ("-" if c is None else str(c)) for c in row]
            print(" | ".join(cells))


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:] if a.isdigit()])
