"""End to end: one tiny SlemPipelineWorkChain (Si2, short MD, 4 frames, 20 training steps) through
``aiida.engine.run``, shared by the tests of this module; then provenance, status, export and retrain.
"""

from __future__ import annotations

import pytest
from aiida import orm
from aiida_test_helpers import TINY_PIPELINE

pytestmark = pytest.mark.slow

# the smallest pipeline that still exercises every step: 2 MD runs, 3 + 1 frames, 20 training steps
TINY = {
    "md": {
        "supercell": [1, 1, 1],
        "temperatures": [600.0],
        "equilibration_steps": 2,
        "stride": 2,
        "n_snapshots": 3,
        "training_atoms": None,  # exactly 3 snapshots of Si2, not the 24 that 48 training atoms would take
        "n_held_out": 1,
    },
    **TINY_PIPELINE,
}


def si2() -> orm.StructureData:
    from ase.build import bulk

    return orm.StructureData(ase=bulk("Si", "diamond", a=5.43))


@pytest.fixture(scope="module")
def pipeline(module_codes):
    from aiida.engine import run_get_node
    from aiida_slem.workflows.pipeline import SlemPipelineWorkChain

    builder = SlemPipelineWorkChain.get_builder_from_protocol(
        module_codes, {"si2": si2()}, protocol="fast", overrides=TINY
    )
    _, node = run_get_node(builder)
    return node


def test_pipeline_finishes_with_validated_model(pipeline):
    from aiida_slem.data.model import SlemModelData

    assert pipeline.is_finished_ok, pipeline.exit_message
    assert isinstance(pipeline.outputs.model, SlemModelData)
    split = pipeline.outputs.dataset.base.attributes.get("n_frames_per_split")
    assert split == {"train": 2, "validation": 1, "test": 1}
    metrics = pipeline.outputs.metrics.get_dict()
    summary = metrics["summary"]
    for key in (
        "H_mae_meV",
        "S_mae",
        "D_mae",
        "valence_mae_vs_lcao_meV",
        "valence_mae_vs_pw_meV",
        "offset_vs_pw_meV",
        "valence_mae_lcao_vs_pw_meV",
        "gap_error_vs_lcao_meV",
    ):
        assert summary[key] is not None, key
    assert summary["H_mae_meV"] > 0.0  # 20 steps cannot reproduce DFT exactly: the comparison is real
    assert set(metrics["blocks"]["H"]) >= {"onsite", "hopping", "Si-Si"}
    assert pipeline.outputs.passed.value == metrics["verdict"]["passed"]
    for plot in pipeline.outputs.plots.values():
        assert plot.get_content(mode="rb")[:4] == b"\x89PNG"
    assert "parity" in pipeline.outputs.plots


def test_validation_uses_only_held_out_frames(pipeline):
    validation = next(n for n in pipeline.called if n.process_label == "SlemValidationWorkChain")
    held_out = set(validation.inputs.frames)
    assert held_out and all("held_out" in label for label in held_out)
    dataset = pipeline.outputs.dataset
    test_labels = {f.metadata["label"] for f in dataset.get_frames("test")}
    train_labels = {
        f.metadata["label"] for f in dataset.get_frames("train") + dataset.get_frames("validation")
    }
    assert held_out == test_labels
    assert not held_out & train_labels


def test_provenance_lists_every_pw_calculation_behind_the_model(pipeline):
    from aiida_slem import provenance

    found = {calc.pk for calc in provenance.pw_calculations(pipeline.outputs.model)}
    # every pw.x run launched by the MD and dataset steps (walking the call graph, not data provenance)
    steps = [n for n in pipeline.called if n.process_label in ("MdSamplingWorkChain", "DatasetWorkChain")]
    expected = {n.pk for step in steps for n in step.called_descendants if n.process_label == "PwCalculation"}
    # and the same set straight from the database: pw.x jobs upstream of the model in the data provenance
    qb = orm.QueryBuilder()
    qb.append(orm.Data, filters={"id": pipeline.outputs.model.pk}, tag="model")
    qb.append(
        orm.CalcJobNode,
        with_descendants="model",
        project="id",
        filters={"process_type": "aiida.calculations:quantumespresso.pw"},
    )
    assert set(qb.all(flat=True)) == expected
    assert len(expected) == 2 + 4  # two MD runs and one SCF per frame
    assert found == expected
    # the validation's pw.x bands runs did not feed the model
    bands = [
        n
        for n in pipeline.called_descendants
        if n.process_label == "PwCalculation" and n.inputs.parameters["CONTROL"]["calculation"] == "bands"
    ]
    assert bands and not {b.pk for b in bands} & found


def test_status_tree(pipeline):
    from aiida_slem.cli.status import progress, tree_lines

    lines = tree_lines(pipeline)
    assert lines[0].startswith(f"SlemPipelineWorkChain<{pipeline.pk}>")
    for step in ("MdSamplingWorkChain", "DatasetWorkChain", "SlemTrainWorkChain", "SlemValidationWorkChain"):
        assert any(step in line and "finished ok" in line for line in lines), step
    done, failed, running = progress(pipeline)
    assert done >= 2 + 4 * 3 + 1 + 1 + 1 and failed == 0 and running == 0


def test_export_model_as_deeptb(pipeline, tmp_path):
    from aiida_slem.cli.export import export_node
    from slem.data.deeptb import read_deeptb

    count, dataset = export_node(pipeline.outputs.model, "deeptb", tmp_path / "dptb")
    assert dataset.uuid == pipeline.outputs.dataset.uuid
    assert count == dataset.n_frames
    assert (tmp_path / "dptb" / "slem_model.pt").is_file()
    frames = read_deeptb(tmp_path / "dptb", {"Si": dataset.base.attributes.get("basis")["Si"]})
    assert len(frames) == count


def test_retrain_on_diamond_makes_a_separate_model(pipeline):
    from aiida.engine import run_get_node
    from ase.build import bulk

    from aiida_slem import provenance
    from aiida_slem.cli.retrain import retrain_builder

    builder, source = retrain_builder(
        pipeline.outputs.model,
        orm.StructureData(ase=bulk("C", "diamond", a=3.567)),
        {"training": {"max_steps": 10}},
        label="diamond",
    )
    assert source.pk == pipeline.pk
    _, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    model = node.outputs.model
    assert model.uuid != pipeline.outputs.model.uuid
    assert model.species == ["C"]
    dataset = provenance.training_dataset(model)
    assert dataset.uuid == node.outputs.dataset.uuid != pipeline.outputs.dataset.uuid
    assert dataset.base.attributes.get("elements") == ["C"]
    assert model.base.attributes.get("config")["training"]["max_steps"] == 10
    behind = {calc.pk for calc in provenance.pw_calculations(model)}
    assert behind and not behind & {calc.pk for calc in provenance.pw_calculations(pipeline.outputs.model)}


def test_retrain_fine_tune_starts_from_the_model(pipeline):
    """--fine-tune: the new pipeline's training job takes the model as parent_model (a provenance link)
    and starts from its weights, recorded by the file's hash in the job's metrics."""
    from aiida.engine import run_get_node
    from ase.build import bulk

    from aiida_slem import provenance
    from aiida_slem.cli.retrain import retrain_builder

    parent = pipeline.outputs.model
    strained = orm.StructureData(ase=bulk("Si", "diamond", a=5.55))
    overrides = {"training": {"max_steps": 10}}
    builder, _ = retrain_builder(parent, strained, overrides, "strained", fine_tune=True)
    _, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    model = node.outputs.model
    train_job = model.creator
    assert train_job.inputs.parent_model.uuid == parent.uuid
    assert train_job.outputs.metrics["init_model_sha256"] == parent.sha256
    assert model.species == parent.species
    assert model.base.attributes.get("basis") == parent.base.attributes.get("basis")
    dataset = provenance.training_dataset(model)
    assert dataset.uuid == node.outputs.dataset.uuid != pipeline.outputs.dataset.uuid


def test_retrain_fine_tune_refuses_elements_the_model_does_not_know(pipeline, tmp_path):
    """Refused from the command line before anything is launched, with the fix named."""
    import ase.io
    from ase.build import bulk
    from click.testing import CliRunner

    from aiida_slem.cli.retrain import retrain

    ase.io.write(tmp_path / "diamond.cif", bulk("C", "diamond", a=3.567))
    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    model = pipeline.outputs.model
    result = CliRunner().invoke(retrain, [str(model.pk), "--structure", str(tmp_path / "diamond.cif"),
                                          "--fine-tune", "--run"])
    assert result.exit_code != 0
    assert f"model <{model.pk}> knows ['Si'], not ['C']" in result.output
    assert "retrain without --fine-tune" in result.output
    refit_alone = CliRunner().invoke(retrain, [str(model.pk), "--structure", str(tmp_path / "diamond.cif"),
                                               "--refit-statistics", "--run"])
    assert refit_alone.exit_code != 0 and "add --fine-tune" in refit_alone.output
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before


def test_learn_continues_the_pipeline_with_its_own_dft_settings(pipeline):
    """aiida-slem learn: perturbed copies of the pipeline's structures as candidates, the pipeline's
    dataset, basis and recorded SCF inputs; one real round adds the most uncertain candidate, computed like
    the rest."""
    import numpy as np
    from aiida.engine import run_get_node

    from aiida_slem.cli.learn import learn_builder, pipeline_candidates

    candidates = pipeline_candidates(pipeline, 3, rattle=0.05, strain=0.02, seed=0)
    assert sorted(candidates) == [f"si2_candidate_{i:03d}" for i in range(3)]
    original = pipeline.inputs.structures["si2"].get_ase()
    for structure in candidates.values():
        atoms = structure.get_ase()
        deformation = np.linalg.solve(original.cell[:], atoms.cell[:])
        assert 0 < np.abs(deformation - np.eye(3)).max() <= 0.02
    again = pipeline_candidates(pipeline, 3, rattle=0.05, strain=0.02, seed=0)
    for label, structure in candidates.items():  # seeded: the same candidates again
        assert np.allclose(again[label].get_ase().positions, structure.get_ase().positions)

    loop = {"n_models": 2, "select": 1, "max_rounds": 1, "rank_by": "fermi_band_sigma_meV"}
    builder = learn_builder(pipeline, candidates, loop)
    assert builder.committee.rank_by.value == "fermi_band_sigma_meV"
    recorded = pipeline.inputs.dataset.operator
    assert builder.dataset.uuid == pipeline.outputs.dataset.uuid
    assert builder.basis.uuid == pipeline.outputs.basis.uuid
    assert builder.operator.scf.pw.parameters.uuid == recorded.scf.pw.parameters.uuid
    assert builder.operator.scf.kpoints_distance.uuid == recorded.scf.kpoints_distance.uuid
    assert builder.train.train.config["training"]["max_steps"] == 20  # the pipeline's own training override

    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    assert results["dataset"].n_frames == pipeline.outputs.dataset.n_frames + 1
    picked = node.base.extras.get("history")[0]["picked"]
    scf = [c for c in node.called_descendants if c.process_label == "PwBaseWorkChain"]
    assert len(picked) == 1 and len(scf) == 1
    assert scf[0].inputs.pw.parameters.uuid == recorded.scf.pw.parameters.uuid
    assert scf[0].inputs.kpoints_distance.uuid == recorded.scf.kpoints_distance.uuid


def test_learn_refuses_what_is_not_a_finished_pipeline(pipeline):
    from click.testing import CliRunner

    from aiida_slem.cli.learn import learn, perturbed

    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    model = pipeline.outputs.model
    result = CliRunner().invoke(learn, [str(model.pk), "--run"])
    assert result.exit_code != 0 and f"node {model.pk} is not a SlemPipelineWorkChain" in result.output
    result = CliRunner().invoke(learn, [str(pipeline.pk), "--per-structure", "0", "--run"])
    assert result.exit_code != 0 and "no candidate structures" in result.output
    result = CliRunner().invoke(learn, [str(pipeline.pk), "--strain", "0.2", "--run"])
    assert result.exit_code != 0 and "a larger strain is another phase" in result.output
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before
    with pytest.raises(ValueError, match="rattle must be >= 0"):
        perturbed(pipeline.inputs.structures["si2"].get_ase(), 1, -0.1, 0.0, 0)


def _wait(condition, timeout: float, what: str, describe=None) -> None:
    import time

    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            detail = f"; {describe()}" if describe else ""
            raise TimeoutError(f"{what} did not happen within {timeout} s{detail}")
        time.sleep(1.0)


def _unfinished(node) -> str:
    """Where a stuck workflow stands: every process below it that has not terminated."""
    rows = [
        f"<{n.pk}> {n.process_label} {n.process_state.value if n.process_state else None} "
        f"{n.get_job_id() if hasattr(n, 'get_job_id') else ''} {n.process_status or ''}".strip()
        for n in [node, *node.called_descendants]
        if not n.is_terminated
    ]
    return "not terminated: " + ("; ".join(rows) or "none")


@pytest.mark.daemon
def test_daemon_stop_mid_pipeline_loses_and_duplicates_nothing(
    module_codes, started_daemon_client, daemon_accepts_tasks, restart_broker_with_daemon
):
    """Submit, stop the daemon once the dataset step runs, restart it: it finishes, each step ran once."""
    from aiida.common.links import LinkType
    from aiida.engine import ProcessState, submit
    from aiida_slem.workflows.pipeline import SlemPipelineWorkChain

    overrides = {**TINY, "train": {"config": {"model": {"n_layers": 1}, "training": {"max_steps": 10}}}}
    builder = SlemPipelineWorkChain.get_builder_from_protocol(
        module_codes, {"si2": si2()}, protocol="fast", overrides=overrides
    )
    node = submit(builder)

    def scf_jobs_submitted() -> bool:
        """The dataset step's first SCF jobs wait on the scheduler, and no pw.x job is still being launched:
        a worker stopped while it launched a CalcJob lost that launch (the job stayed 'Created' for ever, seen
        twice here before the broker was restarted with the daemon; see restart_broker_with_daemon)."""
        jobs = [n for n in node.called_descendants if n.process_label == "PwCalculation"]
        scf = [n for n in jobs if n.inputs.parameters["CONTROL"]["calculation"] == "scf"]
        return bool(scf) and all(n.process_state != ProcessState.CREATED for n in jobs)

    _wait(scf_jobs_submitted, 600, "the first SCF jobs")
    started_daemon_client.stop_daemon(wait=True, timeout=180)  # a busy worker finishes its step first
    _wait(lambda: not started_daemon_client.is_daemon_running, 60, "the daemon stop")
    before = {n.pk for n in node.called_descendants}
    assert not node.is_terminated
    restart_broker_with_daemon()
    started_daemon_client.start_daemon(timeout=180)
    try:
        _wait(lambda: node.is_terminated, 1200, "the end of the pipeline", lambda: _unfinished(node))
    finally:
        # stopped here with a long timeout: the session fixture's default one is too short on a busy machine
        started_daemon_client.stop_daemon(wait=True, timeout=180)

    assert node.is_finished_ok, node.exit_message
    descendants = node.called_descendants
    assert before <= {n.pk for n in descendants}  # nothing lost
    assert all(n.is_finished_ok for n in descendants), [
        (n.pk, n.process_label, n.exit_status) for n in descendants if not n.is_finished_ok
    ]
    steps = [n.process_label for n in node.called]
    assert sorted(steps) == [
        "DatasetWorkChain",
        "MdSamplingWorkChain",
        "SlemTrainWorkChain",
        "SlemValidationWorkChain",
    ]
    dataset_step = next(n for n in node.called if n.process_label == "DatasetWorkChain")
    operators = [n for n in dataset_step.called if n.process_label == "OperatorWorkChain"]
    assert len(operators) == 4
    labels = [n.base.links.get_incoming(link_type=LinkType.CALL_WORK).one().link_label for n in operators]
    assert len(set(labels)) == 4
    scf = [
        n
        for n in descendants
        if n.process_label == "PwCalculation" and n.inputs.parameters["CONTROL"]["calculation"] == "scf"
    ]
    assert len(scf) == 4  # one SCF per frame: none was resubmitted after the restart
