"""``SlemCommitteeWorkChain`` for real: two members trained as parallel jobs with different seeds, then the
``slem.committee`` job on candidate frames; and the refusals before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida_slem.calcjobs.committee import SlemCommitteeCalculation
from aiida_slem.workflows.committee import SlemCommitteeWorkChain
from aiida_test_helpers import tiny_config

from aiida_slem.data.dataset import DatasetData

SI8 = Path(__file__).parents[1] / "data" / "si8_frames.h5"
RESOURCES = {"num_machines": 1, "num_mpiprocs_per_machine": 1}


def builder_for(code, dataset, candidates, n_models=2, rank_by="sigma_H_meV"):
    builder = SlemCommitteeWorkChain.get_builder()
    builder.n_models = orm.Int(n_models)
    builder.candidates = candidates
    builder.train.max_iterations = orm.Int(1)
    builder.train.train.code = code
    builder.train.train.dataset = dataset
    builder.train.train.config = orm.Dict(tiny_config(max_steps=5))  # its seed 1 is replaced
    builder.train.train.metadata.options.resources = RESOURCES
    builder.committee.code = code
    builder.committee.select = orm.Int(3)
    builder.committee.rank_by = orm.Str(rank_by)
    builder.committee.metadata.options.resources = RESOURCES
    return builder


def committees() -> int:
    return orm.QueryBuilder().append(
        orm.WorkChainNode, filters={"process_type": {"like": "%SlemCommitteeWorkChain%"}}
    ).count()


@pytest.mark.slow
def test_committee_trains_members_and_ranks_candidates(slem_code, si64_dataset):
    candidates = DatasetData(SI8).store()
    results, node = run_get_node(builder_for(slem_code, si64_dataset, candidates,
                                             rank_by="fermi_band_sigma_meV"))
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    members = results["models"]
    assert sorted(members) == ["member_0", "member_1"]
    assert members["member_0"].sha256 != members["member_1"].sha256  # the seeds differ, so the weights do
    seeds = sorted(
        call.inputs.train.config.get_dict()["training"]["seed"]
        for call in node.called if call.process_label == "SlemTrainWorkChain"
    )
    assert seeds == [0, 1]
    report = results["report"].get_dict()
    assert report["committee_size"] == 2 and len(report["frames"]) == 8
    assert report["frames_with_reference"] == 8
    assert all(row["sigma_H_meV"] > 0 for row in report["frames"])
    assert report["spearman_sigma_H_vs_error"] is not None
    # the selection follows the spread of the bands around E_F (the frames' n_electrons), not the H spread
    fermi = {row["label"]: row["fermi_band_sigma_meV"] for row in report["frames"]}
    assert report["ranked_by"] == "fermi_band_sigma_meV"
    assert report["most_uncertain"] == sorted(fermi, key=lambda label: -fermi[label])[:3]
    # provenance: the report comes from the committee job, whose inputs are both members' models
    job = results["report"].creator
    assert job.process_label == "SlemCommitteeCalculation"
    assert {link.node.uuid for link in job.base.links.get_incoming(link_label_filter="models__%").all()} == {
        m.uuid for m in members.values()
    }


def test_refusals_before_anything_runs(slem_code, si64_dataset, si_model):
    candidates = DatasetData(SI8).store()
    before = committees()
    with pytest.raises(ValueError, match="n_models must be at least 2"):
        run_get_node(builder_for(slem_code, si64_dataset, candidates, n_models=1))
    with pytest.raises(ValueError, match="rank_by 'sigma_D' is not one of sigma_H_meV"):
        run_get_node(builder_for(slem_code, si64_dataset, candidates, rank_by="sigma_D"))
    assert committees() == before
    other = si_model.clone()
    other.base.attributes.set("basis", {"Si": "2s2p1d"})
    other.store()
    builder = SlemCommitteeCalculation.get_builder()
    builder.code = slem_code
    builder.models = {"a": si_model, "b": other}
    builder.candidates = candidates
    builder.metadata.options.resources = RESOURCES
    with pytest.raises(ValueError, match="other species or basis"):
        run_get_node(builder)
