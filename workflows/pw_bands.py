"""The pw.x ``bands`` run of a held-out frame: from the frame's own SCF (found through the provenance graph),
at exactly the validation k-points ``slem validate`` evaluates the LCAO bands at.

Why a separate ``bands`` run rather than the SCF's own k-points: the SCF of a small supercell samples one or a
few k-points, too few to measure band errors or a gap; the ``bands`` run reuses the converged density
(seconds for Si8) and samples the path and random k-points of ``slem.evaluate.kpoints``.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida_slem.calcjobs.checks import is_spin_orbit

from aiida_slem.data.operator import OperatorData
from slem.evaluate.kpoints import validation_kpoints
from slem.evaluate.settings import Settings


def scf_of(operator: OperatorData):
    """The pw.x SCF ``CalcJobNode`` a projected frame came from (via the projection's ``parent_folder``)."""
    creator = operator.creator
    if creator is None or "parent_folder" not in creator.inputs:
        raise ValueError(
            f"OperatorData<{operator.pk}> was not produced by a slem.project job; its SCF is unknown"
        )
    scf = creator.inputs.parent_folder.creator
    if scf is None or "structure" not in scf.inputs:
        raise ValueError(
            f"the parent folder of OperatorData<{operator.pk}> does not come from a pw.x calculation"
        )
    return scf


def bands_inputs(frame: OperatorData, settings: Settings, pw_code, options: dict, extra_bands: int) -> dict:
    """Inputs of a ``PwBaseWorkChain`` computing the frame's plane-wave eigenvalues at the validation k."""
    scf = scf_of(frame)
    structure = scf.inputs.structure
    # the frame's k-points (compare.frame_kpoints): the same vacuum rule on the same geometry
    kinfo = validation_kpoints(
        np.array(structure.cell),
        settings.kpath_npoints,
        settings.n_random_k,
        settings.seed,
        positions=np.array([site.position for site in structure.sites]),
        pbc=structure.pbc,
    )
    kpoints = orm.KpointsData()
    kpoints.set_cell_from_structure(structure)
    kpoints.set_kpoints(kinfo["kpoints"], cartesian=False, weights=[1.0] * len(kinfo["kpoints"]))
    parameters = scf.inputs.parameters.get_dict()
    parameters["CONTROL"] = {
        k: v for k, v in parameters.get("CONTROL", {}).items() if k not in ("tprnfor", "tstress")
    }
    parameters["CONTROL"]["calculation"] = "bands"
    # a spin-orbit run's spinor bands hold one electron each: twice the bands, semicore ones included
    per_band = 1 if is_spin_orbit(parameters) else 2
    n_valence = int(round(frame.base.attributes.get("n_electrons") / per_band))
    # room above the valence bands for the conduction window (and a sheet's vacuum states); the semicore
    # bands (GaAs8: 40 of 56) need none, and each band costs pw.x time
    outer = n_valence - int(frame.base.attributes.get("semicore_bands", 0)) * (2 // per_band)
    parameters.setdefault("SYSTEM", {})["nbnd"] = n_valence + max(extra_bands, outer // 2)
    parameters.setdefault("ELECTRONS", {})["diago_full_acc"] = True
    return {
        "pw": {
            "code": pw_code,
            "structure": structure,
            "parameters": orm.Dict(parameters),
            "pseudos": {kind: scf.inputs.pseudos[kind] for kind in structure.get_kind_names()},
            "parent_folder": scf.outputs.remote_folder,
            "metadata": {"options": options},
        },
        "kpoints": kpoints,
    }
