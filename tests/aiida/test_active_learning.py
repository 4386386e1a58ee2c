"""``ActiveLearningWorkChain`` for real (Si2, pw.x, two members of the fast model for 20 steps): one round
picks the most uncertain candidate, runs its SCF and projection, extends the dataset and fine-tunes the
committee; the refusals before anything runs."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida_slem.workflows.active_learning import ActiveLearningWorkChain
from aiida_slem.workflows.dataset import DatasetWorkChain
from aiida_test_helpers import TINY_PIPELINE
from ase.build import bulk

pytestmark = pytest.mark.slow

# ranked by the bands around E_F: unlabelled candidates, so the electron count is Tr(DS) of the members' D
LOOP = {"n_models": 2, "select": 1, "max_rounds": 1, "rank_by": "fermi_band_sigma_meV"}


def si2(rattle: float, seed: int) -> orm.StructureData:
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.rattle(rattle, seed=seed)
    return orm.StructureData(ase=atoms)


@pytest.fixture(scope="module")
def start(module_codes):
    """A DFT dataset of two Si2 frames and its basis (DatasetWorkChain, fast protocol)."""
    snapshots = {"train": {"s0": si2(0.03, 0), "s1": si2(0.03, 1)}}
    builder = DatasetWorkChain.get_builder_from_protocol(
        module_codes["pw"], module_codes["pp"], module_codes["slem"], snapshots, protocol="fast"
    )
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    return results["dataset"], results["basis"]


def candidates() -> dict:
    return {"c_small": si2(0.01, 2), "c_medium": si2(0.06, 3), "c_large": si2(0.15, 4)}


@pytest.fixture(scope="module")
def loop(module_codes, start):
    dataset, basis = start
    builder = ActiveLearningWorkChain.get_builder_from_protocol(
        module_codes,
        dataset,
        basis,
        candidates(),
        protocol="fast",
        overrides={"train": TINY_PIPELINE["train"], **LOOP},
    )
    return run_get_node(builder)


def test_one_round_picks_computes_extends_and_fine_tunes(loop, start):
    results, node = loop
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    first, last = results["rounds"]["round_0"].get_dict(), results["rounds"]["round_1"].get_dict()
    assert len(first["frames"]) == 3 and first["frames_with_reference"] == 0  # unlabelled: spread only
    picked = first["most_uncertain"]
    assert len(picked) == 1
    fermi = {row["label"]: row["fermi_band_sigma_meV"] for row in first["frames"]}
    assert first["ranked_by"] == "fermi_band_sigma_meV" and picked == [max(fermi, key=fermi.get)]
    assert sorted(row["label"] for row in last["frames"]) == sorted(set(candidates()) - set(picked))
    history = node.base.extras.get("history")
    assert [entry["picked"] for entry in history] == [picked, []]
    assert {entry["ranked_by"] for entry in history} == {"fermi_band_sigma_meV"}
    # the dataset grew by exactly the picked frame, in the train split, through extend_dataset
    dataset, old = results["dataset"], start[0]
    assert dataset.n_frames == old.n_frames + 1
    assert dataset.split["train"] == old.split["train"] + [old.n_frames]
    assert dataset.get_frames()[-1].metadata["label"] == picked[0]
    extend = dataset.creator
    assert extend.process_label == "extend_dataset"
    assert extend.inputs.dataset.uuid == old.uuid
    # round 1's members fine-tune round 0's members of the same seed
    trainings = sorted(
        (c for c in node.called if c.process_label == "SlemTrainWorkChain"), key=lambda c: c.ctime
    )
    assert len(trainings) == 4
    round0 = {c.inputs.train.config["training"]["seed"]: c.outputs.model.uuid for c in trainings[:2]}
    for child in trainings[2:]:
        seed = child.inputs.train.config["training"]["seed"]
        assert child.inputs.train.parent_model.uuid == round0[seed]
        assert child.inputs.train.dataset.uuid == dataset.uuid
    assert sorted(results["models"]) == ["member_0", "member_1"]


def test_refusals_before_anything_runs(module_codes, start):
    dataset, basis = start
    before = (
        orm.QueryBuilder()
        .append(orm.WorkChainNode, filters={"attributes.process_label": "ActiveLearningWorkChain"})
        .count()
    )

    def refused(overrides, structures=None):
        with pytest.raises(ValueError) as info:
            builder = ActiveLearningWorkChain.get_builder_from_protocol(
                module_codes, dataset, basis, structures or candidates(), protocol="fast", overrides=overrides
            )
            run_get_node(builder)
        return str(info.value)

    assert "n_models must be at least 2" in refused({"n_models": 1})
    assert "init_model" in refused({"train": {"config": {"training": {"init_model": "x.pt"}}}})
    carbon = orm.StructureData(ase=bulk("C", "diamond", a=3.567))
    assert "that the dataset lacks" in refused({}, {"c": carbon})
    with pytest.raises(ValueError, match="unknown override 'n_model'"):
        ActiveLearningWorkChain.get_builder_from_protocol(
            module_codes, dataset, basis, candidates(), protocol="fast", overrides={"n_model": 2}
        )
    after = (
        orm.QueryBuilder()
        .append(orm.WorkChainNode, filters={"attributes.process_label": "ActiveLearningWorkChain"})
        .count()
    )
    assert after == before
