"""The file-backed nodes: validation on construction, queryable attributes, provenance of the merge."""

from __future__ import annotations

import zipfile

import h5py
import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida_test_helpers import write_test_basis, write_test_frame

from aiida_slem.data import BasisData, DatasetData, OperatorData, SlemModelData, merge_operator_frames
from slem.basis.orbital import BasisFileError
from slem.data.frame import FrameFormatError


def test_basis_data_attributes_are_queryable(tmp_path):
    node = BasisData(write_test_basis(tmp_path / "basis.h5", upf_md5="a" * 32, shells="2s1p")).store()
    assert node.elements == ["Si"]
    assert node.shells == {"Si": "2s1p"}
    assert node.radii == {"Si": pytest.approx(4.0)}
    assert node.base.attributes.get("n_orbitals") == {"Si": 5}
    found = orm.QueryBuilder().append(BasisData, filters={"attributes.upf_md5.Si": "a" * 32}).all(flat=True)
    assert [n.pk for n in found] == [node.pk]
    assert [o.l for o in node.get_basis()["Si"].orbitals] == [0, 0, 1]


def test_basis_data_rejects_corrupt_files(tmp_path):
    good = write_test_basis(tmp_path / "basis.h5")
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(BasisFileError, match="regenerate"):
        BasisData(truncated)
    with pytest.raises(BasisFileError, match="md5"):
        BasisData(write_test_basis(tmp_path / "nomd5.h5", upf_md5=""))


def test_basis_must_match_the_pseudopotential(tmp_path, si_upf):
    node = BasisData(write_test_basis(tmp_path / "basis.h5", upf_md5=si_upf.md5))
    node.check_pseudos({"Si": si_upf})
    other = BasisData(write_test_basis(tmp_path / "other.h5", upf_md5="b" * 32))
    with pytest.raises(ValueError, match="built from the UPF actually used"):
        other.check_pseudos({"Si": si_upf})


def test_operator_data_summarises_the_frame(tmp_path):
    path = write_test_frame(tmp_path / "frame.h5", n_atoms=3, metadata={"basis_label": "SZ"})
    node = OperatorData(path, summary={"n_electrons": 12.0, "tr_DS": 11.9999, "ignored": 1}).store()
    attrs = node.base.attributes.all
    assert (attrs["n_atoms"], attrs["formula"], attrs["operators"]) == (3, "Si3", ["H", "S", "D"])
    assert attrs["basis"] == {"Si": "1s1p"} and attrs["basis_label"] == "SZ"
    assert attrs["tr_DS"] == pytest.approx(11.9999) and "ignored" not in attrs
    frame = node.get_frame()
    assert frame.n_atoms == 3 and frame.operators["H"].shape == (10 * 16,)


def test_operator_data_rejects_bad_files(tmp_path):
    good = write_test_frame(tmp_path / "frame.h5")
    broken = tmp_path / "broken.h5"
    broken.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 3])
    with pytest.raises(FrameFormatError, match="corrupt|damaged"):
        OperatorData(broken)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as handle:
        handle["x"] = np.zeros(3)
    with pytest.raises(FrameFormatError, match="not a slem-frames file"):
        OperatorData(foreign)
    wrong_shape = tmp_path / "wrong.h5"
    wrong_shape.write_bytes(good.read_bytes())
    with h5py.File(wrong_shape, "a") as handle:
        del handle["frames/0/H"]
        handle["frames/0/H"] = np.zeros(7)
    with pytest.raises(FrameFormatError, match="operator H has shape"):
        OperatorData(wrong_shape)


def _frames(tmp_path, count):
    return {
        f"frame_{i}": OperatorData(write_test_frame(tmp_path / f"f{i}.h5", seed=i)).store()
        for i in range(count)
    }


def test_merge_links_every_frame_and_records_the_split(tmp_path):
    frames = _frames(tmp_path, 4)
    split = orm.Dict({"train": ["frame_0", "frame_2"], "validation": ["frame_1"], "test": ["frame_3"]})
    dataset = merge_operator_frames(split=split, **frames)
    assert isinstance(dataset, DatasetData) and dataset.is_stored
    assert dataset.n_frames == 4
    assert dataset.split == {"train": [0, 2], "validation": [1], "test": [3]}
    assert dataset.base.attributes.get("n_frames_per_split") == {"train": 2, "validation": 1, "test": 1}
    assert dataset.base.attributes.get("formulas") == ["Si2"]
    creator = dataset.creator
    sources = {
        link.link_label: link.node.uuid
        for link in creator.base.links.get_incoming(link_type=LinkType.INPUT_CALC)
    }
    assert {sources[label] for label in frames} == {node.uuid for node in frames.values()}
    test_frames = dataset.get_frames("test")
    assert test_frames[0].metadata["source_uuid"] == frames["frame_3"].uuid
    np.testing.assert_array_equal(test_frames[0].operators["S"], frames["frame_3"].get_frame().operators["S"])


@pytest.mark.parametrize(
    ("split", "message"),
    [
        ({"train": ["frame_0"], "test": ["frame_1"]}, "in no split"),
        ({"train": ["frame_0", "frame_1", "frame_2"], "test": ["frame_0"]}, "in both"),
        ({"train": ["frame_0", "frame_1", "frame_2", "frame_9"]}, "not among the inputs"),
        ({"training": ["frame_0", "frame_1", "frame_2"]}, "unknown split"),
    ],
)
def test_bad_split_creates_no_dataset(tmp_path, split, message):
    frames = _frames(tmp_path, 3)
    before = orm.QueryBuilder().append(DatasetData).count()
    with pytest.raises(ValueError, match=message):
        merge_operator_frames(split=orm.Dict(split), **frames)
    assert orm.QueryBuilder().append(DatasetData).count() == before


def test_dataset_rejects_a_corrupt_file(tmp_path):
    path = tmp_path / "dataset.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(FrameFormatError, match="not a readable HDF5 file"):
        DatasetData(path)


def test_model_data_needs_a_complete_archive_and_config(tmp_path):
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/data.pkl", b"weights")
    config = {"species": ["Si"], "basis": {"Si": "2s2p1d"}, "r_cut": 7.4, "n_params": 1234}
    node = SlemModelData(path, config=config, metrics={"H_mae_meV": 3.2}).store()
    assert node.species == ["Si"] and node.n_params == 1234 and node.metrics == {"H_mae_meV": 3.2}
    assert len(node.sha256) == 64
    with pytest.raises(ValueError, match="needs config"):
        SlemModelData(path)
    with pytest.raises(ValueError, match="lacks"):
        SlemModelData(path, config={"species": ["Si"]})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ValueError, match="not a torch archive"):
        SlemModelData(truncated, config=config)


def _one_atom_frame(element: str, shells: str):
    from slem.data.frame import frame_from_blocks

    n = {"1s": 1, "1s1p": 4}[shells]
    blocks = {op: {(0, 0, 0, 0, 0): np.eye(n)} for op in ("H", "S", "D")}
    cell = np.eye(3) * 4.0
    return frame_from_blocks([element], np.zeros((1, 3)), cell, [True] * 3, {element: shells}, blocks)


def test_dataset_of_several_compositions_has_the_union_basis_and_refuses_two_bases_per_element(tmp_path):
    from slem.data.frame import write_frames

    path = write_frames(tmp_path / "mixed.h5", [_one_atom_frame("Si", "1s1p"), _one_atom_frame("C", "1s1p")])
    dataset = DatasetData(path)
    assert dataset.base.attributes.get("basis") == {"C": "1s1p", "Si": "1s1p"}
    assert dataset.base.attributes.get("train_statistics") == {
        "atoms_per_element": {"C": 1, "Si": 1},
        "blocks_per_element_pair": {"C-C": 1, "Si-Si": 1},
    }
    clash = write_frames(tmp_path / "clash.h5", [_one_atom_frame("Si", "1s1p"), _one_atom_frame("Si", "1s")])
    with pytest.raises(FrameFormatError, match="element Si has 1s in frame 1 but 1s1p"):
        DatasetData(clash)
