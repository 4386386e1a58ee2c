"""``slem.basis`` CalcJob: input generation, input refusal, and a real run of ``slem basis``."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import CalculationFactory
from aiida_pseudo.data.pseudo import UpfData

from aiida_slem.data import BasisData
from aiida_slem.pseudos import DEBIAN_PSEUDO_DIR

SlemBasisCalculation = CalculationFactory("slem.basis")


def test_basis_input_generation(generate_calc_job, codes, si_upf):
    inputs = {
        "code": codes["slem"],
        "pseudos": {"Si": si_upf},
        "parameters": orm.Dict({"preset": "DZP", "radius": {"Si.s": 4.0, "Si.p": 4.5}}),
    }
    folder, calc_info = generate_calc_job(SlemBasisCalculation, inputs)
    assert calc_info.codes_info[0].cmdline_params == [
        "basis",
        "pseudo/Si.pbe-rrkj.UPF",
        "--preset",
        "DZP",
        "--radius",
        "Si.p=4.5",
        "--radius",
        "Si.s=4.0",
        "-o",
        "basis.h5",
        "--json-summary",
        "summary.json",
    ]
    assert calc_info.local_copy_list == [(si_upf.uuid, "Si.pbe-rrkj.UPF", "pseudo/Si.pbe-rrkj.UPF")]
    assert calc_info.retrieve_temporary_list == ["basis.h5"]
    assert "summary.json" in calc_info.retrieve_list


@pytest.mark.parametrize(
    ("filename", "message"),
    [("C.pbe-rrkjus.UPF", "ultrasoft"), ("O.pbe-kjpaw.UPF", "PAW")],
)
def test_basis_refuses_non_norm_conserving_pseudos(codes, filename, message):
    pseudo = UpfData(DEBIAN_PSEUDO_DIR / filename)
    with pytest.raises(ValueError, match=message):
        run_get_node(SlemBasisCalculation, code=codes["slem"], pseudos={"X": pseudo})


def test_basis_refuses_unknown_parameters(codes, si_upf):
    with pytest.raises(ValueError, match="unknown basis parameter"):
        run_get_node(
            SlemBasisCalculation,
            code=codes["slem"],
            pseudos={"Si": si_upf},
            parameters=orm.Dict({"presets": "DZP"}),
        )


def test_j_resolved_basis_needs_fully_relativistic_pseudos(generate_calc_job, codes, si_upf):
    with pytest.raises(ValueError, match="j_resolved needs fully relativistic UPFs"):
        run_get_node(
            SlemBasisCalculation,
            code=codes["slem"],
            pseudos={"Si": si_upf},
            parameters=orm.Dict({"j_resolved": "auto"}),
        )
    with pytest.raises(ValueError, match="'j_resolved' must be one of"):
        run_get_node(
            SlemBasisCalculation,
            code=codes["slem"],
            pseudos={"Si": si_upf},
            parameters=orm.Dict({"j_resolved": 1}),
        )
    fr = UpfData(Path(__file__).resolve().parents[1] / "data" / "pseudos" / "pseudodojo-fr" / "Bi.upf")
    inputs = {"code": codes["slem"], "pseudos": {"Bi": fr}, "parameters": orm.Dict({"j_resolved": "auto"})}
    _, calc_info = generate_calc_job(SlemBasisCalculation, inputs)
    assert "--j-resolved auto" in " ".join(calc_info.codes_info[0].cmdline_params)


@pytest.mark.slow
def test_basis_runs_slem_basis(codes, si_upf):
    results, node = run_get_node(
        SlemBasisCalculation,
        code=codes["slem"],
        pseudos={"Si": si_upf},
        parameters=orm.Dict({"preset": "DZP"}),
    )
    assert node.is_finished_ok, node.exit_message
    basis = results["basis"]
    assert isinstance(basis, BasisData)
    assert basis.shells == {"Si": "2s2p1d"} and basis.label == "DZP"
    assert basis.upf_md5 == {"Si": si_upf.md5}
    assert 3.0 < basis.radii["Si"] < 6.0
    assert results["output_parameters"]["n_orbitals"] == {"Si": 13}
    # the file is not duplicated in the retrieved folder
    assert "basis.h5" not in node.outputs.retrieved.base.repository.list_object_names()
