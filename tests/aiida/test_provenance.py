"""From a trained model back to its DFT: a real (fast-protocol) Si8 dataset from pw.x, pp.x and slem project,
a tiny training job, then the provenance helpers and the ``aiida-slem models`` / ``provenance`` commands."""

from __future__ import annotations

import shutil
import traceback

import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import WorkflowFactory
from aiida_slem.calcjobs.train import SlemTrainCalculation
from aiida_test_helpers import si8_structure, tiny_config
from click.testing import CliRunner

from aiida_slem.cli.models import models
from aiida_slem.cli.provenance import provenance
from aiida_slem.provenance import codes as upstream_codes
from aiida_slem.provenance import (
    dataset_frames,
    pseudopotentials,
    pw_calculations,
    training_calculation,
    training_dataset,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def trained_model(codes, pseudo_family):
    dataset_workchain = WorkflowFactory("slem.dataset")
    snapshots = {"train": {"s0": si8_structure(0.05, 0), "s1": si8_structure(0.05, 1)}, "held_out": {}}
    builder = dataset_workchain.get_builder_from_protocol(
        codes["pw"], codes["pp"], codes["slem"], snapshots, protocol="fast"
    )
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    outputs, train = run_get_node(
        SlemTrainCalculation,
        code=codes["slem"],
        dataset=results["dataset"],
        config=orm.Dict(tiny_config(max_steps=4, validate_every=2)),
        metadata={"options": {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1}}},
    )
    assert train.is_finished_ok, (train.exit_status, train.exit_message)
    return outputs["model"], results["dataset"], train


def test_model_provenance(trained_model, si_upf):
    model, dataset, train = trained_model
    assert training_calculation(model).pk == train.pk
    assert training_dataset(model).pk == dataset.pk

    frames = dataset_frames(dataset)
    assert [origin.label for origin in frames] == ["s0", "s1"]
    for origin in frames:
        scf = origin.by_kind("scf")
        assert len(scf) == 1, origin.pw_calculations
        assert scf[0].inputs.structure.get_ase().get_chemical_formula() == "Si8"
        # the frame's file was projected from that very SCF
        assert origin.operator.creator.inputs.parent_folder.creator.pk == scf[0].pk
    assert {calc.pk for calc in pw_calculations(model)} == {o.by_kind("scf")[0].pk for o in frames}

    pseudos = pseudopotentials(model)
    assert [p.element for p in pseudos] == ["Si"] and pseudos[0].md5 == si_upf.md5
    upstream = upstream_codes(model)
    assert all(isinstance(code, orm.AbstractCode) for code in upstream), upstream
    assert sorted(code.label for code in upstream) == ["pp", "pw", "slem"]

    runner = CliRunner()
    listing = runner.invoke(models, [])
    assert listing.exit_code == 0, listing.output
    row = next(line for line in listing.output.splitlines() if line.split()[:1] == [str(model.pk)])
    assert "Si8" in row and "Si:2s2p1d" in row and str(model.n_params) in row

    report = runner.invoke(provenance, [str(model.pk)])
    assert report.exit_code == 0, "".join(traceback.format_exception(*report.exc_info))
    for origin in frames:
        assert f"{origin.label}" in report.output and str(origin.by_kind("scf")[0].pk) in report.output
    assert (
        si_upf.md5 in report.output and "pw@localhost" in report.output and "InstalledCode" in report.output
    )

    drawn = runner.invoke(provenance, [str(model.pk), "--graph", "graph.png"])
    if shutil.which("dot") is None:
        assert drawn.exit_code == 1 and "'dot' executable is not installed" in drawn.output
    else:
        assert drawn.exit_code == 0, drawn.output


def test_provenance_of_an_unknown_node_says_what_to_do(aiida_profile):
    node = orm.Int(3).store()
    result = CliRunner().invoke(provenance, [str(node.pk)])
    assert result.exit_code != 0 and "aiida-slem models" in result.output
