"""GPU requests in the generated submit scripts of ``slem.train``/``slem.predict`` (dry runs: nothing is
submitted), and the translation rules of ``calcjobs/gpu.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida_slem.calcjobs.gpu import check_gpu_request, gpu_request, walltime_stop_seconds
from aiida_slem.calcjobs.predict import SlemPredictCalculation
from aiida_slem.calcjobs.train import SlemTrainCalculation
from aiida_test_helpers import tiny_config


def submit_script(
    code, dataset, monkeypatch, tmp_path, gpus: int, kind: str | None = None, options=None, **extra
) -> tuple[str, list[str]]:
    """The ``_aiidasubmit.sh`` text and the run line of a dry-run slem.train job."""
    tmp_path.mkdir(exist_ok=True)
    monkeypatch.chdir(tmp_path)  # the dry run writes ./submit_test/
    builder = SlemTrainCalculation.get_builder()
    builder.code = code
    builder.dataset = dataset
    builder.config = orm.Dict(tiny_config())
    builder.gpus = orm.Int(gpus)
    if kind:
        builder.gpu_kind = orm.Str(kind)
    for key, value in extra.items():
        builder[key] = value
    builder.metadata.dry_run = True
    builder.metadata.store_provenance = False
    builder.metadata.options.resources = {
        "num_machines": 1,
        "num_mpiprocs_per_machine": 1,
        "num_cores_per_machine": 8,
    }
    builder.metadata.options.max_wallclock_seconds = 3600
    for key, value in (options or {}).items():
        builder.metadata.options[key] = value
    _, node = run_get_node(builder)
    script = (Path(node.dry_run_info["folder"]) / "_aiidasubmit.sh").read_text()
    run_line = next(line for line in script.splitlines() if "/opt/slem/bin/slem" in line)
    return script, run_line.replace("'", "").split()


@pytest.mark.parametrize(("gpus", "threads"), [(0, 8), (1, 8), (2, 4)])
def test_torch_threads_follow_the_requested_cores(scheduler_code, si64_dataset, monkeypatch, tmp_path, gpus,
                                                  threads):
    script, run = submit_script(scheduler_code("core.slurm"), si64_dataset, monkeypatch, tmp_path, gpus)
    # 8 cores requested, split over the DDP ranks; slem reads OMP_NUM_THREADS (slem/threads.py)
    assert f"export OMP_NUM_THREADS={threads}  #" in script and "--threads" not in run
    assert script.index(f"export OMP_NUM_THREADS={threads}") < script.index("/opt/slem/bin/slem")


@pytest.mark.parametrize("gpus", [1, 2])
def test_slurm_script_requests_gres(scheduler_code, si64_dataset, monkeypatch, tmp_path, gpus):
    script, run = submit_script(scheduler_code("core.slurm"), si64_dataset, monkeypatch, tmp_path, gpus)
    assert f"#SBATCH --gres=gpu:{gpus}\n" in script
    assert script.index("#SBATCH --gres") < script.index("/opt/slem/bin/slem")
    assert run[1:3] == ["train", "slem_train.json"] and run[run.index("--device") + 1] == "cuda"
    if gpus > 1:
        assert run[run.index("--nproc") + 1] == "2" and "--ddp" in run
    else:
        assert "--ddp" not in run
    assert "CUDA_VISIBLE_DEVICES" not in script  # Slurm sets it for the allocated devices


def test_slurm_gpu_kind_and_gpus_per_task(scheduler_code, si64_dataset, monkeypatch, tmp_path):
    code = scheduler_code("core.slurm")
    script, _ = submit_script(code, si64_dataset, monkeypatch, tmp_path, 2, kind="a100")
    assert "#SBATCH --gres=gpu:a100:2\n" in script
    script, _ = submit_script(
        code, si64_dataset, monkeypatch, tmp_path / "b", 2, kind="a100", gpus_per_task=orm.Bool(True)
    )
    assert "#SBATCH --gpus-per-task=a100:2\n" in script and "--gres" not in script


def test_slurm_keeps_user_scheduler_commands(scheduler_code, si64_dataset, monkeypatch, tmp_path):
    script, _ = submit_script(
        scheduler_code("core.slurm"),
        si64_dataset,
        monkeypatch,
        tmp_path,
        1,
        options={"custom_scheduler_commands": "#SBATCH --constraint=gpu"},
    )
    assert "#SBATCH --constraint=gpu\n#SBATCH --gres=gpu:1\n" in script


@pytest.mark.parametrize("gpus", [1, 2])
def test_pbspro_script_selects_ngpus(scheduler_code, si64_dataset, monkeypatch, tmp_path, gpus):
    script, run = submit_script(scheduler_code("core.pbspro"), si64_dataset, monkeypatch, tmp_path, gpus)
    selects = [line for line in script.splitlines() if line.startswith("#PBS -l select=")]
    # AiiDA's own select line first, then the full one with GPUs, which qsub keeps (the last value wins)
    assert selects == [
        "#PBS -l select=1:mpiprocs=1:ncpus=8",
        f"#PBS -l select=1:mpiprocs=1:ncpus=8:ngpus={gpus}",
    ]
    assert run[run.index("--device") + 1] == "cuda"
    assert ("--ddp" in run) == (gpus > 1)


def test_direct_scheduler_pins_devices(scheduler_code, si64_dataset, monkeypatch, tmp_path):
    script, run = submit_script(scheduler_code("core.direct"), si64_dataset, monkeypatch, tmp_path, 2)
    assert "export CUDA_VISIBLE_DEVICES=0,1\n" in script
    assert "#SBATCH" not in script and "#PBS" not in script
    assert run[run.index("--nproc") + 1] == "2"


def test_cpu_job_has_no_gpu_request(scheduler_code, si64_dataset, monkeypatch, tmp_path):
    script, run = submit_script(scheduler_code("core.slurm"), si64_dataset, monkeypatch, tmp_path, 0)
    assert "gpu" not in script.lower().replace("--gpus", "")
    assert run[run.index("--device") + 1] == "cpu"


def test_walltime_watchdog_stops_before_the_limit(scheduler_code, si64_dataset, monkeypatch, tmp_path):
    script, _ = submit_script(scheduler_code("core.slurm"), si64_dataset, monkeypatch, tmp_path, 1)
    assert "#SBATCH --time=01:00:00" in script
    assert "sleep 3300 &" in script  # 3600 s minus a 300 s margin for the checkpoint
    assert (
        script.index("sleep 3300")
        < script.index("/opt/slem/bin/slem")
        < script.index('kill "$slem_watchdog"')
    )


def test_predict_script_requests_one_gpu(scheduler_code, si_model, monkeypatch, tmp_path, si64_frames):
    from ase import Atoms

    monkeypatch.chdir(tmp_path)
    frame = si64_frames[0]
    structure = orm.StructureData(
        ase=Atoms(numbers=frame.numbers, positions=frame.positions, cell=frame.cell, pbc=True)
    )
    builder = SlemPredictCalculation.get_builder()
    builder.code = scheduler_code("core.slurm")
    builder.model = si_model
    builder.structure = structure
    builder.gpus = orm.Int(1)
    builder.metadata.dry_run = True
    builder.metadata.store_provenance = False
    _, node = run_get_node(builder)
    folder = Path(node.dry_run_info["folder"])
    script = (folder / "_aiidasubmit.sh").read_text()
    assert "#SBATCH --gres=gpu:1\n" in script and "'--device' 'cuda'" in script
    assert (folder / "structures" / "structure.xyz").is_file()


def test_translation_rules():
    resources = {"num_machines": 1, "num_mpiprocs_per_machine": 1}
    assert gpu_request("core.slurm", 0).scheduler_commands == ""
    assert gpu_request("core.torque", 2, None, resources).scheduler_commands == "#PBS -l nodes=1:ppn=1:gpus=2"
    assert gpu_request("core.pbspro", 1, "a100", resources, max_memory_kb=1000).scheduler_commands == (
        "#PBS -l select=1:mpiprocs=1:mem=1000kb:ngpus=1:gpu_model=a100"
    )
    assert walltime_stop_seconds("core.direct", 20) == 20
    assert walltime_stop_seconds("core.slurm", 20) == 18
    assert walltime_stop_seconds("core.slurm", 86400) == 86100
    assert walltime_stop_seconds("core.slurm", None) is None


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("core.slurm", -1, None, {}), "gpus must be >= 0"),
        (("core.slurm", 0, "a100", {}), "need gpus >= 1"),
        (("core.slurm", 2, None, {"num_machines": 2}), "num_machines=1"),
        (("core.lsf", 1, None, {}), "no GPU translation is known for scheduler 'core.lsf'"),
        (("core.slurm", 1, "a100; rm", {}), "may contain only"),
    ],
)
def test_untranslatable_requests_are_refused(args, fragment):
    assert fragment in check_gpu_request(*args)


def test_unknown_scheduler_accepts_the_users_own_gpu_directive():
    assert check_gpu_request("core.lsf", 1, None, {}, "#BSUB -gpu num=1") is None
