"""OperatorWorkChain: SCF -> pp.x -> slem project on one rattled Si8 cell, and its input checks."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import CalculationFactory, WorkflowFactory
from aiida_test_helpers import si8_structure, write_test_basis

from aiida_slem.data import BasisData

OperatorWorkChain = WorkflowFactory("slem.operator")
SlemProjectCalculation = CalculationFactory("slem.project")


def _builder(codes, structure, basis, **kwargs):
    return OperatorWorkChain.get_builder_from_protocol(
        codes["pw"], codes["pp"], codes["slem"], structure, basis=basis, protocol="fast", **kwargs
    )


def test_project_input_generation(generate_calc_job, codes, si_upf, tmp_path):
    basis = BasisData(write_test_basis(tmp_path / "basis.h5", upf_md5=si_upf.md5)).store()
    scf = orm.RemoteData(computer=codes["pw"].computer, remote_path="/scratch/scf").store()
    pp = orm.RemoteData(computer=codes["pw"].computer, remote_path="/scratch/pp").store()
    inputs = {
        "code": codes["slem"],
        "parent_folder": scf,
        "potential_folder": pp,
        "basis": basis,
        "pseudos": {"Si": si_upf},
        "parameters": orm.Dict({"kmesh": [4, 4, 4]}),
    }
    _, calc_info = generate_calc_job(SlemProjectCalculation, inputs)
    assert calc_info.codes_info[0].cmdline_params == [
        "project",
        "--scf-dir",
        "scf",
        "--potential",
        "vtot.dat",
        "--basis",
        "basis.h5",
        "--pseudo-dir",
        "pseudo",
        "-o",
        "frame.h5",
        "--summary",
        "summary.json",
        "--kmesh",
        "4,4,4",
    ]
    computer = codes["pw"].computer.uuid
    assert sorted(calc_info.remote_copy_list) == [
        (computer, "/scratch/pp/aiida.filplot", "vtot.dat"),
        (computer, "/scratch/scf/out/aiida.save/data-file-schema.xml", "scf/data-file-schema.xml"),
    ]
    assert (basis.uuid, "basis.h5", "basis.h5") in calc_info.local_copy_list
    assert calc_info.retrieve_temporary_list == ["frame.h5"]


def test_project_refuses_basis_of_another_pseudo(codes, si_upf, tmp_path):
    basis = BasisData(write_test_basis(tmp_path / "basis.h5", upf_md5="c" * 32)).store()
    remote = orm.RemoteData(computer=codes["pw"].computer, remote_path="/scratch").store()
    with pytest.raises(ValueError, match="built from the UPF actually used"):
        run_get_node(
            SlemProjectCalculation,
            code=codes["slem"],
            parent_folder=remote,
            potential_folder=remote,
            basis=basis,
            pseudos={"Si": si_upf},
        )


def test_operator_refuses_tetrahedra(codes, pseudo_family, si_upf, tmp_path):
    basis = BasisData(write_test_basis(tmp_path / "basis.h5", upf_md5=si_upf.md5)).store()
    builder = _builder(
        codes,
        si8_structure(),
        basis,
        overrides={"pw_parameters": {"SYSTEM": {"occupations": "tetrahedra"}}},
    )
    with pytest.raises(ValueError, match="occupations must be 'fixed' .* or 'smearing'"):
        run_get_node(builder)


# The real SCF -> pp.x -> slem project chain runs in test_dataset.py's pipeline test.
