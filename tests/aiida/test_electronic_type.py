"""electronic_type (insulator | metal) of the protocols: pw.x occupations, bands and validators (no runs)."""

from __future__ import annotations

import pytest
from aiida.plugins import WorkflowFactory
from aiida_slem.workflows.electronic import check_occupations
from aiida_slem.workflows.operator import validate_inputs as validate_operator
from aiida_slem.workflows.pipeline import SlemPipelineWorkChain
from aiida_test_helpers import si8_structure

OperatorWorkChain = WorkflowFactory("slem.operator")
MdSamplingWorkChain = WorkflowFactory("slem.md_sampling")
METAL = {"occupations": "smearing", "smearing": "mv", "degauss": 0.02}


def _operator(codes, **kwargs):
    return OperatorWorkChain.get_builder_from_protocol(
        codes["pw"], codes["pp"], codes["slem"], si8_structure(), protocol="fast", **kwargs
    )


def _system(builder_pw) -> dict:
    return builder_pw.parameters.get_dict()["SYSTEM"]


def test_operator_insulator_by_default_and_metal_on_request(codes, pseudo_family):
    insulator = _system(_operator(codes).scf.pw)
    assert insulator["occupations"] == "fixed" and "nbnd" not in insulator and "smearing" not in insulator
    for builder in (
        _operator(codes, electronic_type="metal"),
        _operator(codes, overrides={"electronic_type": "metal"}),
    ):
        system = _system(builder.scf.pw)
        assert {k: system[k] for k in METAL} == METAL
        assert system["nbnd"] == 21 + 8  # 32 valence electrons: ceil(1.3 * 16) + 8
        assert validate_operator(builder._inputs(prune=True), None) is None


def test_explicit_pw_parameters_win_over_the_electronic_type(codes, pseudo_family):
    overrides = {"pw_parameters": {"SYSTEM": {"degauss": 0.01, "smearing": "gaussian", "nbnd": 40}}}
    system = _system(_operator(codes, electronic_type="metal", overrides=overrides).scf.pw)
    assert (system["degauss"], system["smearing"], system["nbnd"]) == (0.01, "gaussian", 40)
    with pytest.raises(ValueError, match="electronic_type 'semimetal' is unknown.*'metal'"):
        _operator(codes, electronic_type="semimetal")


def test_md_and_pipeline_pass_metal_on(codes, pseudo_family):
    md = MdSamplingWorkChain.get_builder_from_protocol(
        codes["pw"], si8_structure(), protocol="fast", electronic_type="metal"
    )
    assert _system(md.md.pw)["occupations"] == "smearing" and _system(md.md.pw)["nbnd"] == 29
    for kwargs in ({"electronic_type": "metal"}, {"overrides": {"electronic_type": "metal"}}):
        pipeline = SlemPipelineWorkChain.get_builder_from_protocol(
            codes, {"si8": si8_structure()}, protocol="fast", **kwargs
        )
        assert _system(pipeline.md.md.pw)["occupations"] == "smearing"
        assert _system(pipeline.dataset.operator.scf.pw)["occupations"] == "smearing"
        assert pipeline.builder_parameters.get_dict()["overrides"]["electronic_type"] == "metal"
    default = SlemPipelineWorkChain.get_builder_from_protocol(
        codes, {"si8": si8_structure()}, protocol="fast"
    )
    assert _system(default.dataset.operator.scf.pw)["occupations"] == "fixed"


def test_occupation_checks_name_the_fix():
    assert check_occupations({"SYSTEM": {"occupations": "fixed"}}) is None
    assert check_occupations({"SYSTEM": METAL}) is None
    assert check_occupations({"SYSTEM": {**METAL, "smearing": "cold"}}) is None
    assert "degauss > 0" in check_occupations({"SYSTEM": {"occupations": "smearing"}})
    assert "'mv'" in check_occupations({"SYSTEM": {**METAL, "smearing": "tetra"}})
    message = check_occupations({"SYSTEM": {"occupations": "tetrahedra"}})
    assert "'fixed'" in message and "'smearing'" in message and "electronic_type='metal'" in message


def test_a_metal_samples_k_by_distance_not_the_fast_single_k_point(codes, pseudo_family):
    # the fast protocols' one shifted k-point put Al4's pw.x Fermi level 4 eV off: metals get a finer distance
    insulator = _operator(codes)
    assert "kpoints" not in insulator.scf and insulator.scf.kpoints_distance.value == 0.6
    metal = _operator(codes, electronic_type="metal")
    assert "kpoints" not in metal.scf and metal.scf.kpoints_distance.value == 0.25
    md = MdSamplingWorkChain.get_builder_from_protocol(
        codes["pw"], si8_structure(), protocol="fast", electronic_type="metal"
    )
    # Si8 cubic (a = 5.43 A): |b| = 2 pi / a = 1.157 / A, distance 0.5 -> 3 per axis, Gamma-centred
    assert md.md.kpoints.get_kpoints_mesh() == ([3, 3, 3], [0.0, 0.0, 0.0])
    pipeline = SlemPipelineWorkChain.get_builder_from_protocol(
        codes, {"si8": si8_structure()}, protocol="fast", electronic_type="metal"
    )
    assert pipeline.dataset.operator.scf.kpoints_distance.value == 0.25
    assert pipeline.md.md.kpoints.get_kpoints_mesh()[0] == [3, 3, 3]
