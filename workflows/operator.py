"""``OperatorWorkChain``: structure -> pw.x SCF -> local potential (pp.x) -> ``slem.project`` -> OperatorData.

An nspin=2 SCF (``magnetization``, workflows/magnetism.py) gets one pp.x run per spin channel, and its frame
holds H_up, H_down, D_up and D_down beside one S.

All three jobs run on the parent's computer; pp.x and slem.project copy what they need from the SCF's
remote folder, so ``clean_workdir`` must stay off until the projection is done.
"""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, if_
from aiida.plugins import CalculationFactory
from aiida_quantumespresso.workflows.pw.base import PwBaseWorkChain
from aiida_slem.calcjobs.checks import check_run, check_spin, is_spin_polarised
from aiida_slem.calcjobs.project import SlemProjectCalculation

from aiida_slem.data.operator import OperatorData

from .dimensionality import in_plane_kpoints, is_sheet, kpoints_from_distance
from .electronic import (
    apply_electronic_type,
    check_occupations,
    electronic_stall,
    smeared_parameters,
    smearing_bands,
    smearing_fallback,
    smearing_fallback_problem,
    valence_electrons,
)
from .protocols import SlemProtocolMixin, calcjob_options, load_pseudos, pw_parameters

PpCalculation = CalculationFactory("quantumespresso.pp")
PP_PARAMETERS = {"INPUTPP": {"plot_num": 1}, "PLOT": {"iflag": 3}}


def validate_inputs(inputs: dict, _) -> str | None:
    error = check_spin(inputs["scf"]["pw"]["parameters"].get_dict())
    if error:
        return error
    error = check_occupations(inputs["scf"]["pw"]["parameters"].get_dict())
    if error:
        return error
    if "smearing_fallback" in inputs:
        error = smearing_fallback_problem(inputs["smearing_fallback"].get_dict())
        if error:
            return error
    if "structure" not in inputs:
        return None  # exposed inside a DatasetWorkChain, which checks every snapshot itself
    pseudos = dict(inputs["scf"]["pw"]["pseudos"])
    error = check_run(inputs["structure"], pseudos, inputs["scf"]["pw"]["parameters"].get_dict())
    if error:
        return error
    basis = inputs.get("project", {}).get("basis")
    if basis is not None:
        try:
            basis.check_pseudos({k: pseudos[k] for k in inputs["structure"].get_kind_names()})
        except ValueError as exc:
            return str(exc)
    return None


class OperatorWorkChain(SlemProtocolMixin, WorkChain):
    """The LCAO operators H, S and D of one structure."""

    _protocol_file = "operator.yaml"
    _extra_override_keys = ("pseudos",)

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            "structure",
            valid_type=orm.StructureData,
            required=False,
            help="The structure (required unless exposed in a DatasetWorkChain, which sets it).",
        )
        spec.expose_inputs(PwBaseWorkChain, namespace="scf", exclude=("pw.structure", "clean_workdir"))
        spec.expose_inputs(PpCalculation, namespace="pp", exclude=("parent_folder", "parameters"))
        spec.expose_inputs(
            SlemProjectCalculation,
            namespace="project",
            exclude=("parent_folder", "potential_folder", "potential_down_folder", "pseudos"),
        )
        spec.input(
            "smearing_fallback",
            valid_type=orm.Dict,
            required=False,
            help="{smearing, degauss (Ry), bands: {factor, extra}}: when a fixed-occupation SCF stops "
            "because its electronic loop never converged (after PwBaseWorkChain's own mixing restarts), "
            "run it once more with these smeared occupations and nbnd = ceil(factor * N/2) + extra. A hot "
            "or strained snapshot can close its gap, and fixed occupations then swap states between "
            "iterations; the frame is then kept, and marked smeared in its metadata.",
        )
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.run_scf,
            cls.inspect_scf,
            if_(cls.rerun_smeared)(cls.run_scf, cls.inspect_scf),
            cls.run_pp,
            cls.inspect_pp,
            cls.run_project,
            cls.inspect_project,
            cls.results,
        )
        spec.output("operator", valid_type=OperatorData)
        spec.output("scf_parameters", valid_type=orm.Dict)
        spec.output("project_parameters", valid_type=orm.Dict)
        spec.exit_code(
            401, "ERROR_SCF_FAILED", message="The SCF PwBaseWorkChain failed with exit status {status}."
        )
        spec.exit_code(402, "ERROR_PP_FAILED", message="pp.x failed with exit status {status}.")
        spec.exit_code(403, "ERROR_PROJECT_FAILED", message="slem project failed: {status} {message}")
        spec.exit_code(410, "ERROR_QUALITY_CHECK_FAILED", message="The frame failed a check: {message}")

    @classmethod
    def get_builder_from_protocol(
        cls,
        pw_code,
        pp_code,
        slem_code,
        structure,
        basis=None,
        protocol=None,
        overrides=None,
        options=None,
        electronic_type=None,
        **_,
    ):
        """Builder for ``protocol`` (fast, balanced, precise); ``basis``: a BasisData from ``slem.basis``."""
        inputs = apply_electronic_type(cls.get_protocol_inputs(protocol, overrides), electronic_type)
        pw_code, pp_code, slem_code = (
            orm.load_code(c) if isinstance(c, str) else c for c in (pw_code, pp_code, slem_code)
        )
        job_options = calcjob_options(inputs["options"], options)
        builder = cls.get_builder()
        builder.structure = structure
        builder.scf.pw.code = pw_code
        builder.scf.pw.pseudos = inputs.get("pseudos") or load_pseudos(structure, inputs["pseudo_family"])
        protocol = cls.protocol_name(protocol)
        parameters = pw_parameters(inputs, len(structure.sites), structure, protocol)
        n_electrons = valence_electrons(structure, builder.scf.pw.pseudos)
        builder.scf.pw.parameters = orm.Dict(smearing_bands(inputs, parameters, n_electrons))
        fallback = smearing_fallback(inputs, parameters)
        if fallback:
            builder.smearing_fallback = orm.Dict(fallback)
        builder.scf.pw.metadata.options = job_options
        # a sheet gets one k-point along its vacuum axis (workflows/dimensionality.py); aiida's own
        # kpoints_distance would only do that for pbc False, which the projection refuses
        if "kpoints_mesh" in inputs:
            builder.scf.kpoints = in_plane_kpoints(
                structure, inputs["kpoints_mesh"], inputs.get("kpoints_offset", [0, 0, 0])
            )
        elif is_sheet(structure):
            builder.scf.kpoints = kpoints_from_distance(structure, inputs["kpoints_distance"])
        else:
            builder.scf.kpoints_distance = orm.Float(inputs["kpoints_distance"])
        builder.scf.max_iterations = orm.Int(inputs["max_iterations"])
        builder.pp.code = pp_code
        builder.pp.metadata.options = {**job_options, "parse_data_files": False, "keep_data_files": False}
        builder.project.code = slem_code
        if basis is not None:
            builder.project.basis = basis
        if inputs["project_parameters"]:
            builder.project.parameters = orm.Dict(inputs["project_parameters"])
        builder.project.sum_rule_tolerance = orm.Float(inputs["sum_rule_tolerance"])
        builder.project.metadata.options = job_options
        return builder

    def run_scf(self):
        inputs = AttributeDict(self.exposed_inputs(PwBaseWorkChain, namespace="scf"))
        inputs.pw.structure = self.inputs.structure
        # a DatasetWorkChain of several compositions hands every snapshot the union of its pseudopotentials
        inputs.pw.pseudos = {kind: inputs.pw.pseudos[kind] for kind in self.inputs.structure.get_kind_names()}
        inputs.clean_workdir = orm.Bool(False)
        inputs.metadata = {"call_link_label": "scf"}
        if self.ctx.get("smeared"):
            n_electrons = valence_electrons(self.inputs.structure, inputs.pw.pseudos)
            parameters = smeared_parameters(
                inputs.pw.parameters.get_dict(), self.inputs.smearing_fallback.get_dict(), n_electrons
            )
            inputs.pw.parameters = orm.Dict(parameters)
            inputs.metadata = {"call_link_label": "scf_smeared"}
            self.report(
                f"rerunning the SCF with {parameters['SYSTEM']['smearing']} smearing of "
                f"{parameters['SYSTEM']['degauss']} Ry and {parameters['SYSTEM']['nbnd']} bands"
            )
        return ToContext(scf=self.submit(PwBaseWorkChain, **inputs))

    def inspect_scf(self):
        scf = self.ctx.scf
        if scf.is_finished_ok:
            return None
        stalled = electronic_stall(scf)
        fixed = self.inputs.scf.pw.parameters.get_dict().get("SYSTEM", {}).get("occupations") == "fixed"
        may_smear = "smearing_fallback" in self.inputs and not self.ctx.get("smeared")
        if stalled is not None and fixed and may_smear:
            self.report(
                f"the fixed-occupation SCF PwBaseWorkChain<{scf.pk}> did not converge (its last pw.x run, "
                f"PwCalculation<{stalled}>, reached electron_maxstep): the snapshot may have closed its gap"
            )
            self.ctx.smeared = True
            return None
        return self.exit_codes.ERROR_SCF_FAILED.format(status=scf.exit_status)

    def rerun_smeared(self) -> bool:
        return not self.ctx.scf.is_finished_ok

    def run_pp(self):
        """pp.x's total local potential; for an nspin=2 SCF one run per spin channel (spin_component 1, 2),
        side by side."""
        runs = {"pp": ("potential", None)}
        if is_spin_polarised(self.inputs.scf.pw.parameters.get_dict()):
            runs = {"pp": ("potential_up", 1), "pp_down": ("potential_down", 2)}
        futures = {}
        for key, (label, component) in runs.items():
            inputs = AttributeDict(self.exposed_inputs(PpCalculation, namespace="pp"))
            inputs.parent_folder = self.ctx.scf.outputs.remote_folder
            parameters = {name: dict(values) for name, values in PP_PARAMETERS.items()}
            if component is not None:
                parameters["INPUTPP"]["spin_component"] = component
            inputs.parameters = orm.Dict(parameters)
            inputs.metadata = {**inputs.get("metadata", {}), "call_link_label": label}
            futures[key] = self.submit(PpCalculation, **inputs)
        return ToContext(**futures)

    def inspect_pp(self):
        for key in ("pp", "pp_down"):
            if key in self.ctx and not self.ctx[key].is_finished_ok:
                return self.exit_codes.ERROR_PP_FAILED.format(status=self.ctx[key].exit_status)
        return None

    def run_project(self):
        inputs = AttributeDict(self.exposed_inputs(SlemProjectCalculation, namespace="project"))
        inputs.parent_folder = self.ctx.scf.outputs.remote_folder
        inputs.potential_folder = self.ctx.pp.outputs.remote_folder
        if "pp_down" in self.ctx:
            inputs.potential_down_folder = self.ctx.pp_down.outputs.remote_folder
        inputs.pseudos = {
            kind: self.inputs.scf.pw.pseudos[kind] for kind in self.inputs.structure.get_kind_names()
        }
        inputs.setdefault("metadata", {})["call_link_label"] = "project"
        return ToContext(project=self.submit(SlemProjectCalculation, **inputs))

    def inspect_project(self):
        calc = self.ctx.project
        if calc.is_finished_ok:
            return None
        if calc.exit_status in (
            SlemProjectCalculation.exit_codes.ERROR_SUM_RULE_VIOLATED.status,
            SlemProjectCalculation.exit_codes.ERROR_SCF_NOT_CONVERGED.status,
        ):
            return self.exit_codes.ERROR_QUALITY_CHECK_FAILED.format(message=calc.exit_message)
        return self.exit_codes.ERROR_PROJECT_FAILED.format(
            status=calc.exit_status, message=calc.exit_message or ""
        )

    def results(self):
        self.out("operator", self.ctx.project.outputs.operator)
        self.out("scf_parameters", self.ctx.scf.outputs.output_parameters)
        self.out("project_parameters", self.ctx.project.outputs.output_parameters)
