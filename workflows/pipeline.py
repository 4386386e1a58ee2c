"""``SlemPipelineWorkChain``: structures + protocol -> MD sampling -> dataset -> training -> validation.

One MdSamplingWorkChain per input structure; their snapshots form one dataset (frame labels are
prefixed with the structure label). The structures may differ in composition (Si + C + SiC): each SCF gets
its own elements' pseudopotentials, the basis covers the union, the cutoffs are the largest over it. Held
out for transfer tests (workflows/splits.py): the structure ``hold_out_structure``, the structures holding
all of ``hold_out_elements``, and ``larger_cells`` supercells; the validation reports each split apart.
Every step is a sub-workflow with its own protocol file, exposed here under its namespace (md, dataset,
train, validation).
"""

from __future__ import annotations

import collections

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, while_
from aiida_quantumespresso.workflows.protocols.utils import recursive_merge

from aiida_slem.data.basis import BasisData
from aiida_slem.data.dataset import DatasetData
from aiida_slem.data.model import SlemModelData
from aiida_slem.pseudos import default_family_label

from .composition import settings_structure, union_cutoffs
from .dataset import DatasetWorkChain
from .dimensionality import is_sheet
from .md_sampling import MdSamplingWorkChain
from .pipeline_inputs import structure_compositions, validate_inputs, with_scf_settings
from .protocols import SlemProtocolMixin, check_override_keys, union_pseudos
from .splits import frame_splits, held_out_structures, larger_cell_frames
from .train import SlemTrainWorkChain
from .validation import SlemValidationWorkChain

SECTIONS = ("md", "dataset", "train", "validation")
TRANSFER_KEYS = ("hold_out_structure", "hold_out_elements", "larger_cells")
OVERRIDE_KEYS = (
    *SECTIONS, *TRANSFER_KEYS, "options", "pseudo_family", "electronic_type", "magnetization", "spin_orbit"
)


def _assign(builder, section: str, inputs: dict) -> None:
    """``builder.<section> = inputs``: the step's own validator runs here, its message without the prefix
    AiiDA's builder adds."""
    try:
        setattr(builder, section, inputs)
    except ValueError as exc:
        raise ValueError(str(exc).removeprefix("invalid attribute value ")) from None


def _structures_dict(structures) -> dict[str, orm.StructureData]:
    if isinstance(structures, orm.StructureData):
        return {"structure": structures}
    if isinstance(structures, dict):
        return dict(structures)
    return {f"structure_{i}": s for i, s in enumerate(structures)}


class SlemPipelineWorkChain(SlemProtocolMixin, WorkChain):
    """From structures to a validated SLEM model, with every DFT calculation in the provenance graph."""

    _protocol_file = "pipeline.yaml"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace(
            "structures",
            valid_type=orm.StructureData,
            dynamic=True,
            help="Input cells by label; each gets its own MD, all frames form one dataset.",
        )
        spec.input(
            "hold_out_structure",
            valid_type=orm.Str,
            required=False,
            help="Label of a structure whose frames are all held out (transfer test).",
        )
        spec.input(
            "hold_out_elements",
            valid_type=orm.List,
            required=False,
            help="Elements, e.g. ['Si', 'C']: every structure holding all of them is held out (composition "
            "transfer: SiC after training on Si and on C).",
        )
        spec.input(
            "larger_cells",
            valid_type=orm.List,
            required=False,
            help="Repetitions of the MD supercell, e.g. [2, 2, 2]: one thermally displaced supercell of each "
            "training structure is computed and held out (size transfer); needs md.einstein_frequency.",
        )
        spec.input(
            "builder_parameters",
            valid_type=orm.Dict,
            required=False,
            help="protocol, overrides, options and gpus given to get_builder_from_protocol; 'aiida-slem "
            "retrain' "
            "rebuilds the pipeline for a new structure from them.",
        )
        spec.expose_inputs(MdSamplingWorkChain, namespace="md", exclude=("structure",))
        spec.expose_inputs(DatasetWorkChain, namespace="dataset", exclude=("snapshots",))
        spec.expose_inputs(
            SlemTrainWorkChain, namespace="train", exclude=("train.dataset", "train.validation_dataset")
        )
        spec.expose_inputs(SlemValidationWorkChain, namespace="validation", exclude=("model", "frames"))
        # the sub-workflows' validators check all but the excluded ports (calcjobs.checks.excluded), so a
        # bad training config or validation setting is refused before any DFT runs
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            while_(cls.has_pending_md)(cls.run_md),
            cls.inspect_md,
            cls.run_dataset,
            cls.inspect_dataset,
            cls.run_train,
            cls.inspect_train,
            cls.run_validation,
            cls.inspect_validation,
            cls.results,
        )
        spec.output("model", valid_type=SlemModelData)
        spec.output("dataset", valid_type=DatasetData)
        spec.output("basis", valid_type=BasisData)
        spec.output("train_metrics", valid_type=orm.Dict)
        spec.output(
            "metrics", valid_type=orm.Dict, help="The validation report (blocks, bands, summary, verdict)."
        )
        spec.output("passed", valid_type=orm.Bool)
        spec.output_namespace("plots", valid_type=orm.SinglefileData, dynamic=True)
        spec.exit_code(401, "ERROR_MD_FAILED", message="MdSamplingWorkChain for {label} failed: {status}")
        spec.exit_code(402, "ERROR_DATASET_FAILED", message="DatasetWorkChain failed: {status}")
        spec.exit_code(403, "ERROR_TRAINING_FAILED", message="SlemTrainWorkChain failed: {status}")
        spec.exit_code(404, "ERROR_VALIDATION_FAILED", message="SlemValidationWorkChain failed: {status}")
        spec.exit_code(
            405,
            "ERROR_NO_HELD_OUT_FRAMES",
            message="No held-out frame passed the quality gate; nothing to validate the model on.",
        )

    @classmethod
    def get_builder_from_protocol(
        cls,
        codes: dict,
        structures,
        protocol=None,
        overrides=None,
        options=None,
        gpus: int | None = None,
        electronic_type: str | None = None,
        magnetization: dict | None = None,
        spin_orbit: bool | None = None,
        **_,
    ):
        """Builder for ``protocol`` (fast, balanced, precise).

        ``codes``: ``{"pw": ..., "pp": ..., "slem": ...}`` (Code nodes or labels). ``structures``: one
        StructureData, a list or a ``{label: StructureData}`` dict. ``overrides``: ``{"md": ..., "dataset":
        {..., "operator": ...}, "train": ..., "validation": ..., "hold_out_structure": label, "pseudo_family":
        label}``, each merged into that step's protocol; the family (default: the one 'aiida-slem setup'
        recorded, else Debian's) goes to the MD and the SCFs, and is recorded for 'aiida-slem retrain'.
        ``options``: ``metadata.options`` for every job (e.g. a Slurm queue);
        ``gpus``: GPUs for training (and one for prediction). ``electronic_type`` ('insulator', the default,
        or 'metal'), or the same top-level override, goes to the MD and the SCFs (workflows/electronic.py);
        so does ``magnetization`` ({element: starting magnetisation}: nspin=2, one model head per spin
        channel; workflows/magnetism.py), and ``spin_orbit`` (noncolin + lspinorb with a fully relativistic
        family; the model learns H_so_x, H_so_y, H_so_z; docs/spin-orbit.md)."""
        overrides = dict(overrides or {})
        check_override_keys(overrides, OVERRIDE_KEYS, cls.__name__)
        family = (
            overrides.get("pseudo_family")
            or (overrides.get("md") or {}).get("pseudo_family")
            or default_family_label()
        )
        overrides["pseudo_family"] = family
        overrides["md"] = recursive_merge(overrides.get("md") or {}, {"pseudo_family": family})
        overrides["dataset"] = recursive_merge(
            overrides.get("dataset") or {}, {"operator": {"pseudo_family": family}}
        )
        # kept in overrides, so 'aiida-slem retrain' sees them too
        overrides = with_scf_settings(
            overrides,
            electronic_type=electronic_type or overrides.get("electronic_type"),
            magnetization=magnetization or overrides.get("magnetization"),
            spin_orbit=bool(spin_orbit or overrides.get("spin_orbit")),
        )
        codes = {name: orm.load_code(c) if isinstance(c, (str, int)) else c for name, c in codes.items()}
        missing = sorted({"pw", "pp", "slem"} - set(codes))
        if missing:
            raise ValueError(
                f"codes lacks {missing}; give {{'pw': ..., 'pp': ..., 'slem': ...}} (see aiida-slem setup)"
            )
        structures = _structures_dict(structures)
        inputs = cls.get_protocol_inputs(protocol, {k: overrides[k] for k in TRANSFER_KEYS if k in overrides})
        pseudos = union_pseudos(structures.values(), family)
        first = settings_structure(structures, pseudos)
        union = union_cutoffs(structures, family, protocol, overrides)

        md = MdSamplingWorkChain.get_builder_from_protocol(
            codes["pw"], first, protocol, recursive_merge(overrides.get("md") or {}, union["md"]), options
        )
        md.md.pw.pseudos = pseudos
        md_inputs = md._inputs(prune=True)
        md_inputs.pop("structure")

        supercell = orm.StructureData(ase=first.get_ase().repeat(tuple(md_inputs["supercell"].get_list())))
        dataset = DatasetWorkChain.get_builder_from_protocol(
            codes["pw"],
            codes["pp"],
            codes["slem"],
            {"train": {"reference": supercell}},
            protocol,
            recursive_merge(overrides.get("dataset") or {}, union["dataset"]),
            options,
        )
        dataset.operator.scf.pw.pseudos = pseudos  # the union: each SCF takes its own kinds' (operator.py)
        dataset_inputs = dataset._inputs(prune=True)
        dataset_inputs.pop("snapshots")

        builder = cls.get_builder()
        builder.structures = structures
        builder.builder_parameters = orm.Dict(
            {"protocol": protocol, "overrides": overrides, "options": options or {}, "gpus": gpus}
        )
        if inputs.get("hold_out_structure"):
            builder.hold_out_structure = orm.Str(inputs["hold_out_structure"])
        if inputs.get("hold_out_elements"):
            builder.hold_out_elements = orm.List(list(inputs["hold_out_elements"]))
        if inputs.get("larger_cells"):
            builder.larger_cells = orm.List([int(n) for n in inputs["larger_cells"]])
        _assign(builder, "md", md_inputs)
        _assign(builder, "dataset", dataset_inputs)
        # the top-level 'options' override goes to the training, prediction and comparison jobs (a GPU queue)
        job_overrides = {"options": overrides["options"]} if overrides.get("options") else {}
        train = SlemTrainWorkChain.get_builder_from_protocol(
            codes["slem"],
            protocol=protocol,
            overrides=recursive_merge(job_overrides, overrides.get("train") or {}),
            options=options,
            gpus=gpus,
            sheet=any(is_sheet(structure) for structure in structures.values()),
            spin=bool(overrides.get("magnetization")),
            spin_orbit=bool(overrides.get("spin_orbit")),
        )
        _assign(builder, "train", train._inputs(prune=True))
        validation = SlemValidationWorkChain.get_builder_from_protocol(
            codes["slem"],
            pw_code=codes["pw"],
            protocol=protocol,
            overrides=recursive_merge(job_overrides, overrides.get("validation") or {}),
            options=options,
            gpus=min(train.train.gpus.value, 1),
        )
        # the pw.x bands runs go where the SCFs went, not to the (possibly GPU) training queue
        validation.pw_options = orm.Dict(dict(dataset_inputs["operator"]["scf"]["pw"]["metadata"]["options"]))
        _assign(builder, "validation", validation._inputs(prune=True))
        return builder

    def _held_out(self) -> dict[str, str]:
        """{label: split} of the structures whose frames are all held out."""
        return held_out_structures(
            structure_compositions(self.inputs.structures),
            self.inputs.hold_out_structure.value if "hold_out_structure" in self.inputs else None,
            self.inputs.hold_out_elements.get_list() if "hold_out_elements" in self.inputs else None,
        )

    def setup(self):
        self.ctx.md_pending = sorted(self.inputs.structures)

    def has_pending_md(self) -> bool:
        return bool(self.ctx.md_pending)

    def run_md(self):
        """Every structure's MD at once; with md.max_concurrent set, one structure at a time, so that the
        bound holds for the pipeline and not per structure."""
        bound = 1 if self.inputs.md.max_concurrent.value else len(self.ctx.md_pending)
        batch, self.ctx.md_pending = self.ctx.md_pending[:bound], self.ctx.md_pending[bound:]
        futures = {}
        held = self._held_out()
        for label in batch:
            structure = self.inputs.structures[label]
            inputs = AttributeDict(self.exposed_inputs(MdSamplingWorkChain, namespace="md"))
            inputs.structure = structure
            if label in held:  # strained cells widen the training data; a held-out structure has none
                inputs.strains = orm.List([])
            inputs.md = AttributeDict(inputs.md)
            inputs.md.pw = AttributeDict(inputs.md.pw)
            inputs.md.pw.pseudos = {kind: inputs.md.pw.pseudos[kind] for kind in structure.get_kind_names()}
            inputs.metadata = {"call_link_label": f"md_{label}"}
            futures[f"md_{label}"] = self.submit(MdSamplingWorkChain, **inputs)
            self.report(f"launched MdSamplingWorkChain<{futures[f'md_{label}'].pk}> for structure {label}")
        return ToContext(**futures)

    def inspect_md(self):
        held = self._held_out()
        snapshots = {"train": {}, "held_out": {}}
        origin = {}  # held-out frame label -> its structure's label
        for label in sorted(self.inputs.structures):
            node = self.ctx[f"md_{label}"]
            if not node.is_finished_ok:
                return self.exit_codes.ERROR_MD_FAILED.format(label=label, status=node.exit_status)
            for kind in ("train", "held_out"):
                target = "held_out" if label in held else kind
                for name, structure in node.outputs.snapshots[kind].items():
                    snapshots[target][f"{label}_{name}"] = structure
                    if target == "held_out":
                        origin[f"{label}_{name}"] = label
        larger, self.ctx.larger_factors = larger_cell_frames(self.inputs, held)
        snapshots["held_out"].update(larger)
        origin.update({frame: None for frame in larger})
        if not snapshots["held_out"]:
            return self.exit_codes.ERROR_NO_HELD_OUT_FRAMES
        self.ctx.snapshots = snapshots
        self.ctx.splits = frame_splits(origin, held, set(larger))
        counts = collections.Counter(self.ctx.splits.values())
        self.report(
            f"{len(snapshots['train'])} training-pool and {len(snapshots['held_out'])} held-out snapshots "
            f"({', '.join(f'{split} {n}' for split, n in sorted(counts.items()))})"
        )
        return None

    def run_dataset(self):
        inputs = AttributeDict(self.exposed_inputs(DatasetWorkChain, namespace="dataset"))
        inputs.snapshots = self.ctx.snapshots
        if self.ctx.larger_factors:
            inputs.supercell_frames = orm.Dict(self.ctx.larger_factors)
        inputs.metadata = {"call_link_label": "dataset"}
        return ToContext(dataset=self.submit(DatasetWorkChain, **inputs))

    def inspect_dataset(self):
        node = self.ctx.dataset
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_DATASET_FAILED.format(
                status=f"{node.exit_status} {node.exit_message or ''}"
            )
        held_out = {f"{label}" for label in self.ctx.snapshots["held_out"]}
        self.ctx.test_frames = {
            label: op for label, op in node.outputs.operators.items() if label in held_out
        }
        if not self.ctx.test_frames:
            return self.exit_codes.ERROR_NO_HELD_OUT_FRAMES
        return None

    def run_train(self):
        inputs = AttributeDict(self.exposed_inputs(SlemTrainWorkChain, namespace="train"))
        inputs.train = AttributeDict(inputs.train)
        inputs.train.dataset = self.ctx.dataset.outputs.dataset
        if inputs.train.config.get_dict().get("model", {}).get("overlap") == "basis":
            inputs.train.basis = self.ctx.dataset.outputs.basis
        inputs.metadata = {"call_link_label": "train"}
        return ToContext(train=self.submit(SlemTrainWorkChain, **inputs))

    def inspect_train(self):
        node = self.ctx.train
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_TRAINING_FAILED.format(
                status=f"{node.exit_status} {node.exit_message or ''}"
            )
        return None

    def run_validation(self):
        inputs = AttributeDict(self.exposed_inputs(SlemValidationWorkChain, namespace="validation"))
        inputs.model = self.ctx.train.outputs.model
        inputs.frames = self.ctx.test_frames
        inputs.splits = orm.Dict({label: self.ctx.splits[label] for label in self.ctx.test_frames})
        inputs.metadata = {"call_link_label": "validation"}
        return ToContext(validation=self.submit(SlemValidationWorkChain, **inputs))

    def inspect_validation(self):
        node = self.ctx.validation
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_VALIDATION_FAILED.format(
                status=f"{node.exit_status} {node.exit_message or ''}"
            )
        return None

    def results(self):
        self.out("model", self.ctx.train.outputs.model)
        self.out("train_metrics", self.ctx.train.outputs.metrics)
        self.out("dataset", self.ctx.dataset.outputs.dataset)
        self.out("basis", self.ctx.dataset.outputs.basis)
        validation = self.ctx.validation.outputs
        self.out("metrics", validation.metrics)
        self.out("passed", validation.passed)
        for name, node in validation.plots.items():
            self.out(f"plots.{name}", node)
