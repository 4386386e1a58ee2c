"""Spin-orbit coupling through the plugin: ``spin_orbit`` turns every pw.x run into a noncolin + lspinorb run
with a fully relativistic family, the frames carry H_so_x, H_so_y, H_so_z and the training learns them; the
mismatches (a fully relativistic file without lspinorb, lspinorb with scalar files, magnetism with
spin-orbit) are refused before any run.

The real run is diamond Si (2 atoms) with the official PseudoDojo FR Si of tests/data at its low cutoff hint.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import WorkflowFactory
from aiida_slem.calcjobs.checks import check_spin
from aiida_slem.workflows.magnetism import spin_orbit_operators
from aiida_slem.workflows.pipeline import SlemPipelineWorkChain
from aiida_test_helpers import si8_structure

from aiida_slem.cli.setup_pseudos import read_pseudo_dir
from aiida_slem.data import BasisData
from aiida_slem.pseudo_families import install_family
from slem.basis.generate import generate_basis
from slem.basis.orbital import write_basis

OperatorWorkChain = WorkflowFactory("slem.operator")
FR = Path(__file__).resolve().parents[1] / "data" / "pseudos" / "pseudodojo-fr"
H_SO = ["H_so_x", "H_so_y", "H_so_z"]


@pytest.fixture
def fr_family(aiida_profile, tmp_path):
    folder = tmp_path / "fr"
    shutil.copytree(FR, folder)
    files, cutoffs = read_pseudo_dir(folder, None)
    label = f"test/fr-{uuid.uuid4().hex[:8]}"
    install_family(files, label, cutoffs, "fully relativistic Si for the spin-orbit tests")
    return label


def test_spin_orbit_makes_every_pw_run_spinor_and_the_model_learn_h_so(codes, fr_family):
    pipeline = SlemPipelineWorkChain.get_builder_from_protocol(
        codes, {"si8": si8_structure()}, "fast", {"pseudo_family": fr_family}, spin_orbit=True
    )
    for pw in (pipeline.md.md.pw, pipeline.dataset.operator.scf.pw):
        system = pw.parameters.get_dict()["SYSTEM"]
        assert system["noncolin"] is True and system["lspinorb"] is True
    assert pipeline.train.train.config.get_dict()["operators"] == ["H", "S", "D", *H_SO]
    assert pipeline.builder_parameters.get_dict()["overrides"]["spin_orbit"] is True
    assert pipeline.dataset.basis.parameters.get_dict() == {"preset": "DZP", "j_resolved": "auto"}
    assert SlemPipelineWorkChain.spec().inputs.validate(pipeline._inputs(prune=True)) is None


def test_spin_orbit_mismatches_are_refused_before_any_run(codes, fr_family, pseudo_family):
    si8 = {"si8": si8_structure()}
    build = SlemPipelineWorkChain.get_builder_from_protocol
    fully = build(codes, si8, "fast", {"pseudo_family": fr_family})
    error = SlemPipelineWorkChain.spec().inputs.validate(fully._inputs(prune=True))
    assert error is not None and "fully relativistic pseudopotential(s) for ['Si'] without lspinorb" in str(
        error
    )
    scalar = build(codes, si8, "fast", {"spin_orbit": True})  # the Debian family: scalar-relativistic
    error = SlemPipelineWorkChain.spec().inputs.validate(scalar._inputs(prune=True))
    assert error is not None and "scalar-relativistic pseudopotentials only" in str(error)
    with pytest.raises(ValueError, match="magnetization and spin_orbit together"):
        build(codes, si8, "fast", {"pseudo_family": fr_family, "magnetization": {"Si": 0.2}}, spin_orbit=True)


def test_spin_orbit_checks_and_helpers():
    assert check_spin({"SYSTEM": {"noncolin": True, "lspinorb": True}}) is None
    assert "needs noncolin" in check_spin({"SYSTEM": {"lspinorb": True}})
    assert "with magnetisation" in check_spin({"SYSTEM": {"noncolin": True, "lspinorb": True, "nspin": 2}})
    assert spin_orbit_operators(["H", "S", "D"]) == ["H", "S", "D", *H_SO]
    assert spin_orbit_operators(["S", "D"]) == ["S", "D"]


@pytest.mark.slow
def test_si_operator_with_spin_orbit_projects_the_spinor_h(codes, fr_family, tmp_path):
    """A real noncolin + lspinorb SCF of diamond Si: one pp.x run feeds slem.project, whose frame holds the
    spin-orbit parts with the sum rule over spinor bands."""
    if shutil.which("pw.x") is None:
        pytest.skip("pw.x is not installed")
    write_basis(tmp_path / "si.h5", {"Si": generate_basis(FR / "Si.upf", preset="DZP")})
    a = 5.43
    structure = orm.StructureData(
        cell=0.5 * a * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    )
    structure.append_atom(position=(0, 0, 0), symbols="Si")
    structure.append_atom(position=(0.25 * a,) * 3, symbols="Si")
    builder = OperatorWorkChain.get_builder_from_protocol(
        codes["pw"], codes["pp"], codes["slem"], structure, basis=BasisData(tmp_path / "si.h5"),
        protocol="fast", overrides={"pseudo_family": fr_family, "spin_orbit": True},
    )  # fmt: skip
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    pp = [
        link.link_label
        for link in node.base.links.get_outgoing().all()
        if link.link_label.startswith("potential")
    ]
    assert pp == ["potential"]
    assert sorted(results["operator"].operators) == sorted(
        ["H", "S", "D", *H_SO, "D_so_x", "D_so_y", "D_so_z"]
    )
    summary = results["project_parameters"].get_dict()
    assert summary["spin_orbit"] is True and abs(summary["sum_tr_ds"] - 8.0) < 1e-6
    assert abs(summary["sum_tr_dh_ev"] - summary["band_energy_ev"]) < 1e-6
