"""``slem.validate`` and ``SlemValidationWorkChain``: the comparison runs as a CalcJob on the compute node,
its parser stores the report, verdict and plots, and nothing in the daemon diagonalises or plots (#18)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import run_get_node
from aiida.plugins import CalculationFactory
from aiida_slem.workflows.validation import SlemValidationWorkChain

from aiida_slem.data.dataset import DatasetData
from aiida_slem.data.operator import OperatorData
from slem.bands import band_energies
from slem.data.frame import read_frames, write_frames
from slem.evaluate.kpoints import validation_kpoints
from slem.evaluate.settings import Settings

SlemValidateCalculation = CalculationFactory("slem.validate")

SI8 = Path(__file__).parents[1] / "data" / "si8_frames.h5"
METADATA = {"options": {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1}}}
SETTINGS = {"kpath_npoints": 6, "n_random_k": 2, "thresholds": {"valence_mae_vs_lcao_meV": 1.0}}


def labelled_frames(shift: float = 0.0):
    frames = read_frames(SI8, [0, 1])
    for label, frame in zip(("a", "b"), frames, strict=True):
        frame.metadata["label"] = label
        frame.operators["H"] = frame.operators["H"] + shift * frame.operators["S"]
    return frames


@pytest.fixture
def pair(aiida_profile, tmp_path) -> tuple[DatasetData, DatasetData]:
    """(predictions, reference): the predictions are the reference with every band 10 meV up."""
    reference = DatasetData(write_frames(tmp_path / "reference.h5", labelled_frames())).store()
    predictions = DatasetData(write_frames(tmp_path / "predictions.h5", labelled_frames(0.01))).store()
    return predictions, reference


def pw_bands_of(frame, offset: float, kshift: float = 0.0) -> orm.BandsData:
    """Pretend pw.x eigenvalues: the frame's bands + ``offset`` eV at the validation k-points + ``kshift``."""
    kpts = np.asarray(validation_kpoints(frame.cell, 6, 2, 0, positions=frame.positions)["kpoints"])
    bands = orm.BandsData()
    bands.set_cell(frame.cell)
    bands.set_kpoints(kpts + kshift)
    bands.set_bands(band_energies(frame, kpts) + offset, units="eV")
    return bands.store()


def run_validate(code, pair, pw_bands: orm.BandsData):
    predictions, reference = pair
    return run_get_node(
        SlemValidateCalculation,
        code=code,
        predictions=predictions,
        reference=reference,
        settings=orm.Dict(SETTINGS),
        pw_bands={"a": pw_bands},
        metadata=METADATA,
    )


def refused(**inputs) -> str:
    with pytest.raises(ValueError) as info:
        run_get_node(SlemValidateCalculation, metadata=METADATA, **inputs)
    return str(info.value)


def test_protocols_carry_metal_thresholds():
    settings = SlemValidationWorkChain.get_protocol_inputs("fast")["settings"]
    assert Settings.from_dict(settings).metal_thresholds["fermi_window_mae_vs_lcao_meV"] == 30.0
    assert "valence_mae_vs_lcao_meV" not in settings["metal_thresholds"]


def test_inputs_are_checked_before_submission(slem_code, pair, tmp_path):
    predictions, reference = pair
    one = DatasetData(write_frames(tmp_path / "one.h5", labelled_frames()[:1])).store()
    message = refused(code=slem_code, predictions=one, reference=reference)
    assert "predict exactly the reference frames" in message
    base = {"code": slem_code, "predictions": predictions, "reference": reference}
    assert "unknown validation setting" in refused(**base, settings=orm.Dict({"kpath_npoint": 4}))
    assert "unknown split(s) ['held_out']" in refused(**base, splits=orm.Dict({"a": "held_out"}))
    assert "not numbers" in refused(**base, electrons=orm.Dict({"a": "thirty-two"}))


def test_command_line_and_files(generate_calc_job, slem_code, pair):
    predictions, reference = pair
    bands = pw_bands_of(labelled_frames()[0], -0.3)
    inputs = {
        "code": slem_code,
        "predictions": predictions,
        "reference": reference,
        "settings": orm.Dict(SETTINGS),
        "electrons": orm.Dict({"a": 32.0, "b": 32.0}),
        "pw_bands": {"a": bands},
        "metadata": METADATA,
    }
    folder, calc_info = generate_calc_job(SlemValidateCalculation, inputs)
    arguments = calc_info.codes_info[0].cmdline_params
    assert arguments[:3] == ["validate", "predictions.h5", "reference.h5"]
    assert arguments[3:7] == ["-o", "report.json", "--plots", "plots"]
    assert "--splits" not in arguments and arguments[arguments.index("--pw-bands") + 1] == "pw_bands.json"
    written = json.loads((folder / "pw_bands.json").read_text())
    assert np.array_equal(written["a"]["bands"], bands.get_bands())
    assert json.loads((folder / "settings.json").read_text()) == SETTINGS
    targets = {target for _, _, target in calc_info.local_copy_list}
    assert targets == {"predictions.h5", "reference.h5"}
    assert ("plots/*.png", ".", 1) in calc_info.retrieve_list


@pytest.mark.slow
def test_real_run_stores_report_verdict_and_plots(slem_code, pair):
    results, node = run_validate(slem_code, pair, pw_bands_of(labelled_frames()[0], -0.3))
    assert node.is_finished_ok, node.exit_message
    report = results["metrics"].get_dict()
    assert report["bands"]["a"]["vs_lcao"]["all"]["offset_meV"] == pytest.approx(10.0, abs=1e-6)
    assert report["bands"]["a"]["lcao_vs_pw"]["all"]["offset_meV"] == pytest.approx(300.0, abs=1e-6)
    assert "lcao_vs_pw" not in report["bands"]["b"]
    assert results["passed"].value is True  # valence MAE after the offset: 0
    assert set(results["plots"]) == {"parity", "bands_a", "bands_b"}
    assert results["plots"]["parity"].get_content(mode="rb")[:4] == b"\x89PNG"
    created = {link.link_label for link in node.base.links.get_outgoing(link_type=LinkType.CREATE).all()}
    assert {"metrics", "passed", "plots__parity"} <= created


@pytest.mark.slow
def test_bad_input_found_on_the_node_gives_the_one_line_reason(slem_code, pair):
    _, node = run_validate(slem_code, pair, pw_bands_of(labelled_frames()[0], 0.0, kshift=0.01))
    assert node.exit_status == SlemValidateCalculation.exit_codes.ERROR_MISSING_OUTPUT.status
    assert "other k-points" in node.exit_message and "rerun the pw.x bands step" in node.exit_message


@pytest.mark.slow
def test_workchain_compares_in_a_calcjob(slem_code, si_model, tmp_path):
    """The whole SlemValidationWorkChain without pw.x: merge, predict, then slem validate as a CalcJob whose
    outputs are the workchain's metrics, verdict and plots."""
    frames = {}
    for label, frame in zip(("a", "b"), labelled_frames(), strict=True):
        path = write_frames(tmp_path / f"{label}.h5", [frame])
        frames[label] = OperatorData(path, summary={"n_electrons": 32.0}).store()
    results, node = run_get_node(
        SlemValidationWorkChain,
        model=si_model,
        frames=frames,
        settings=orm.Dict(SETTINGS),
        predict={"code": slem_code, "metadata": METADATA},
    )
    assert node.is_finished_ok, node.exit_message
    compare = [c for c in node.called if c.base.attributes.get("process_label") == "SlemValidateCalculation"]
    assert len(compare) == 1 and compare[0].is_finished_ok
    assert results["metrics"].uuid == compare[0].outputs.metrics.uuid
    assert set(results["plots"]) == {"parity", "bands_a", "bands_b"}
    assert compare[0].inputs.reference.uuid == results["test_dataset"].uuid
    assert compare[0].inputs.predictions.uuid == results["predictions"].uuid
    assert compare[0].inputs.electrons.get_dict() == {"a": 32.0, "b": 32.0}
    report = results["metrics"].get_dict()
    assert report["summary"]["H_mae_meV"] > 0 and set(report["bands"]) == {"a", "b"}
