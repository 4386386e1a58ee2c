"""``slem.project`` parser: outputs from the retrieved files, and its 300/400 exit codes."""

from __future__ import annotations

import json

import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.plugins import CalculationFactory, ParserFactory
from aiida_slem.parsers.project import normalise_summary
from aiida_test_helpers import write_test_frame

SlemProjectCalculation = CalculationFactory("slem.project")
SlemProjectParser = ParserFactory("slem.project")

# keys exactly as 'slem project --summary' writes them (slem/projection/project.py)
SUMMARY = {
    "n_electrons": 32.0,
    "sum_tr_ds": 32.0000004,
    "sum_tr_dh_ev": -85.1,
    "band_energy_ev": -85.0,
    "scf_converged": True,
    "kmesh": [3, 3, 3],
    "basis_label": {"Si": "DZP"},
}


@pytest.fixture
def project_node(aiida_localhost):
    def factory(summary: dict | None, stderr: str = "", tolerance: float = 1e-3):
        node = orm.CalcJobNode(computer=aiida_localhost, process_type="aiida.calculations:slem.project")
        node.set_option("resources", {"num_machines": 1})
        node.set_option("output_filename", "slem.out")
        node.set_option("scheduler_stderr", "_scheduler-stderr.txt")
        node.base.links.add_incoming(orm.Float(tolerance).store(), LinkType.INPUT_CALC, "sum_rule_tolerance")
        node.store()
        retrieved = orm.FolderData()
        retrieved.base.repository.put_object_from_bytes(b"", "slem.out")
        retrieved.base.repository.put_object_from_bytes(stderr.encode(), "_scheduler-stderr.txt")
        if summary is not None:
            retrieved.base.repository.put_object_from_bytes(json.dumps(summary).encode(), "summary.json")
        retrieved.base.links.add_incoming(node, LinkType.CREATE, "retrieved")
        retrieved.store()
        return node

    return factory


def _parse(node, temporary):
    results, calcfunction = SlemProjectParser.parse_from_node(
        node, store_provenance=False, retrieved_temporary_folder=str(temporary)
    )
    return results, calcfunction


def test_summary_keys_are_normalised():
    summary = normalise_summary(SUMMARY)
    assert summary["tr_DS"] == SUMMARY["sum_tr_ds"] and summary["tr_DH"] == -85.1
    assert summary["band_energy_error"] == pytest.approx(-0.1)


def test_good_frame_becomes_operator_data(project_node, tmp_path):
    write_test_frame(tmp_path / "frame.h5")
    results, calcfunction = _parse(project_node(SUMMARY), tmp_path)
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    operator = results["operator"]
    assert operator.base.attributes.get("tr_DS") == pytest.approx(32.0000004)
    assert operator.base.attributes.get("basis_label") == "DZP"
    assert results["output_parameters"]["kmesh"] == [3, 3, 3]


def test_sum_rule_violation_is_exit_410(project_node, tmp_path):
    write_test_frame(tmp_path / "frame.h5")
    results, calcfunction = _parse(project_node({**SUMMARY, "sum_tr_ds": 31.9}), tmp_path)
    assert calcfunction.exit_status == SlemProjectCalculation.exit_codes.ERROR_SUM_RULE_VIOLATED.status
    assert "0.1" in calcfunction.exit_message
    assert "operator" in results  # kept for inspection


def test_unconverged_scf_is_exit_420(project_node, tmp_path):
    write_test_frame(tmp_path / "frame.h5")
    _, calcfunction = _parse(project_node({**SUMMARY, "scf_converged": False}), tmp_path)
    assert calcfunction.exit_status == SlemProjectCalculation.exit_codes.ERROR_SCF_NOT_CONVERGED.status


def test_corrupt_frame_is_exit_310(project_node, tmp_path):
    good = write_test_frame(tmp_path / "good.h5")
    (tmp_path / "frame.h5").write_bytes(good.read_bytes()[:500])
    results, calcfunction = _parse(project_node(SUMMARY), tmp_path)
    assert calcfunction.exit_status == SlemProjectCalculation.exit_codes.ERROR_OUTPUT_FRAME_INVALID.status
    assert "regenerate" in calcfunction.exit_message
    assert not results or "operator" not in results


def test_failed_command_reports_its_error(project_node, tmp_path):
    stderr = "Error: occupations='smearing' in the SCF; rerun pw.x with occupations='fixed'\n"
    _, calcfunction = _parse(project_node(None, stderr=stderr), tmp_path)
    assert calcfunction.exit_status == SlemProjectCalculation.exit_codes.ERROR_COMMAND_FAILED.status
    assert "occupations='fixed'" in calcfunction.exit_message


def test_missing_outputs_are_300s(project_node, tmp_path):
    _, calcfunction = _parse(project_node(None), tmp_path)
    assert calcfunction.exit_status == SlemProjectCalculation.exit_codes.ERROR_OUTPUT_FRAME_MISSING.status
    write_test_frame(tmp_path / "frame.h5")
    _, calcfunction = _parse(project_node(None), tmp_path)
    assert calcfunction.exit_status == SlemProjectCalculation.exit_codes.ERROR_OUTPUT_SUMMARY_MISSING.status
