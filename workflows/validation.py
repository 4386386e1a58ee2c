"""``SlemValidationWorkChain``: a trained model against held-out DFT frames it has never seen.

Steps: the held-out ``OperatorData`` are merged into one test ``DatasetData``; ``slem.predict`` predicts
those very frames (same atoms, same positions, so blocks match by (i, j, R)); in parallel, pw.x computes
plane-wave eigenvalues at the validation k-points (standard path + random k) from each frame's own SCF,
found through the provenance graph. ``slem.validate`` then compares everything on the compute node (Bloch
sums, dense eigen-solves, plots) and its parser stores the report, the verdict against the protocol
thresholds and the PNG plots: the daemon only moves files and numbers.

The pw.x ``bands`` runs are built in ``pw_bands.py``.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import ToContext, WorkChain, while_
from aiida_quantumespresso.workflows.pw.base import PwBaseWorkChain
from aiida_slem.calcjobs.checks import excluded
from aiida_slem.calcjobs.predict import SlemPredictCalculation
from aiida_slem.calcjobs.validate import SlemValidateCalculation

from aiida_slem.data.dataset import DatasetData
from aiida_slem.data.merge import merge_operator_frames
from aiida_slem.data.model import SlemModelData
from aiida_slem.data.operator import OperatorData
from slem.evaluate.settings import SPLITS, Settings, unknown_splits

from .protocols import SlemProtocolMixin, calcjob_options
from .pw_bands import bands_inputs, scf_of

# the options a validate job shares with the predict job (not its parser, output file names or MPI)
SCHEDULER_OPTIONS = (
    "resources",
    "max_wallclock_seconds",
    "max_memory_kb",
    "queue_name",
    "account",
    "qos",
    "prepend_text",
    "append_text",
    "environment_variables",
    "import_sys_environment",
)


def frames_problem(inputs: dict) -> str | None:
    """The held-out frames against the model: known elements, the model's basis, an electron count."""
    frames = inputs.get("frames", {})
    if not frames:
        return "give at least one held-out OperatorData in 'frames'"
    species = set(inputs["model"].base.attributes.get("species", []))
    basis = inputs["model"].base.attributes.get("basis", {})
    for label, frame in sorted(frames.items()):
        unknown = sorted(set(frame.base.attributes.get("elements", [])) - species)
        if unknown:
            return (
                f"frame {label} holds element(s) {unknown} the model was not trained on "
                f"(species {sorted(species)})"
            )
        differing = {
            el: (basis.get(el), b)
            for el, b in frame.base.attributes.get("basis", {}).items()
            if basis.get(el) != b
        }
        if differing:
            return (
                f"frame {label} was projected onto another basis than the model's "
                f"(element: (model, frame)) {differing}"
            )
        if "n_electrons" not in frame.base.attributes:
            return f"frame {label} lacks the n_electrons attribute that counts the valence bands"
    if "splits" in inputs:
        splits = inputs["splits"].get_dict()
        missing = sorted(set(frames) - set(splits))
        unknown = unknown_splits(splits)
        if missing or unknown:
            return (
                f"splits must give each frame one of {list(SPLITS)}; frames without one: {missing}, "
                f"unknown splits: {unknown}"
            )
    if "pw_code" in inputs:
        for label, frame in sorted(frames.items()):
            try:
                scf_of(frame)
            except (ValueError, AttributeError) as exc:
                return f"frame {label}: {exc}; drop 'pw_code' to skip the comparison with pw.x"
    return None


def validate_inputs(inputs: dict, ctx) -> str | None:
    if "max_concurrent" in inputs and inputs["max_concurrent"].value < 1:
        return "max_concurrent must be at least 1"
    try:
        Settings.from_dict(inputs["settings"].get_dict())
    except (TypeError, ValueError) as exc:
        return str(exc)
    if excluded(ctx, "model", "frames"):
        return None  # exposed in SlemPipelineWorkChain, which trains the model and makes the frames
    return frames_problem(inputs)


class SlemValidationWorkChain(SlemProtocolMixin, WorkChain):
    """Errors of a model on held-out frames: H/S/D blocks and bands, vs LCAO and vs pw.x, with plots."""

    _protocol_file = "validation.yaml"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("model", valid_type=SlemModelData)
        spec.input_namespace(
            "frames",
            valid_type=OperatorData,
            dynamic=True,
            help="Held-out frames (never in the training or validation split), by label.",
        )
        spec.input(
            "settings",
            valid_type=orm.Dict,
            default=lambda: orm.Dict({}),
            help="kpath_npoints, n_random_k, seed, conduction_window_eV, thresholds {summary key: max}; "
            "for metals fermi_window_eV, fermi_kspacing, fermi_smearing_eV, metal_thresholds.",
        )
        spec.expose_inputs(
            SlemPredictCalculation,
            namespace="predict",
            exclude=("model", "structure", "structures", "dataset"),
        )
        spec.input(
            "splits",
            valid_type=orm.Dict,
            required=False,
            help="{frame label: transfer split} (in_distribution, held_out_structure, held_out_composition, "
            "larger_cells): the report then has each split's errors; the verdict takes the in-distribution "
            "ones.",
        )
        spec.input(
            "pw_code",
            valid_type=orm.AbstractCode,
            required=False,
            help="pw.x for plane-wave eigenvalues at the validation k-points; without it only the LCAO "
            "reference is compared.",
        )
        spec.input(
            "pw_options", valid_type=orm.Dict, required=False, help="metadata.options of the pw.x runs."
        )
        spec.input(
            "max_concurrent",
            valid_type=orm.Int,
            default=lambda: orm.Int(4),
            help="pw.x bands runs at the same time.",
        )
        spec.input(
            "pw_max_atoms",
            valid_type=orm.Int,
            required=False,
            help="pw.x bands only for frames of at most this many atoms: a 64-atom cell's bands take an hour "
            "on a workstation, and its LCAO reference (from its own SCF) is what a size test compares with.",
        )
        spec.input(
            "extra_bands",
            valid_type=orm.Int,
            default=lambda: orm.Int(8),
            help="Conduction bands pw.x computes above the valence bands (at least this many).",
        )
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            cls.run_jobs,
            while_(cls.has_pending_bands)(cls.next_band_batch),
            cls.inspect,
            cls.run_compare,
            cls.inspect_compare,
            cls.results,
        )
        spec.output("test_dataset", valid_type=DatasetData, help="The held-out frames as one file.")
        spec.output("predictions", valid_type=DatasetData)
        spec.output("metrics", valid_type=orm.Dict, help="blocks, bands, summary and verdict.")
        spec.output("passed", valid_type=orm.Bool, help="Whether every protocol threshold is met.")
        spec.output_namespace("plots", valid_type=orm.SinglefileData, dynamic=True)
        spec.output_namespace("pw_bands", valid_type=orm.BandsData, dynamic=True, required=False)
        spec.exit_code(
            401, "ERROR_PREDICT_FAILED", message="slem predict failed with exit status {status}: {message}"
        )
        spec.exit_code(
            402, "ERROR_PW_BANDS_FAILED", message="The pw.x bands run for frame {label} failed: {status}"
        )
        spec.exit_code(
            403,
            "ERROR_COMPARISON_FAILED",
            message="slem validate failed with exit status {status}: {message}",
        )

    @classmethod
    def get_builder_from_protocol(
        cls,
        slem_code,
        model=None,
        frames=None,
        pw_code=None,
        protocol=None,
        overrides=None,
        options=None,
        gpus: int = 0,
        **_,
    ):
        """Builder with ``validation.yaml``: k-points, windows and thresholds of ``protocol``.

        ``overrides`` merge into the protocol (``settings``, ``extra_bands``, ``max_concurrent``,
        ``options``); ``options`` go to the prediction, comparison and pw.x jobs; ``gpus`` (0 or 1) to the
        prediction.
        ``model`` and ``frames`` may be set later, as the pipeline does once it has trained."""
        inputs = cls.get_protocol_inputs(protocol, overrides)
        job_options = calcjob_options(inputs["options"], options)
        builder = cls.get_builder()
        if model is not None:
            builder.model = model
        if frames:
            builder.frames = dict(frames)
        builder.settings = orm.Dict(inputs["settings"])
        builder.max_concurrent = orm.Int(inputs["max_concurrent"])
        builder.predict.code = orm.load_code(slem_code) if isinstance(slem_code, (str, int)) else slem_code
        builder.predict.metadata.options = job_options
        if gpus:
            builder.predict.gpus = orm.Int(int(gpus))
        if pw_code is not None:
            builder.pw_code = orm.load_code(pw_code) if isinstance(pw_code, (str, int)) else pw_code
            builder.pw_options = orm.Dict(job_options)
            builder.extra_bands = orm.Int(inputs["extra_bands"])
            if inputs.get("pw_max_atoms"):
                builder.pw_max_atoms = orm.Int(inputs["pw_max_atoms"])
        return builder

    def setup(self):
        self.ctx.labels = sorted(self.inputs.frames)
        self.ctx.test_dataset = merge_operator_frames(
            split=orm.Dict({"test": self.ctx.labels}),
            metadata={"call_link_label": "held_out_frames"},
            **dict(self.inputs.frames),
        )

    def with_pw(self) -> bool:
        return "pw_code" in self.inputs

    def pw_labels(self) -> list[str]:
        """The frames compared with pw.x: all, or those within ``pw_max_atoms``."""
        if not self.with_pw():
            return []
        limit = self.inputs.pw_max_atoms.value if "pw_max_atoms" in self.inputs else None
        frames = self.inputs.frames
        return [
            label
            for label in self.ctx.labels
            if limit is None or frames[label].base.attributes.get("n_atoms", 0) <= limit
        ]

    def run_jobs(self):
        """Prediction and the first batch of pw.x bands runs are independent: submit them together."""
        self.ctx.pending_bands = self.pw_labels()
        skipped = len(self.ctx.labels) - len(self.ctx.pending_bands) if self.with_pw() else 0
        if skipped:
            self.report(f"{skipped} frame(s) above pw_max_atoms: compared with their LCAO reference only")
        futures = {"predict": self.submit_predict()}
        futures.update(self.submit_band_batch())
        return ToContext(**futures)

    def has_pending_bands(self) -> bool:
        return bool(self.ctx.pending_bands)

    def next_band_batch(self):
        return ToContext(**self.submit_band_batch())

    def submit_predict(self):
        inputs = self.exposed_inputs(SlemPredictCalculation, namespace="predict")
        inputs["model"] = self.inputs.model
        inputs["dataset"] = self.ctx.test_dataset
        inputs.setdefault("metadata", {})["call_link_label"] = "predict"
        node = self.submit(SlemPredictCalculation, **inputs)
        self.report(f"launched SlemPredictCalculation<{node.pk}> on {len(self.ctx.labels)} held-out frame(s)")
        return node

    def submit_band_batch(self) -> dict:
        """At most ``max_concurrent`` pw.x bands runs at a time, as DatasetWorkChain does with its SCFs:
        14 at once (a 3-composition fast pipeline) overload a workstation."""
        n = self.inputs.max_concurrent.value
        batch, self.ctx.pending_bands = self.ctx.pending_bands[:n], self.ctx.pending_bands[n:]
        if not batch:
            return {}
        settings = Settings.from_dict(self.inputs.settings.get_dict())
        futures = {}
        options = self.inputs.pw_options.get_dict() if "pw_options" in self.inputs else {}
        extra = self.inputs.extra_bands.value
        for label in batch:
            inputs = bands_inputs(self.inputs.frames[label], settings, self.inputs.pw_code, options, extra)
            inputs["metadata"] = {"call_link_label": f"pw_bands_{label}"}
            futures[f"bands_{label}"] = self.submit(PwBaseWorkChain, **inputs)
        self.report(
            f"launched {len(futures)} pw.x bands run(s) at {settings.kpath_npoints} path + "
            f"{settings.n_random_k} random k-points; {len(self.ctx.pending_bands)} waiting"
        )
        return futures

    def inspect(self):
        calc = self.ctx.predict
        if not calc.is_finished_ok:
            return self.exit_codes.ERROR_PREDICT_FAILED.format(
                status=calc.exit_status, message=calc.exit_message
            )
        for label in self.pw_labels():
            node = self.ctx[f"bands_{label}"]
            if not node.is_finished_ok:
                return self.exit_codes.ERROR_PW_BANDS_FAILED.format(label=label, status=node.exit_status)
        return None

    def run_compare(self):
        """``slem validate`` on the compute node, with the code and options of the prediction."""
        frames = self.inputs.frames
        inputs = {
            "code": self.inputs.predict.code,
            "predictions": self.ctx.predict.outputs.predictions,
            "reference": self.ctx.test_dataset,
            "settings": self.inputs.settings,
            "electrons": orm.Dict(
                {label: float(frames[label].base.attributes.get("n_electrons")) for label in self.ctx.labels}
            ),
            "metadata": {"call_link_label": "compare", "options": self.compare_options()},
        }
        if "splits" in self.inputs:
            inputs["splits"] = self.inputs.splits
        bands = {label: self.ctx[f"bands_{label}"].outputs.output_band for label in self.pw_labels()}
        if bands:
            inputs["pw_bands"] = bands
        node = self.submit(SlemValidateCalculation, **inputs)
        self.report(f"launched SlemValidateCalculation<{node.pk}>")
        return ToContext(compare=node)

    def compare_options(self) -> dict:
        """The prediction's scheduler options, without those that belong to the predict job itself."""
        metadata = self.exposed_inputs(SlemPredictCalculation, namespace="predict")["metadata"]
        return {
            key: value for key, value in dict(metadata.get("options", {})).items() if key in SCHEDULER_OPTIONS
        }

    def inspect_compare(self):
        calc = self.ctx.compare
        if not calc.is_finished_ok:
            return self.exit_codes.ERROR_COMPARISON_FAILED.format(
                status=calc.exit_status, message=calc.exit_message
            )
        return None

    def results(self):
        compared = self.ctx.compare.outputs
        self.out("test_dataset", self.ctx.test_dataset)
        self.out("predictions", self.ctx.predict.outputs.predictions)
        self.out("metrics", compared.metrics)
        self.out("passed", compared.passed)
        for name, node in compared.plots.items():
            self.out(f"plots.{name}", node)
        for label in self.pw_labels():
            self.out(f"pw_bands.{label}", self.ctx[f"bands_{label}"].outputs.output_band)
        summary = compared.metrics["summary"]
        self.report(
            "held-out errors: "
            + ", ".join(
                f"{k} {v:.3g}"
                for k, v in sorted(summary.items())
                if v is not None and ("mae" in k or "gap" in k)
            )
        )
        verdict = compared.metrics["verdict"]
        failed = [k for k, c in verdict["checks"].items() if not c["passed"]]
        self.report("verdict: PASSED" if verdict["passed"] else f"verdict: FAILED ({', '.join(failed)})")
