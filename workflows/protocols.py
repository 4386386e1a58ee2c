"""Protocol support for the slem WorkChains, in aiida-quantumespresso's style.

Each WorkChain reads ``protocols/<name>.yaml`` (``default_inputs`` + ``protocols: fast | balanced | precise``)
through aiida-quantumespresso's ``ProtocolMixin``, so overrides merge the same way users already know.
"""

from __future__ import annotations

import pathlib

from aiida import orm
from aiida_quantumespresso.workflows.protocols.utils import ProtocolMixin, recursive_merge

from aiida_slem.pseudos import FAMILY_LABEL

PROTOCOL_DIR = pathlib.Path(__file__).resolve().parent / "protocols"
PROTOCOLS = ("fast", "balanced", "precise")


class SlemProtocolMixin(ProtocolMixin):
    _protocol_file = ""

    @classmethod
    def get_protocol_filepath(cls) -> pathlib.Path:
        return PROTOCOL_DIR / cls._protocol_file

    @classmethod
    def get_protocol_inputs(cls, protocol=None, overrides=None) -> dict:
        if protocol is not None and protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
        return super().get_protocol_inputs(protocol, overrides)


def load_pseudos(structure: orm.StructureData, family_label: str = FAMILY_LABEL) -> dict:
    """Pseudopotentials of ``structure``'s kinds from an installed family, with a clear error otherwise."""
    from aiida.common.exceptions import NotExistent
    from aiida_pseudo.groups.family import PseudoPotentialFamily

    try:
        family = orm.QueryBuilder().append(PseudoPotentialFamily, filters={"label": family_label}).one()[0]
    except NotExistent as exc:
        raise ValueError(
            f"pseudopotential family {family_label!r} is not installed; run 'aiida-slem setup'"
        ) from exc
    try:
        return family.get_pseudos(structure=structure)
    except ValueError as exc:
        raise ValueError(f"family {family_label!r} cannot cover the structure: {exc}") from exc


def kpoints_mesh(mesh, offset=(0.0, 0.0, 0.0)) -> orm.KpointsData:
    kpoints = orm.KpointsData()
    kpoints.set_kpoints_mesh(list(mesh), list(offset))
    return kpoints


def pw_parameters(inputs: dict, n_atoms: int) -> dict:
    """pw.x parameters: the protocol's ``pw_parameters`` plus per-atom thresholds from ``meta_parameters``."""
    parameters = recursive_merge({"CONTROL": {}, "SYSTEM": {}, "ELECTRONS": {}}, inputs["pw_parameters"])
    meta = inputs.get("meta_parameters", {})
    if "conv_thr_per_atom" in meta:
        parameters["ELECTRONS"].setdefault("conv_thr", n_atoms * meta["conv_thr_per_atom"])
    return parameters


def calcjob_options(inputs_options: dict, options: dict | None) -> dict:
    return recursive_merge(inputs_options, options or {})
