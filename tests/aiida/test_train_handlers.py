"""Every ``SlemTrainWorkChain`` process handler, called directly on a failed child (no job runs): the
``ProcessHandlerReport`` it returns and the inputs it leaves in ``ctx.inputs`` for the next run.

The real failures (a walltime SIGTERM, ``ulimit -v``, an absurd learning rate) are provoked in the slow
``test_train_restarts.py``; these run in the fast subset."""

from __future__ import annotations

import pytest
from aiida.engine import ProcessHandlerReport
from aiida_slem.calcjobs.train import SlemTrainCalculation, check_config
from aiida_slem.workflows.train import SlemTrainWorkChain

EXIT = SlemTrainCalculation.exit_codes
UNRECOVERABLE = SlemTrainWorkChain.exit_codes.ERROR_UNRECOVERABLE_FAILURE.status


@pytest.fixture
def failed(generate_failed_calculation):
    def factory(exit_code, step: int | None = None):
        return generate_failed_calculation("slem.train", exit_code, step)

    return factory


def add_child(process, calculation) -> None:
    """What ``run_process`` does: ``to_context(children=append_(node))`` and one more iteration."""
    process.ctx.setdefault("children", []).append(calculation)
    process.ctx.iteration += 1


def handle(process, handler: str, calculation) -> ProcessHandlerReport:
    """Put ``calculation`` where BaseRestartWorkChain keeps its children and call ``handler`` on it."""
    add_child(process, calculation)
    return getattr(process, handler)(calculation)


def training(process) -> dict:
    """The ``training`` section of the config the next run gets; it must pass submission's checks."""
    config = process.ctx.inputs.config.get_dict()
    assert config == process.ctx.config
    assert check_config(config, validation=False) is None
    return config["training"]


def assert_restart(report) -> None:
    assert isinstance(report, ProcessHandlerReport)
    assert report.do_break and report.exit_code.status == 0


def assert_gives_up(report, *words: str) -> None:
    assert isinstance(report, ProcessHandlerReport) and report.do_break
    assert report.exit_code.status == UNRECOVERABLE
    assert all(word in report.exit_code.message for word in words), report.exit_code.message


@pytest.mark.parametrize("exit_code", ["ERROR_CONFIG", "ERROR_INVALID_MODEL"])
def test_unrecoverable_errors_abort(generate_train_workchain, failed, exit_code):
    process = generate_train_workchain()
    calculation = failed(EXIT[exit_code])
    report = handle(process, "handle_unrecoverable", calculation)
    assert_gives_up(report, calculation.exit_message)
    assert "parent_folder" not in process.ctx.inputs


def test_walltime_resumes_from_the_new_checkpoint(generate_train_workchain, failed):
    process = generate_train_workchain(options={"max_wallclock_seconds": 600})
    calculation = failed(EXIT.ERROR_OUT_OF_WALLTIME, step=173)
    assert_restart(handle(process, "handle_out_of_walltime", calculation))
    assert process.ctx.inputs.parent_folder.uuid == calculation.outputs.remote_folder.uuid
    assert process.ctx.checkpoint_step == 173
    assert process.ctx.inputs.metadata.options["max_wallclock_seconds"] == 600  # unchanged
    assert training(process) == {"max_steps": 10}


def test_walltime_without_a_new_checkpoint_grows_the_walltime(generate_train_workchain, failed):
    """Stopped during start-up (no step beyond the last checkpoint): resuming would stop again."""
    process = generate_train_workchain(options={"max_wallclock_seconds": 600})
    process.ctx.checkpoint_step = 173
    assert_restart(handle(process, "handle_out_of_walltime", failed(EXIT.ERROR_OUT_OF_WALLTIME, step=173)))
    assert process.ctx.inputs.metadata.options["max_wallclock_seconds"] == 1200
    assert "parent_folder" not in process.ctx.inputs
    assert_restart(handle(process, "handle_out_of_walltime", failed(EXIT.ERROR_OUT_OF_WALLTIME)))
    assert process.ctx.inputs.metadata.options["max_wallclock_seconds"] == 2400


def test_walltime_without_checkpoint_or_walltime_option_restarts_unchanged(generate_train_workchain, failed):
    process = generate_train_workchain()
    before = process.ctx.inputs.config.get_dict()
    assert_restart(handle(process, "handle_out_of_walltime", failed(EXIT.ERROR_OUT_OF_WALLTIME)))
    assert "max_wallclock_seconds" not in process.ctx.inputs.metadata.options
    assert process.ctx.inputs.config.get_dict() == before


def test_out_of_memory_halves_the_batch_and_starts_over(generate_train_workchain, failed):
    """A new batch size is a new data order: the checkpoint of the failed run must not be resumed."""
    process = generate_train_workchain(training={"batch_size": 4})
    process.ctx.inputs.parent_folder = failed(EXIT.ERROR_OUT_OF_WALLTIME, step=50).outputs.remote_folder
    process.ctx.checkpoint_step = 50
    assert_restart(handle(process, "handle_out_of_memory", failed(EXIT.ERROR_OUT_OF_MEMORY, step=60)))
    assert training(process) == {"max_steps": 10, "batch_size": 2}
    assert "parent_folder" not in process.ctx.inputs and process.ctx.checkpoint_step == 0


def test_out_of_memory_first_drops_batch_atoms_and_starts_over(generate_train_workchain, failed):
    """batch_atoms grows small frames' batches beyond batch_size; halving batch_size would not shrink them."""
    process = generate_train_workchain(training={"batch_size": 2, "batch_atoms": 8})
    process.ctx.inputs.parent_folder = failed(EXIT.ERROR_OUT_OF_WALLTIME, step=50).outputs.remote_folder
    process.ctx.checkpoint_step = 50
    assert_restart(handle(process, "handle_out_of_memory", failed(EXIT.ERROR_OUT_OF_MEMORY, step=60)))
    assert training(process) == {"max_steps": 10, "batch_size": 2, "batch_atoms": None}
    assert "parent_folder" not in process.ctx.inputs and process.ctx.checkpoint_step == 0


def test_out_of_memory_at_batch_one_slices_the_edges_and_resumes(generate_train_workchain, failed):
    """``edge_chunk``: the training step then recomputes sliced per-edge work (tests/slem/
    test_train_edge_chunk.py); the data order is unchanged, so a checkpoint is resumed."""
    process = generate_train_workchain()
    calculation = failed(EXIT.ERROR_OUT_OF_MEMORY, step=40)
    assert_restart(handle(process, "handle_out_of_memory", calculation))
    assert training(process) == {"max_steps": 10, "edge_chunk": SlemTrainWorkChain.defaults.first_edge_chunk}
    assert process.ctx.inputs.parent_folder.uuid == calculation.outputs.remote_folder.uuid


def test_out_of_memory_halves_the_edge_chunk_down_to_the_minimum(generate_train_workchain, failed):
    smallest = SlemTrainWorkChain.defaults.min_edge_chunk
    process = generate_train_workchain(training={"batch_size": 1, "edge_chunk": 4 * smallest})
    assert_restart(handle(process, "handle_out_of_memory", failed(EXIT.ERROR_OUT_OF_MEMORY)))
    assert training(process)["edge_chunk"] == 2 * smallest
    assert "parent_folder" not in process.ctx.inputs  # nothing written yet: nothing to resume
    assert_restart(handle(process, "handle_out_of_memory", failed(EXIT.ERROR_OUT_OF_MEMORY)))
    assert training(process)["edge_chunk"] == smallest
    report = handle(process, "handle_out_of_memory", failed(EXIT.ERROR_OUT_OF_MEMORY))
    assert_gives_up(report, "batch_size 1", "edge_chunk")
    assert training(process)["edge_chunk"] == smallest


def test_nan_loss_lowers_the_learning_rate_from_scratch(generate_train_workchain, failed):
    from slem.train.config import TrainingSection

    process = generate_train_workchain()
    process.ctx.inputs.parent_folder = failed(EXIT.ERROR_OUT_OF_WALLTIME, step=50).outputs.remote_folder
    process.ctx.checkpoint_step = 50
    assert_restart(handle(process, "handle_nan_loss", failed(EXIT.ERROR_NAN_LOSS, step=60)))
    lowered = TrainingSection().lr * SlemTrainWorkChain.defaults.lr_factor
    assert training(process)["lr"] == pytest.approx(lowered)
    assert "parent_folder" not in process.ctx.inputs and process.ctx.checkpoint_step == 0


def test_nan_loss_gives_up_after_the_last_reduction(generate_train_workchain, failed):
    process = generate_train_workchain(training={"lr": 1.0})
    for reduction in range(SlemTrainWorkChain.defaults.max_lr_reductions):
        assert_restart(handle(process, "handle_nan_loss", failed(EXIT.ERROR_NAN_LOSS)))
        assert training(process)["lr"] == pytest.approx(0.1 ** (reduction + 1))
    assert_gives_up(handle(process, "handle_nan_loss", failed(EXIT.ERROR_NAN_LOSS)), "learning rate")


def test_handlers_ignore_other_exit_codes(generate_train_workchain, failed):
    """Each handler acts only on its own exit codes (the decorator's filter) and leaves the inputs alone."""
    process = generate_train_workchain(training={"batch_size": 2}, options={"max_wallclock_seconds": 600})
    before = process.ctx.inputs.config.get_dict()
    for handler, exit_code in (
        ("handle_unrecoverable", EXIT.ERROR_NAN_LOSS),
        ("handle_out_of_walltime", EXIT.ERROR_OUT_OF_MEMORY),
        ("handle_out_of_memory", EXIT.ERROR_NAN_LOSS),
        ("handle_nan_loss", EXIT.ERROR_CONFIG),
    ):
        assert handle(process, handler, failed(exit_code, step=5)) is None
    assert process.ctx.inputs.config.get_dict() == before
    assert process.ctx.inputs.metadata.options["max_wallclock_seconds"] == 600
    assert "parent_folder" not in process.ctx.inputs


def test_inspect_process_dispatches_to_the_handler(generate_train_workchain, failed):
    """Through BaseRestartWorkChain's own dispatch: the failed child is ``ctx.children[-1]``."""
    process = generate_train_workchain(training={"batch_size": 2})
    add_child(process, failed(EXIT.ERROR_OUT_OF_MEMORY))
    assert process.inspect_process().status == 0  # handled: the loop runs again
    assert training(process)["batch_size"] == 1
    add_child(process, failed(EXIT.ERROR_CONFIG))
    assert process.inspect_process().status == UNRECOVERABLE


def test_every_handler_has_a_test():
    """A new handler needs its tests here."""
    tested = {"handle_unrecoverable", "handle_out_of_walltime", "handle_out_of_memory", "handle_nan_loss"}
    assert {handler.__name__ for handler in SlemTrainWorkChain.get_process_handlers()} == tested
