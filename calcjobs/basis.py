"""``slem.basis``: run ``slem basis`` on the UPF files of the pseudopotentials, producing a ``BasisData``."""

from __future__ import annotations

from aiida import orm
from aiida_pseudo.data.pseudo import UpfData

from aiida_slem.data.basis import BasisData
from slem.basis.presets import J_MODES

from .base import SlemCommandCalculation
from .checks import check_norm_conserving, relativistic_kinds

PARAMETER_KEYS = {"preset", "radius", "energy_shift", "split_norm", "j_resolved"}


def validate_parameters(value: orm.Dict, _) -> str | None:
    unknown = sorted(set(value.get_dict()) - PARAMETER_KEYS)
    if unknown:
        return f"unknown basis parameter(s) {unknown}; allowed: {sorted(PARAMETER_KEYS)}"
    radius = value.get("radius", {})
    if not isinstance(radius, dict):
        return "'radius' must map an element (or 'Si.p') to a radius in Angstrom, e.g. {'Si': 4.0}"
    if value.get("j_resolved", "off") not in J_MODES:
        return f"'j_resolved' must be one of {list(J_MODES)}, got {value.get('j_resolved')!r}"
    return None


def validate_inputs(inputs: dict, _) -> str | None:
    """A j-resolved basis needs the j of fully relativistic files: refused before ``slem basis`` runs."""
    parameters = inputs.get("parameters")
    if parameters is None or parameters.get("j_resolved", "off") == "off":
        return None
    scalar = sorted(kind for kind, fr in relativistic_kinds(inputs.get("pseudos", {})).items() if not fr)
    if scalar:
        return (
            f"j_resolved needs fully relativistic UPFs, but those of {scalar} are scalar-relativistic: use a "
            "fully relativistic family (spin-orbit runs), or drop j_resolved"
        )
    return None


def validate_pseudos(value: dict, _) -> str | None:
    if not value:
        return "give at least one pseudopotential"
    elements = [pseudo.element for pseudo in value.values()]
    if len(set(elements)) != len(elements):
        return f"one UPF per element is needed, got elements {sorted(elements)}"
    return check_norm_conserving(value)


def radius_arguments(radius: dict) -> list[str]:
    """``{"Si": 4.0, "C.p": 4.5}`` -> ``["--radius", "Si=4.0", "--radius", "C.p=4.5"]``."""
    arguments = []
    for key, value in sorted(radius.items()):
        arguments += ["--radius", f"{key}={float(value)}"]
    return arguments


class SlemBasisCalculation(SlemCommandCalculation):
    """Build a confined pseudo-atomic-orbital basis from the same UPFs the DFT uses."""

    _PARSER = "slem.basis"
    _PSEUDO_FOLDER = "pseudo"
    _BASIS_FILE = "basis.h5"
    _SUMMARY_FILE = "summary.json"
    _STDOUT = "slem.out"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace(
            "pseudos",
            valid_type=UpfData,
            dynamic=True,
            validator=validate_pseudos,
            help="One norm-conserving UPF per element, e.g. from the pseudopotential family.",
        )
        spec.input(
            "parameters",
            valid_type=orm.Dict,
            required=False,
            validator=validate_parameters,
            help="Options of 'slem basis': preset (SZ, DZP, ...), radius {'Si': 4.0}, energy_shift (eV), "
            "split_norm, j_resolved ('off', 'auto', 'all': fully relativistic files get the j = l - 1/2 "
            "radial function of a valence shell; docs/spin-orbit.md).",
        )
        spec.inputs.validator = validate_inputs
        spec.output(
            "basis", valid_type=BasisData, help="The basis file with elements, shells, radii and UPF md5s."
        )
        spec.output("output_parameters", valid_type=orm.Dict, help="The JSON summary of 'slem basis'.")
        spec.default_output_node = "output_parameters"
        spec.exit_code(301, "ERROR_COMMAND_FAILED", message="'slem basis' failed: {message}")
        spec.exit_code(302, "ERROR_OUTPUT_BASIS_MISSING", message="'slem basis' wrote no basis.h5.")
        spec.exit_code(303, "ERROR_OUTPUT_SUMMARY_MISSING", message="'slem basis' wrote no summary.json.")
        spec.exit_code(310, "ERROR_OUTPUT_BASIS_INVALID", message="The basis file is not valid: {message}")
        spec.exit_code(
            311,
            "ERROR_BASIS_PSEUDO_MISMATCH",
            message="The basis was not built from the input UPF files: {message}",
        )

    def prepare_for_submission(self, folder):
        parameters = self.inputs.parameters.get_dict() if "parameters" in self.inputs else {}
        pseudos = self.inputs.pseudos
        folder.get_subfolder(self._PSEUDO_FOLDER, create=True)
        local_copy_list = []
        upf_paths = []
        for pseudo in sorted(pseudos.values(), key=lambda p: p.element):
            target = f"{self._PSEUDO_FOLDER}/{pseudo.filename}"
            local_copy_list.append((pseudo.uuid, pseudo.filename, target))
            upf_paths.append(target)
        arguments = ["basis", *upf_paths]
        if "preset" in parameters:
            arguments += ["--preset", str(parameters["preset"])]
        arguments += radius_arguments(parameters.get("radius", {}))
        for key in ("energy_shift", "split_norm"):
            if key in parameters:
                arguments += [f"--{key.replace('_', '-')}", str(float(parameters[key]))]
        if parameters.get("j_resolved", "off") != "off":
            arguments += ["--j-resolved", parameters["j_resolved"]]
        arguments += ["-o", self._BASIS_FILE, "--json-summary", self._SUMMARY_FILE]

        return self.command_calcinfo(
            arguments, local_copy_list, retrieve=[self._SUMMARY_FILE], retrieve_temporary=[self._BASIS_FILE]
        )
