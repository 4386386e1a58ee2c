"""``slem.predict``: several structures give a DatasetData in label order; bad input is refused early."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida_slem.calcjobs.predict import SlemPredictCalculation
from aiida_test_helpers import dataset_node, truncate_basis
from ase import Atoms
from ase.build import bulk

from slem.predict import predict_frames

METADATA = {"options": {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1}}}


def refused(**inputs) -> str:
    with pytest.raises(ValueError) as info:
        run_get_node(SlemPredictCalculation, metadata=METADATA, **inputs)
    return str(info.value)


def test_unknown_element_is_refused(slem_code, si_model):
    sic = orm.StructureData(ase=bulk("SiC", "zincblende", a=4.36))
    assert "element(s) ['C']" in refused(code=slem_code, model=si_model, structure=sic)


def test_dataset_in_another_basis_is_refused(slem_code, si_model, si64_frames, tmp_path):
    dataset = dataset_node(tmp_path / "s.h5", [truncate_basis(si64_frames[0], "1s", 1)], {"train": [0]})
    assert "basis differs" in refused(code=slem_code, model=si_model, dataset=dataset)


def test_structure_sources_are_exclusive_and_one_gpu_at_most(slem_code, si_model):
    si2 = orm.StructureData(ase=bulk("Si", "diamond", a=5.43))
    assert "exactly one of" in refused(code=slem_code, model=si_model, structure=si2, structures={"a": si2})
    assert "one device" in refused(code=slem_code, model=si_model, structure=si2, gpus=orm.Int(2))


@pytest.mark.slow
def test_many_structures_give_a_dataset_in_label_order(slem_code, si_model, tmp_path):
    primitive = bulk("Si", "diamond", a=5.43)
    rattled = bulk("Si", "diamond", a=5.43, cubic=True)
    rattled.rattle(0.05, seed=1)
    structures = {"b_cubic": orm.StructureData(ase=rattled), "a_primitive": orm.StructureData(ase=primitive)}
    results, node = run_get_node(
        SlemPredictCalculation, code=slem_code, model=si_model, structures=structures, metadata=METADATA
    )
    assert node.is_finished_ok, node.exit_message
    predictions = results["predictions"]
    assert predictions.base.attributes.get("structure_labels") == ["a_primitive", "b_cubic"]
    assert predictions.base.attributes.get("n_atoms") == [2, 8]
    frames = predictions.get_frames()
    with si_model.local_path() as path:
        expected = predict_frames(path, [Atoms(primitive), Atoms(rattled)])
    for mine, theirs in zip(frames, expected, strict=True):
        assert mine.pair_lookup().keys() == theirs.pair_lookup().keys()
        ours, ref = mine.blocks("H"), theirs.blocks("H")
        assert max(float(np.abs(ours[k] - ref[k]).max()) for k in ref) < 1e-4
