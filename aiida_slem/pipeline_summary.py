"""The end-of-run report of ``verdi run submit_pipeline.py``: a finished SlemPipelineWorkChain's held-out
errors and verdict, its transfer splits, and its plot files (written to ``plots_dir`` when given)."""

from __future__ import annotations

import pathlib

from aiida import orm


def print_summary(node: orm.WorkflowNode, plots_dir: pathlib.Path | None) -> None:
    """The table ``submit_pipeline.py`` ends with: held-out errors, the verdict, each split, the plots."""
    print(f"\nSlemPipelineWorkChain<{node.pk}>: {node.process_state.value}, exit status {node.exit_status}")
    if not node.is_finished_ok:
        print(
            f"  {node.exit_message or 'see the report'}: verdi process report {node.pk}; "
            f"aiida-slem status {node.pk}"
        )
        return
    dataset, model = node.outputs.dataset, node.outputs.model
    metrics = node.outputs.metrics.get_dict()
    s = metrics["summary"]
    split = dataset.base.attributes.get("n_frames_per_split", {})
    rows = [
        (
            "frames (train / validation / test)",
            f"{split.get('train', 0)} / {split.get('validation', 0)} / {split.get('test', 0)}",
        ),
        ("atoms per frame", ", ".join(map(str, sorted(set(dataset.base.attributes.get("n_atoms", [])))))),
        ("model parameters", str(model.n_params)),
    ]
    for key, name in (
        ("H_mae_meV", "H MAE (meV)"),
        ("H_onsite_mae_meV", "  onsite"),
        ("H_hopping_mae_meV", "  hopping"),
        ("S_mae", "S MAE (x1e-3)"),
        ("D_mae", "D MAE (x1e-3)"),
        ("valence_mae_vs_lcao_meV", "valence band MAE vs LCAO (meV)"),
        ("semicore_mae_vs_lcao_meV", "semicore band MAE vs LCAO (meV, not in valence)"),
        ("conduction_mae_vs_lcao_meV", "conduction band MAE vs LCAO (meV)"),
        ("gap_error_vs_lcao_meV", "|gap error| vs LCAO (meV)"),
        ("offset_vs_pw_meV", "absolute offset vs pw.x (meV, removed below)"),
        ("valence_mae_vs_pw_meV", "valence band MAE vs pw.x (meV)"),
        ("semicore_mae_vs_pw_meV", "semicore band MAE vs pw.x (meV)"),
        ("conduction_mae_vs_pw_meV", "conduction band MAE vs pw.x (meV)"),
        ("gap_error_vs_pw_meV", "|gap error| vs pw.x (meV)"),
        ("valence_mae_lcao_vs_pw_meV", "basis error alone: LCAO valence vs pw.x (meV)"),
        # spin-orbit frames: the splitting of the top valence levels at the VBM (slem/evaluate/splitting.py)
        ("vbm_splitting_error_vs_lcao_meV", "|valence splitting error| at the VBM vs LCAO (meV)"),
        ("vbm_splitting_error_so_part_vs_lcao_meV", "  its spin-orbit part vs LCAO (meV)"),
        ("vbm_splitting_error_vs_pw_meV", "|valence splitting error| at the VBM vs pw.x (meV)"),
        ("vbm_splitting_error_lcao_vs_pw_meV", "basis error alone: LCAO splitting vs pw.x (meV)"),
        # metals (smeared occupations): no gap, the states within +-1 eV of E_F instead
        ("fermi_window_mae_vs_lcao_meV", "band MAE within 1 eV of E_F vs LCAO (meV)"),
        ("fermi_error_vs_lcao_meV", "|E_F error| vs LCAO (meV)"),
        ("fermi_window_mae_vs_pw_meV", "band MAE within 1 eV of E_F vs pw.x (meV)"),
        ("fermi_window_mae_lcao_vs_pw_meV", "basis error alone: LCAO near E_F vs pw.x (meV)"),
    ):
        if s.get(key) is not None:
            value = s[key] * (1000.0 if key in ("S_mae", "D_mae") else 1.0)
            rows.append((name, f"{value:.2f}"))
    verdict = metrics["verdict"]
    if verdict.get("frames", "all") != "all":
        rows.append(("checks below on the frames", verdict["frames"].replace("_", "-")))
    for key, check in verdict["checks"].items():
        value = "n/a" if check["value"] is None else f"{check['value']:.2f}"
        rows.append(
            (f"check {key} <= {check['threshold']:g}", f"{value}  {'pass' if check['passed'] else 'FAIL'}")
        )
    rows.append(("verdict", "PASSED" if verdict["passed"] else "FAILED"))
    width = max(len(r[0]) for r in rows)
    print("-" * (width + 24))
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print("-" * (width + 24))
    if metrics.get("splits"):
        print_splits(metrics["splits"])
    folder = plots_dir or pathlib.Path(f"slem_pipeline_{node.pk}")
    folder.mkdir(parents=True, exist_ok=True)
    print("plots:")
    for name, plot in sorted(node.outputs.plots.items()):
        target = folder / plot.filename
        target.write_bytes(plot.get_content(mode="rb"))
        print(f"  {name:<40} SinglefileData<{plot.pk}>  {target}")
    print(
        f"\nPKs: pipeline {node.pk}, model {model.pk}, dataset {dataset.pk}, "
        f"metrics {node.outputs.metrics.pk}"
    )
    print(f"  aiida-slem status {node.pk}\n  aiida-slem provenance {model.pk}\n  aiida-slem models")


SPLIT_COLUMNS = (
    ("H_mae_meV", "H MAE"),
    ("valence_mae_vs_lcao_meV", "valence vs LCAO"),
    ("conduction_mae_vs_lcao_meV", "conduction vs LCAO"),
    ("fermi_window_mae_vs_lcao_meV", "E_F +-1 eV vs LCAO"),
    ("valence_mae_vs_pw_meV", "valence vs pw.x"),
)


def print_splits(splits: dict) -> None:
    """One row per transfer split (meV): the held-out errors the table above averages over all frames."""
    measured = {k for split in splits.values() for k, v in split["summary"].items() if v is not None}
    columns = [(k, name) for k, name in SPLIT_COLUMNS if k in measured]
    header = f"  {'split (meV)':<22}{'frames':>7}" + "".join(f"{name:>21}" for _, name in columns)
    print(header)
    for name, split in splits.items():
        values = "".join(
            f"{'n/a' if split['summary'].get(k) is None else format(split['summary'][k], '.2f'):>21}"
            for k, _ in columns
        )
        print(f"  {name.replace('_', ' '):<22}{len(split['frames']):>7}{values}")
    print("-" * len(header))
