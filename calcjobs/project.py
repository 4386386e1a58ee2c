"""``slem.project``: project a pw.x SCF onto the confined LCAO basis with ``slem project``.

The local potential comes from a separate ``quantumespresso.pp`` CalcJob (pp.x, ``plot_num=1``) rather
than from a pp.x call hidden in this job's script: that way pp.x runs under its own Code node, its
input parameters are recorded, and caching can reuse it. Its raw ``aiida.filplot`` (Ry, the format
``slem.qe.potential`` reads) stays in its remote folder and is copied here; nothing big passes through
the AiiDA repository except the resulting frame, which becomes an ``OperatorData``.
"""

from __future__ import annotations

from aiida import orm
from aiida_pseudo.data.pseudo import UpfData

from aiida_slem.data.basis import BasisData
from aiida_slem.data.operator import OperatorData

from .base import SlemCommandCalculation
from .checks import check_norm_conserving

PW_OUTPUT_SUBFOLDER = "out"
PW_PREFIX = "aiida"
PP_FILPLOT = "aiida.filplot"


def validate_inputs(inputs: dict, ctx) -> str | None:
    if "pseudos" not in ctx:
        return None  # exposed in a WorkChain that supplies the pseudos itself and checks them
    pseudos = inputs.get("pseudos", {})
    if not pseudos:
        return "give the pseudopotentials of the SCF in 'pseudos'"
    error = check_norm_conserving(pseudos)
    if error:
        return error
    basis = inputs.get("basis")
    if basis is not None:
        try:
            basis.check_pseudos(pseudos)
        except ValueError as exc:
            return str(exc)
    return None


def option_arguments(parameters: dict) -> list[str]:
    """``{"kmesh": [4, 4, 4], "verbose": True}`` -> ``["--kmesh", "4,4,4", "--verbose"]``."""
    arguments: list[str] = []
    for key, value in sorted(parameters.items()):
        flag = f"--{key.replace('_', '-')}"
        if isinstance(value, bool):
            arguments += [flag] if value else []
        elif isinstance(value, (list, tuple)):
            arguments += [flag, ",".join(map(str, value))]
        else:
            arguments += [flag, str(value)]
    return arguments


class SlemProjectCalculation(SlemCommandCalculation):
    """Turn one SCF (XML + local potential + UPFs) into the frame of LCAO operators H, S, D."""

    _PARSER = "slem.project"
    _PSEUDO_FOLDER = "pseudo"
    _SCF_FOLDER = "scf"
    _POTENTIAL_FILE = "vtot.dat"
    _POTENTIAL_UP_FILE = "vtot_up.dat"
    _POTENTIAL_DOWN_FILE = "vtot_down.dat"
    _BASIS_FILE = "basis.h5"
    _FRAME_FILE = "frame.h5"
    _SUMMARY_FILE = "summary.json"
    _STDOUT = "slem.out"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            "parent_folder",
            valid_type=orm.RemoteData,
            help="Remote folder of the pw.x SCF (its out/aiida.save/data-file-schema.xml is used).",
        )
        spec.input(
            "potential_folder",
            valid_type=(orm.RemoteData, orm.FolderData),
            help="Remote (or retrieved) folder of the pp.x plot_num=1 run holding 'aiida.filplot'.",
        )
        spec.input(
            "potential_down_folder",
            valid_type=(orm.RemoteData, orm.FolderData),
            required=False,
            help="nspin=2 SCFs: the pp.x spin_component=2 run (down channel); potential_folder is then the "
            "spin_component=1 run (up channel).",
        )
        spec.input("basis", valid_type=BasisData, help="Basis built from the same UPFs ('slem.basis').")
        spec.input_namespace(
            "pseudos", valid_type=UpfData, dynamic=True, help="The SCF's pseudopotentials per kind."
        )
        spec.input(
            "parameters",
            valid_type=orm.Dict,
            required=False,
            help="Further options of 'slem project', e.g. {'kmesh': [4, 4, 4]}.",
        )
        spec.input(
            "sum_rule_tolerance",
            valid_type=orm.Float,
            default=lambda: orm.Float(1e-3),
            help="Largest accepted |sum Tr(DS) - N_electrons| before exit 410.",
        )
        spec.inputs.validator = validate_inputs
        spec.output("operator", valid_type=OperatorData, help="The frame: structure and H, S, D blocks.")
        spec.output("output_parameters", valid_type=orm.Dict, help="The JSON summary of 'slem project'.")
        spec.default_output_node = "output_parameters"
        spec.exit_code(301, "ERROR_COMMAND_FAILED", message="'slem project' failed: {message}")
        spec.exit_code(302, "ERROR_OUTPUT_FRAME_MISSING", message="'slem project' wrote no frame.h5.")
        spec.exit_code(303, "ERROR_OUTPUT_SUMMARY_MISSING", message="'slem project' wrote no summary.json.")
        spec.exit_code(310, "ERROR_OUTPUT_FRAME_INVALID", message="The frame file is not valid: {message}")
        spec.exit_code(311, "ERROR_OUTPUT_SUMMARY_INVALID", message="summary.json is not readable: {message}")
        spec.exit_code(
            410,
            "ERROR_SUM_RULE_VIOLATED",
            message="|sum Tr(DS) - N_electrons| = {deviation:.3g} exceeds the tolerance {tolerance:.3g}.",
        )
        spec.exit_code(
            420,
            "ERROR_SCF_NOT_CONVERGED",
            message="The parent SCF did not converge; its operators are not trustworthy.",
        )

    def prepare_for_submission(self, folder):
        parameters = self.inputs.parameters.get_dict() if "parameters" in self.inputs else {}
        folder.get_subfolder(self._PSEUDO_FOLDER, create=True)
        folder.get_subfolder(self._SCF_FOLDER, create=True)

        local_copy_list = [(self.inputs.basis.uuid, self.inputs.basis.filename, self._BASIS_FILE)]
        for pseudo in self.inputs.pseudos.values():
            local_copy_list.append((pseudo.uuid, pseudo.filename, f"{self._PSEUDO_FOLDER}/{pseudo.filename}"))

        parent = self.inputs.parent_folder
        xml = f"{parent.get_remote_path()}/{PW_OUTPUT_SUBFOLDER}/{PW_PREFIX}.save/data-file-schema.xml"
        remote_copy_list = [(parent.computer.uuid, xml, f"{self._SCF_FOLDER}/data-file-schema.xml")]
        potentials = {self._POTENTIAL_FILE: self.inputs.potential_folder}
        if "potential_down_folder" in self.inputs:
            potentials = {
                self._POTENTIAL_UP_FILE: self.inputs.potential_folder,
                self._POTENTIAL_DOWN_FILE: self.inputs.potential_down_folder,
            }
        for target, potential in potentials.items():
            if isinstance(potential, orm.RemoteData):
                source = f"{potential.get_remote_path()}/{PP_FILPLOT}"
                remote_copy_list.append((potential.computer.uuid, source, target))
            else:
                local_copy_list.append((potential.uuid, PP_FILPLOT, target))
        if len(potentials) == 2:
            potential_arguments = ["--potential-up", self._POTENTIAL_UP_FILE]
            potential_arguments += ["--potential-down", self._POTENTIAL_DOWN_FILE]
        else:
            potential_arguments = ["--potential", self._POTENTIAL_FILE]

        arguments = [
            "project",
            "--scf-dir",
            self._SCF_FOLDER,
            *potential_arguments,
            "--basis",
            self._BASIS_FILE,
            "--pseudo-dir",
            self._PSEUDO_FOLDER,
            "-o",
            self._FRAME_FILE,
            "--summary",
            self._SUMMARY_FILE,
            *option_arguments(parameters),
        ]
        return self.command_calcinfo(
            arguments,
            local_copy_list,
            retrieve=[self._SUMMARY_FILE],
            retrieve_temporary=[self._FRAME_FILE],
            remote_copy_list=remote_copy_list,
        )
