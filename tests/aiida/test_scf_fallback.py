"""OperatorWorkChain's smearing fallback: a fixed-occupation SCF whose electronic loop never converges is
rerun once with smeared occupations, so the snapshot is kept instead of dropped.

The real run is a 2-atom Al cell (PseudoDojo Al.upf of tests/data, its low cutoff hint) given an insulator's
fixed occupations: the filled states swap between iterations at the Fermi surface and pw.x stalls near 1e-3 Ry
(measured: 40 iterations, 1.3e-3 Ry), while mv smearing converges in 5.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import CalculationFactory, WorkflowFactory
from aiida_slem.workflows.electronic import smeared_parameters, smearing_fallback_problem
from aiida_slem.workflows.operator import validate_inputs as validate_operator
from aiida_test_helpers import dojo_family, si8_structure

from aiida_slem.data import BasisData
from slem.basis.generate import generate_basis
from slem.basis.orbital import write_basis

OperatorWorkChain = WorkflowFactory("slem.operator")
PwCalculation = CalculationFactory("quantumespresso.pw")
DOJO = Path(__file__).resolve().parents[1] / "data" / "pseudos" / "pseudodojo-nlcc"
FALLBACK = {"smearing": "mv", "degauss": 0.01, "bands": {"factor": 1.3, "extra": 8}}


def test_the_fallback_settings_are_checked_and_give_smeared_parameters():
    assert smearing_fallback_problem(FALLBACK) is None
    assert "not ['beta']" in smearing_fallback_problem({**FALLBACK, "beta": 1})
    assert "degauss > 0" in smearing_fallback_problem({**FALLBACK, "degauss": 0})
    assert "'mv'" in smearing_fallback_problem({**FALLBACK, "smearing": "tetra"})
    assert "factor: >= 1" in smearing_fallback_problem({**FALLBACK, "bands": {"factor": 0.5, "extra": 0}})
    fixed = {"SYSTEM": {"ecutwfc": 30, "occupations": "fixed", "nbnd": 16}, "ELECTRONS": {"mixing_beta": 0.4}}
    smeared = smeared_parameters(fixed, FALLBACK, n_electrons=32)
    assert smeared["SYSTEM"] == {"ecutwfc": 30, "occupations": "smearing", "smearing": "mv", "degauss": 0.01,
                                 "nbnd": 21 + 8}  # fmt: skip
    assert smeared["ELECTRONS"] == fixed["ELECTRONS"] and fixed["SYSTEM"]["occupations"] == "fixed"


def test_insulators_get_the_fallback_and_metals_do_not(codes, pseudo_family):
    def build(**kwargs):
        return OperatorWorkChain.get_builder_from_protocol(
            codes["pw"], codes["pp"], codes["slem"], si8_structure(), protocol="fast", **kwargs
        )

    assert build().smearing_fallback.get_dict() == FALLBACK
    assert "smearing_fallback" not in build(electronic_type="metal")
    assert "smearing_fallback" not in build(overrides={"smearing_fallback": None})
    bad = build(overrides={"smearing_fallback": {**FALLBACK, "degauss": -1}})
    error = validate_operator(bad._inputs(prune=True), None)
    assert error.startswith("smearing_fallback: ") and "degauss > 0" in error


@pytest.fixture
def al_family(aiida_profile, tmp_path):
    return dojo_family(tmp_path, "Al")


def _al2() -> orm.StructureData:
    structure = orm.StructureData(cell=[[2.86, 0, 0], [0, 2.86, 0], [0, 0, 4.05]])
    structure.append_atom(position=(0, 0, 0), symbols="Al")
    structure.append_atom(position=(1.43, 1.43, 2.025), symbols="Al")
    return structure


@pytest.mark.slow
def test_a_stalled_fixed_occupation_scf_is_rerun_smeared_and_kept(codes, al_family, tmp_path):
    if shutil.which("pw.x") is None:
        pytest.skip("pw.x is not installed")
    write_basis(tmp_path / "al.h5", {"Al": generate_basis(DOJO / "Al.upf", preset="DZP")})
    overrides = {
        "pseudo_family": al_family,
        # one pw.x try before PwBaseWorkChain gives up, and a short electronic loop: seconds, not minutes
        "max_iterations": 1,
        "pw_parameters": {"ELECTRONS": {"electron_maxstep": 40}},
    }

    def build(**extra):
        return OperatorWorkChain.get_builder_from_protocol(
            codes["pw"], codes["pp"], codes["slem"], _al2(), basis=BasisData(tmp_path / "al.h5"),
            protocol="fast", overrides={**overrides, **extra},
        )  # fmt: skip

    assert build().scf.pw.parameters["SYSTEM"]["occupations"] == "fixed"
    results, node = run_get_node(build())
    assert node.is_finished_ok, node.exit_message
    called = {link.link_label: link.node for link in node.base.links.get_outgoing().all()}
    stalled, rerun = called["scf"], called["scf_smeared"]
    assert not stalled.is_finished_ok
    last = max((c for c in stalled.called if c.process_label == "PwCalculation"), key=lambda c: c.ctime)
    assert last.exit_status == PwCalculation.exit_codes.ERROR_ELECTRONIC_CONVERGENCE_NOT_REACHED.status
    system = rerun.inputs.pw.parameters["SYSTEM"]
    assert (system["occupations"], system["smearing"], system["degauss"]) == ("smearing", "mv", 0.01)
    assert system["nbnd"] == 4 + 8  # 6 electrons: ceil(1.3 * 3) + 8
    # the frame is the smeared SCF's: a metal to the validation, and its D holds the 6 electrons
    operator = results["operator"]
    assert operator.get_frame().metadata["occupations"] == "smearing"
    assert abs(results["project_parameters"]["sum_tr_ds"] - 6.0) < 1e-3
    assert results["scf_parameters"].creator.uuid in {c.uuid for c in rerun.called}

    # without the fallback the same snapshot fails, as before
    _, refused = run_get_node(build(smearing_fallback=None))
    assert refused.exit_status == OperatorWorkChain.exit_codes.ERROR_SCF_FAILED.status
    assert "scf_smeared" not in {link.link_label for link in refused.base.links.get_outgoing().all()}
