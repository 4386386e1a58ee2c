"""``aiida-slem models``: a table of the trained models with what they were trained on and how well."""

from __future__ import annotations

import click

ERROR_COLUMNS = (("H_mae_meV", "H MAE/meV"), ("S_mae", "S MAE"), ("D_mae", "D MAE"))


def model_rows() -> list[dict]:
    """One row per SlemModelData, newest first; training-set formulas come from the training job's dataset."""
    from aiida import orm

    from aiida_slem.data.dataset import DatasetData
    from aiida_slem.data.model import SlemModelData
    from aiida_slem.provenance import TRAIN_PROCESS_TYPE

    qb = orm.QueryBuilder()
    qb.append(
        SlemModelData,
        tag="model",
        project=[
            "id",
            "attributes.basis",
            "attributes.n_params",
            "attributes.metrics",
            "attributes.config",
            "ctime",
        ],
    )
    qb.order_by({"model": {"ctime": "desc"}})
    models = qb.all()

    formulas: dict[int, list[str]] = {}
    qb = orm.QueryBuilder()
    qb.append(SlemModelData, tag="model", project=["id"])
    qb.append(
        orm.CalcJobNode, with_outgoing="model", filters={"process_type": TRAIN_PROCESS_TYPE}, tag="train"
    )
    qb.append(
        DatasetData, with_outgoing="train", edge_filters={"label": "dataset"}, project=["attributes.formulas"]
    )
    for pk, dataset_formulas in qb.iterall():
        formulas[pk] = dataset_formulas or []

    rows = []
    for pk, basis, n_params, metrics, config, ctime in models:
        metrics = metrics or {}
        rows.append(
            {
                "pk": pk,
                "formula": ", ".join(formulas.get(pk, [])) or "(no training job)",
                "basis": " ".join(f"{el}:{shells}" for el, shells in sorted((basis or {}).items())),
                "n_params": n_params,
                "steps": (config or {}).get("steps"),
                **{label: metrics.get(key) for key, label in ERROR_COLUMNS},
                "created": ctime.strftime("%Y-%m-%d %H:%M"),
            }
        )
    return rows


def format_table(rows: list[dict]) -> str:
    from tabulate import tabulate

    if not rows:
        return "No trained models yet: run SlemTrainWorkChain (or the pipeline) first."
    shown = [{key: ("-" if value is None else value) for key, value in row.items()} for row in rows]
    return tabulate(shown, headers="keys", floatfmt=".4g")


@click.command("models")
@click.option("--profile", default=None, help="AiiDA profile (default: the default profile).")
def models(profile: str | None) -> None:
    """Table of trained models: pk, material, basis, size and validation errors."""
    from aiida import load_profile

    load_profile(profile, allow_switch=True)
    click.echo(format_table(model_rows()))
