"""What a trained model was made from, found with QueryBuilder queries on the provenance graph.

The walk follows data provenance only (CREATE and INPUT_CALC links): model <- slem.train <- DatasetData
<- merge calcfunction <- OperatorData (one per frame) <- slem.project <- pw.x SCF <- MD snapshot <- pw.x MD.
Workflows never appear on that path, so the answers do not depend on how the jobs were orchestrated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiida import orm

from aiida_slem.data.dataset import DatasetData
from aiida_slem.data.model import SlemModelData
from aiida_slem.data.operator import OperatorData

PW_PROCESS_TYPE = "aiida.calculations:quantumespresso.pw"
TRAIN_PROCESS_TYPE = "aiida.calculations:slem.train"


@dataclass
class FrameOrigin:
    """One frame of the training dataset and the pw.x runs behind it (its SCF, and the MD it came from)."""

    label: str
    operator: OperatorData
    pw_calculations: list[orm.CalcJobNode] = field(default_factory=list)

    def by_kind(self, kind: str) -> list[orm.CalcJobNode]:
        return [calc for calc in self.pw_calculations if pw_calculation_kind(calc) == kind]


def as_model(model: SlemModelData | int | str) -> SlemModelData:
    node = model if isinstance(model, orm.Node) else orm.load_node(model)
    if not isinstance(node, SlemModelData):
        raise TypeError(f"node <{node.pk}> is a {type(node).__name__}, not a SlemModelData")
    return node


def training_calculation(model: SlemModelData) -> orm.CalcJobNode | None:
    """The ``slem.train`` job that created the model (None for a model imported from a file)."""
    qb = orm.QueryBuilder()
    qb.append(SlemModelData, filters={"id": model.pk}, tag="model")
    qb.append(
        orm.CalcJobNode, with_outgoing="model", filters={"process_type": TRAIN_PROCESS_TYPE}, project="*"
    )
    row = qb.first()
    return row[0] if row else None


def training_dataset(model: SlemModelData) -> DatasetData | None:
    """The ``DatasetData`` given to the training job as ``dataset``."""
    qb = orm.QueryBuilder()
    qb.append(SlemModelData, filters={"id": model.pk}, tag="model")
    qb.append(
        orm.CalcJobNode, with_outgoing="model", filters={"process_type": TRAIN_PROCESS_TYPE}, tag="train"
    )
    qb.append(DatasetData, with_outgoing="train", edge_filters={"label": "dataset"}, project="*")
    row = qb.first()
    return row[0] if row else None


def dataset_frames(dataset: DatasetData) -> list[FrameOrigin]:
    """Every source frame (OperatorData) merged into the dataset, with the pw.x jobs among its ancestors."""

    def frames_query(with_pw: bool) -> orm.QueryBuilder:
        qb = orm.QueryBuilder()
        qb.append(DatasetData, filters={"id": dataset.pk}, tag="dataset")
        qb.append(orm.CalculationNode, with_outgoing="dataset", tag="merge")
        qb.append(
            OperatorData,
            with_outgoing="merge",
            edge_tag="link",
            edge_project="label",
            project="*",
            tag="frame",
        )
        if with_pw:
            qb.append(
                orm.CalcJobNode,
                with_descendants="frame",
                filters={"process_type": PW_PROCESS_TYPE},
                project="*",
                tag="pw",
            )
        return qb

    origins: dict[int, FrameOrigin] = {}
    # the second pass lists frames without any pw.x ancestor (imported files) too
    for with_pw in (True, False):
        for row in frames_query(with_pw).iterdict():
            frame = row["frame"]["*"]
            origin = origins.setdefault(frame.pk, FrameOrigin(row["link"]["label"], frame))
            # one row per path through the graph: the same job can be reached several ways
            if with_pw and row["pw"]["*"].pk not in {calc.pk for calc in origin.pw_calculations}:
                origin.pw_calculations.append(row["pw"]["*"])
    for origin in origins.values():
        origin.pw_calculations.sort(key=lambda calc: calc.ctime)
    return sorted(origins.values(), key=lambda origin: origin.label)


def ancestors(model: SlemModelData, node_class: type, filters: dict | None = None) -> list:
    """All nodes of ``node_class`` upstream of the model, oldest first."""
    qb = orm.QueryBuilder()
    qb.append(SlemModelData, filters={"id": model.pk}, tag="model")
    qb.append(node_class, with_descendants="model", filters=filters or {}, project="*")
    return sorted({row[0].pk: row[0] for row in qb.iterall()}.values(), key=lambda node: node.ctime)


def pw_calculations(model: SlemModelData) -> list[orm.CalcJobNode]:
    return ancestors(model, orm.CalcJobNode, {"process_type": PW_PROCESS_TYPE})


def calculations(model: SlemModelData) -> list[orm.CalcJobNode]:
    """Every calculation job upstream of the model (pw.x, pp.x, slem basis/project/train)."""
    return ancestors(model, orm.CalcJobNode)


def pseudopotentials(model: SlemModelData) -> list[orm.Data]:
    from aiida_pseudo.data.pseudo import UpfData

    return ancestors(model, UpfData)


def codes(model: SlemModelData) -> list[orm.AbstractCode]:
    # QueryBuilder's subclass filter for AbstractCode widens to 'data.core.%' (every core data node) in
    # aiida-core 2.9, so the code node types are matched explicitly
    return ancestors(model, orm.Data, {"node_type": {"like": "data.core.code.%"}})


def pw_calculation_kind(calc: orm.CalcJobNode) -> str:
    """'scf', 'md', 'relax', ... from CONTROL.calculation of the pw.x input (pw.x's default is scf)."""
    try:
        return str(calc.inputs.parameters.get_dict().get("CONTROL", {}).get("calculation", "scf"))
    except AttributeError:
        return "unknown"


def code_label(calc: orm.CalcJobNode) -> str:
    try:
        code = calc.inputs.code
    except AttributeError:
        return "-"
    return code_text(code)


def code_text(code: orm.AbstractCode) -> str:
    """``label@computer``; codes without a computer (portable, containerised elsewhere) by label only."""
    computer = getattr(code, "computer", None)
    return f"{code.label}@{computer.label}" if computer is not None else code.label


def provenance_summary(model: SlemModelData) -> dict:
    """Everything the ``aiida-slem provenance`` command prints, as plain data."""
    dataset = training_dataset(model)
    frames = dataset_frames(dataset) if dataset is not None else []
    return {
        "model": model,
        "training": training_calculation(model),
        "dataset": dataset,
        "frames": frames,
        "calculations": calculations(model),
        "pseudopotentials": pseudopotentials(model),
        "codes": codes(model),
    }
