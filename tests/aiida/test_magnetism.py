"""Collinear magnetism through the plugin: ``magnetization`` turns the pipeline's pw.x runs into nspin=2 runs,
OperatorWorkChain runs pp.x once per spin channel, and the training gets one head per channel.

The real run is bcc Fe (1 atom) with the official PseudoDojo Fe-sp.upf of tests/data at its low cutoff hint.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import WorkflowFactory
from aiida_slem.calcjobs.checks import check_spin
from aiida_slem.workflows.magnetism import spin_operators, spin_parameters
from aiida_slem.workflows.pipeline import SlemPipelineWorkChain
from aiida_test_helpers import dojo_family, si8_structure

from aiida_slem.data import BasisData
from slem.basis.generate import generate_basis
from slem.basis.orbital import write_basis

OperatorWorkChain = WorkflowFactory("slem.operator")
MdSamplingWorkChain = WorkflowFactory("slem.md_sampling")
DOJO = Path(__file__).resolve().parents[1] / "data" / "pseudos" / "pseudodojo-nlcc"
FE = 0.5 * 2.83 * __import__("numpy").array([[-1.0, 1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, -1.0]])


def _system(pw) -> dict:
    return pw.parameters.get_dict()["SYSTEM"]


def test_magnetization_makes_every_pw_run_spin_polarised_and_the_heads_per_channel(codes, pseudo_family):
    moments = {"Si": 0.2}
    pipeline = SlemPipelineWorkChain.get_builder_from_protocol(
        codes, {"si8": si8_structure()}, protocol="fast", overrides={"magnetization": moments}
    )
    for pw in (pipeline.md.md.pw, pipeline.dataset.operator.scf.pw):
        system = _system(pw)
        assert system["nspin"] == 2 and system["starting_magnetization"] == {"Si": 0.2}
        assert system["occupations"] == "smearing"  # implied by the magnetisation
    assert pipeline.train.train.config.get_dict()["operators"] == ["H_up", "H_down", "S", "D_up", "D_down"]
    assert pipeline.builder_parameters.get_dict()["overrides"]["magnetization"] == moments
    assert SlemPipelineWorkChain.spec().inputs.validate(pipeline._inputs(prune=True)) is None


def test_bad_magnetization_is_refused_before_any_run(codes, pseudo_family):
    si8 = {"si8": si8_structure()}

    def build(**overrides):
        return SlemPipelineWorkChain.get_builder_from_protocol(codes, si8, "fast", overrides)

    with pytest.raises(ValueError, match="'Xx', which is not an element"):
        build(magnetization={"Xx": 0.4})
    with pytest.raises(ValueError, match=r"number in \[-1, 1\]"):
        build(magnetization={"Si": 2.0})
    with pytest.raises(ValueError, match="none of the structure's elements"):
        build(magnetization={"Fe": 0.4})
    with pytest.raises(ValueError, match="nspin=2 with occupations='fixed'.*occupations='smearing'"):
        build(magnetization={"Si": 0.2}, electronic_type="insulator")


def test_spin_checks_and_helpers():
    smeared = {"occupations": "smearing", "smearing": "mv", "degauss": 0.02}
    assert check_spin({"SYSTEM": {**smeared, "nspin": 2, "starting_magnetization": {"Fe": 0.4}}}) is None
    assert "pw.x stops" in check_spin({"SYSTEM": {**smeared, "nspin": 2}})
    assert "nspin=4" in check_spin({"SYSTEM": {"nspin": 4}})
    assert spin_operators(["H", "S", "D"]) == ["H_up", "H_down", "S", "D_up", "D_down"]
    assert spin_operators(["H_up", "H_down", "S"]) == ["H_up", "H_down", "S"]
    structure = orm.StructureData(cell=FE)
    structure.append_atom(position=(0, 0, 0), symbols="Fe")
    assert spin_parameters({"Fe": 0.4, "Ni": 0.5}, structure) == {
        "nspin": 2,
        "starting_magnetization": {"Fe": 0.4},
    }


@pytest.fixture
def fe_family(aiida_profile, tmp_path):
    return dojo_family(tmp_path, "Fe")


@pytest.mark.slow
def test_fe_operator_runs_pp_per_channel_and_projects_both(codes, fe_family, tmp_path):
    """A real nspin=2 SCF of bcc Fe: two pp.x runs (spin_component 1 and 2) feed one slem.project, whose
    frame holds H_up, H_down, D_up and D_down, with the moment of D equal to pw.x's."""
    if shutil.which("pw.x") is None:
        pytest.skip("pw.x is not installed")
    write_basis(tmp_path / "fe.h5", {"Fe": generate_basis(DOJO / "Fe-sp.upf", preset="DZP")})
    structure = orm.StructureData(cell=FE)
    structure.append_atom(position=(0, 0, 0), symbols="Fe")
    overrides = {
        "pseudo_family": fe_family,
        "magnetization": {"Fe": 0.4},
        # the fast metal k-distance gives 13^3 k-points for this 1-atom cell; 0.5 gives 7^3 (seconds)
        "electronic_types": {"metal": {"kpoints_distance": 0.5}},
    }
    builder = OperatorWorkChain.get_builder_from_protocol(
        codes["pw"], codes["pp"], codes["slem"], structure, basis=BasisData(tmp_path / "fe.h5"),
        protocol="fast", overrides=overrides, electronic_type="metal",
    )  # fmt: skip
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    pp = {link.link_label: link.node for link in node.base.links.get_outgoing().all()
          if link.link_label.startswith("potential")}  # fmt: skip
    assert sorted(pp) == ["potential_down", "potential_up"]
    assert pp["potential_up"].inputs.parameters["INPUTPP"]["spin_component"] == 1
    assert pp["potential_down"].inputs.parameters["INPUTPP"]["spin_component"] == 2
    assert sorted(results["operator"].operators) == ["D_down", "D_up", "H_down", "H_up", "S"]
    summary = results["project_parameters"].get_dict()
    print(f"Fe (fast, 7^3 SCF mesh): M {summary['magnetization_mub']:.4f} mu_B, pw.x "
          f"{summary['qe_magnetization_mub']:.4f}; D mesh {summary['kmesh']}")  # fmt: skip
    assert summary["n_spin"] == 2 and abs(summary["sum_tr_ds"] - 16.0) < 1e-6
    # pw.x's 7^3 mesh against D's own alias-free mesh: the moment differs by k-sampling, not the basis
    assert abs(summary["magnetization_error_mub"]) < 0.05, summary["magnetization_mub"]  # measured 0.005
    assert summary["magnetization_mub"] > 2.0
    # the export formats hold one Hamiltonian: a channel at a time (aiida-slem export --spin)
    from aiida_slem.cli.export import export_node

    with pytest.raises(ValueError, match="--spin up, then --spin down"):
        export_node(results["operator"], "deeptb", tmp_path / "both")
    assert not (tmp_path / "both").exists()
    assert export_node(results["operator"], "deeph", tmp_path / "up", spin="up")[0] == 1
    assert (tmp_path / "up" / "0" / "hamiltonians.h5").is_file()
