"""The slem CalcJobs give ``slem`` its thread count from the job's resources: ``export OMP_NUM_THREADS=N`` in
the submit script (read by slem/threads.py), none when the job asked for no more than the default task."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida_slem.calcjobs.base import threads_per_rank
from aiida_slem.calcjobs.basis import SlemBasisCalculation
from aiida_slem.calcjobs.predict import SlemPredictCalculation
from aiida_slem.calcjobs.project import SlemProjectCalculation
from aiida_slem.calcjobs.train import SlemTrainCalculation
from aiida_test_helpers import si8_structure, tiny_config, write_test_basis

from aiida_slem.data import BasisData
from aiida_slem.data.model import SlemModelData

ONE_TASK = {"num_machines": 1, "num_mpiprocs_per_machine": 1}


@pytest.mark.parametrize(
    ("resources", "ranks", "threads"),
    [
        (ONE_TASK, 1, None),  # nothing requested: slem takes its affinity mask
        ({"num_machines": 1}, 1, None),
        ({"num_machines": 1, "num_mpiprocs_per_machine": 1, "num_cores_per_mpiproc": 4}, 1, 4),
        ({"num_machines": 1, "num_mpiprocs_per_machine": 2, "num_cores_per_mpiproc": 3}, 1, 6),
        ({"num_machines": 1, "num_mpiprocs_per_machine": 1, "num_cores_per_machine": 8}, 1, 8),
        ({"num_machines": 1, "num_mpiprocs_per_machine": 2, "num_cores_per_machine": 8}, 1, 8),
        ({"num_machines": 1, "num_mpiprocs_per_machine": 4}, 1, 4),  # one core per task at least
        ({"num_machines": 1, "num_mpiprocs_per_machine": 1, "num_cores_per_machine": 8}, 2, 4),  # DDP ranks
        ({"num_machines": 1, "num_cores_per_mpiproc": 3}, 4, 1),  # never below one
    ],
)
def test_threads_per_rank(resources, ranks, threads):
    assert threads_per_rank(resources, ranks) == threads


def _export(prepend_text: str) -> list[str]:
    return [line for line in prepend_text.splitlines() if "OMP_NUM_THREADS" in line]


@pytest.fixture
def project_inputs(codes, si_upf, tmp_path):
    basis = BasisData(write_test_basis(tmp_path / "basis.h5", upf_md5=si_upf.md5)).store()
    scf = orm.RemoteData(computer=codes["pw"].computer, remote_path="/scratch/scf").store()
    pp = orm.RemoteData(computer=codes["pw"].computer, remote_path="/scratch/pp").store()
    return {
        "code": codes["slem"],
        "parent_folder": scf,
        "potential_folder": pp,
        "basis": basis,
        "pseudos": {"Si": si_upf},
    }


@pytest.mark.parametrize(
    ("resources", "line"),
    [
        (ONE_TASK, None),
        ({**ONE_TASK, "num_cores_per_mpiproc": 2}, "export OMP_NUM_THREADS=2"),
        ({"num_machines": 1, "num_mpiprocs_per_machine": 3}, "export OMP_NUM_THREADS=3"),
    ],
)
def test_project_and_basis_jobs_export_the_requested_cores(
    generate_calc_job, project_inputs, codes, si_upf, resources, line
):
    metadata = {"options": {"resources": resources}}
    _, calc_info = generate_calc_job(SlemProjectCalculation, {**project_inputs, "metadata": metadata})
    exports = _export(calc_info.prepend_text or "")
    comment = "  # slem: threads per process from the job's resources"
    assert exports == ([] if line is None else [line + comment])
    basis_inputs = {"code": codes["slem"], "pseudos": {"Si": si_upf}, "metadata": metadata}
    _, calc_info = generate_calc_job(SlemBasisCalculation, basis_inputs)
    assert [e.split("  #")[0] for e in _export(calc_info.prepend_text or "")] == ([line] if line else [])


def test_predict_job_exports_the_requested_cores(generate_calc_job, codes, tmp_path):
    model = tmp_path / "model.pt"
    with zipfile.ZipFile(model, "w") as archive:  # never unpickled by the CalcJob
        archive.writestr("model/data.pkl", b"")
    node = SlemModelData(
        model, config={"species": ["Si"], "basis": {"Si": "1s1p"}, "r_cut": {"Si": 2.6}, "n_params": 1}
    ).store()
    inputs = {
        "code": codes["slem"],
        "model": node,
        "structure": si8_structure(),
        "metadata": {"options": {"resources": {**ONE_TASK, "num_cores_per_machine": 4}}},
    }
    _, calc_info = generate_calc_job(SlemPredictCalculation, inputs)
    assert [e.split("  #")[0] for e in _export(calc_info.prepend_text)] == ["export OMP_NUM_THREADS=4"]
    assert "--threads" not in calc_info.codes_info[0].cmdline_params


def test_train_script_order(aiida_computer, aiida_code_installed, si64_dataset, monkeypatch, tmp_path):
    """computer, then code prepend (setup.py's OMP_NUM_THREADS default), then the job's count, then the
    user's options.prepend_text, which can still override it."""
    computer = aiida_computer(label="test-threads-direct", scheduler_type="core.direct")
    computer.configure()
    code = orm.InstalledCode(
        computer=computer,
        filepath_executable="/opt/slem/bin/slem",
        default_calc_job_plugin="slem.train",
        label="slem-threads",
        prepend_text="export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}",
    ).store()
    monkeypatch.chdir(tmp_path)
    builder = SlemTrainCalculation.get_builder()
    builder.code = code
    builder.dataset = si64_dataset
    builder.config = orm.Dict(tiny_config())
    builder.metadata.dry_run = True
    builder.metadata.store_provenance = False
    builder.metadata.options.resources = {**ONE_TASK, "num_cores_per_mpiproc": 3}
    builder.metadata.options.prepend_text = "echo user-text"
    _, node = run_get_node(builder)
    script = (Path(node.dry_run_info["folder"]) / "_aiidasubmit.sh").read_text()
    order = [
        script.index("OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}"),
        script.index("export OMP_NUM_THREADS=3  #"),
        script.index("echo user-text"),
        script.index("/opt/slem/bin/slem"),
    ]
    assert order == sorted(order)
