"""Protocol support for the slem WorkChains, in aiida-quantumespresso's style.

Each WorkChain reads ``protocols/<name>.yaml`` (``default_inputs`` + ``protocols: fast | balanced | precise``)
through aiida-quantumespresso's ``ProtocolMixin``, so overrides merge the same way users already know.
"""

from __future__ import annotations

import difflib
import pathlib

from aiida import orm
from aiida_quantumespresso.workflows.protocols.utils import ProtocolMixin, recursive_merge

from aiida_slem.pseudos import default_family_label

from .magnetism import spin_parameters

PROTOCOL_DIR = pathlib.Path(__file__).resolve().parent / "protocols"
PROTOCOLS = ("fast", "balanced", "precise")
# pw.x cutoffs: the family's recommended ones at this stringency (largest over the structure's elements)
STRINGENCY = {"fast": "low", "balanced": "normal", "precise": "high"}
PSEUDO_DIR_HINT = "'aiida-slem setup --pseudo-dir DIR' (one UPF per element)"


def check_override_keys(overrides: dict | None, known, where: str) -> None:
    """A misspelt top-level override would otherwise be dropped without a word."""
    for key in sorted(set(overrides or {}) - set(known)):
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"unknown override {key!r} for {where}; {hint}the keys are {sorted(known)}")


class SlemProtocolMixin(ProtocolMixin):
    _protocol_file = ""
    _extra_override_keys: tuple[str, ...] = ()  # accepted although the YAML has no such key

    @classmethod
    def get_protocol_filepath(cls) -> pathlib.Path:
        return PROTOCOL_DIR / cls._protocol_file

    @classmethod
    def get_protocol_inputs(cls, protocol=None, overrides=None) -> dict:
        if protocol is not None and protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
        data = cls._load_protocol_file()
        known = set(data["default_inputs"]) | set(cls._extra_override_keys)
        for values in data["protocols"].values():
            known |= set(values) - {"description"}
        check_override_keys(overrides, known, cls.__name__)
        return super().get_protocol_inputs(protocol, overrides)

    @classmethod
    def protocol_name(cls, protocol: str | None) -> str:
        return protocol or cls.get_default_protocol()


def load_family(family_label: str | None):
    """The installed family ``family_label``; None: the one 'aiida-slem setup' recorded, else Debian's."""
    from aiida_pseudo.groups.family import PseudoPotentialFamily

    label = family_label or default_family_label()
    family = orm.QueryBuilder().append(PseudoPotentialFamily, filters={"label": label}).first(flat=True)
    if family is None:
        raise ValueError(
            f"pseudopotential family {label!r} is not installed; run 'aiida-slem setup' (Debian's family), "
            f"install it with {PSEUDO_DIR_HINT}, or pick an installed one ('aiida-pseudo list')"
        )
    return family


def load_pseudos(structure: orm.StructureData, family_label: str | None = None) -> dict:
    """Pseudopotentials of ``structure``'s kinds from an installed family, with a clear error otherwise."""
    family = load_family(family_label)
    missing = sorted(set(structure.get_symbols_set()) - set(family.elements))
    if missing:
        raise ValueError(
            f"family {family.label!r} has no pseudopotential for {', '.join(missing)}; install a folder of "
            f"norm-conserving UPFs that includes {', '.join(missing)} with {PSEUDO_DIR_HINT} and use that "
            "family (--pseudo-family, or overrides 'pseudo_family')"
        )
    return family.get_pseudos(structure=structure)


def union_pseudos(structures, family_label: str | None = None) -> dict:
    """Pseudopotentials of the kinds of all ``structures`` (each SCF then takes its own kinds')."""
    pseudos = {}
    for structure in structures:
        pseudos.update(load_pseudos(structure, family_label))
    return pseudos


def recommended_cutoffs(structure: orm.StructureData, family_label: str | None, protocol: str) -> tuple:
    """(ecutwfc, ecutrho) in Ry: the family's recommendation at the protocol's stringency, or at the family's
    default stringency when it lacks that one, the largest over the structure's elements."""
    family = load_family(family_label)
    stringencies = family.get_cutoff_stringencies() if hasattr(family, "get_cutoff_stringencies") else ()
    if not stringencies:
        raise ValueError(
            f"family {family.label!r} has no recommended cutoffs; give overrides "
            f"{{'pw_parameters': {{'SYSTEM': {{'ecutwfc': ..., 'ecutrho': ...}}}}}} or install its UPFs with "
            f"{PSEUDO_DIR_HINT} and --cutoffs"
        )
    stringency = STRINGENCY[protocol] if STRINGENCY[protocol] in stringencies else None
    return family.get_recommended_cutoffs(structure=structure, stringency=stringency, unit="Ry")


def kpoints_mesh(mesh, offset=(0.0, 0.0, 0.0)) -> orm.KpointsData:
    kpoints = orm.KpointsData()
    kpoints.set_kpoints_mesh(list(mesh), list(offset))
    return kpoints


def pw_parameters(inputs: dict, n_atoms: int, structure: orm.StructureData, protocol: str) -> dict:
    """pw.x parameters: the protocol's ``pw_parameters``, the family's cutoffs unless ``ecutwfc`` is given
    (then ``ecutrho`` is the given one or pw.x's 4 x ecutwfc), per-atom thresholds from
    ``meta_parameters``, nspin=2 and starting magnetisations from ``magnetization`` (magnetism.py), and
    noncolin + lspinorb from ``spin_orbit``."""
    parameters = recursive_merge({"CONTROL": {}, "SYSTEM": {}, "ELECTRONS": {}}, inputs["pw_parameters"])
    if "ecutwfc" not in parameters["SYSTEM"]:
        ecutwfc, ecutrho = recommended_cutoffs(structure, inputs.get("pseudo_family"), protocol)
        parameters["SYSTEM"]["ecutwfc"] = ecutwfc
        parameters["SYSTEM"].setdefault("ecutrho", ecutrho)
    if inputs.get("magnetization"):
        parameters["SYSTEM"].update(spin_parameters(dict(inputs["magnetization"]), structure))
    if inputs.get("spin_orbit"):
        parameters["SYSTEM"].update({"noncolin": True, "lspinorb": True})
    meta = inputs.get("meta_parameters", {})
    if "conv_thr_per_atom" in meta:
        parameters["ELECTRONS"].setdefault("conv_thr", n_atoms * meta["conv_thr_per_atom"])
    return parameters


def calcjob_options(inputs_options: dict, options: dict | None) -> dict:
    return recursive_merge(inputs_options, options or {})
