"""The frames HDF5 format: round trips, split, bad input."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest
from test_data_synthetic import BASIS, assert_frames_equal, random_frame

from slem.data.frame import FrameFormatError, frame_from_blocks, read_file_info, read_frames, write_frames
from slem.data.orbitals import BasisStringError, n_orbitals, parse_basis_spec, parse_shells


def test_write_read_round_trip_with_split_and_attrs(tmp_path):
    frames = [random_frame(s, n_atoms=3) for s in range(3)]
    path = write_frames(tmp_path / "f.h5", frames, split={"train": [0, 2], "test": [1]}, attrs={"code": "qe"})
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    info = read_file_info(path)
    assert info == {"n_frames": 3, "split": {"train": [0, 2], "test": [1]}, "attrs": {"code": "qe"}}
    back = read_frames(path)
    for a, b in zip(frames, back, strict=True):
        assert_frames_equal(a, b)
        assert b.metadata == a.metadata
    assert_frames_equal(read_frames(path, [2])[0], frames[2])


def test_file_layout_matches_documentation(tmp_path):
    frame = random_frame(1, n_atoms=2)
    path = write_frames(tmp_path / "f.h5", [frame])
    with h5py.File(path) as handle:
        assert handle.attrs["format"] == "slem-frames" and handle.attrs["version"] == 1
        group = handle["frames/0"]
        assert set(group) == {"numbers", "positions", "cell", "pbc", "pairs", "cell_shifts", "H", "S", "D"}
        assert json.loads(group.attrs["basis"]) == BASIS
        # packed blocks: pair p occupies offsets[p]:offsets[p+1], row-major (norb_i, norb_j)
        p = 3
        i, j = group["pairs"][p]
        start, stop = frame.block_offsets[p], frame.block_offsets[p + 1]
        block = group["H"][start:stop].reshape(frame.orbitals_per_atom[i], frame.orbitals_per_atom[j])
        np.testing.assert_array_equal(block, frame.block("H", p))


def test_corrupt_file_gives_frame_format_error(tmp_path):
    good = write_frames(tmp_path / "good.h5", [random_frame(0, n_atoms=2)])
    data = good.read_bytes()
    bad = tmp_path / "truncated.h5"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(FrameFormatError, match="corrupt"):
        read_frames(bad)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an hdf5 file at all" * 10)
    with pytest.raises(FrameFormatError, match="not a readable HDF5"):
        read_file_info(garbage)


def test_foreign_hdf5_and_missing_file(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle["x"] = 1
    with pytest.raises(FrameFormatError, match="not a slem-frames file"):
        read_frames(tmp_path / "other.h5")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_frames(tmp_path / "missing.h5")


def test_failed_write_leaves_existing_file(tmp_path):
    path = write_frames(tmp_path / "f.h5", [random_frame(0, n_atoms=2)])
    before = path.read_bytes()
    with pytest.raises(FrameFormatError, match="split"):
        write_frames(path, [random_frame(1, n_atoms=2)], split={"train": [5]})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["f.h5"]


def test_frames_stream_from_a_generator(tmp_path):
    """A generator is written one frame at a time; a split that does not fit, found only after the
    last frame, or an error inside the generator leave the existing file as it was."""
    frames = [random_frame(s, n_atoms=2) for s in range(3)]
    consumed = []

    def one_by_one(items):
        for index, frame in enumerate(items):
            consumed.append(index)
            yield frame

    path = write_frames(tmp_path / "f.h5", one_by_one(frames), split={"train": [0, 1], "test": [2]})
    assert consumed == [0, 1, 2] and read_file_info(path)["n_frames"] == 3
    for a, b in zip(read_frames(path), frames, strict=True):
        assert_frames_equal(a, b)
    before = path.read_bytes()
    with pytest.raises(FrameFormatError, match="names frame 3, but there are 3 frames"):
        write_frames(path, one_by_one(frames), split={"train": [3]})

    def broken():
        yield frames[0]
        raise OSError("source frame unreadable")

    with pytest.raises(OSError, match="unreadable"):
        write_frames(path, broken())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["f.h5"]


def test_frame_from_blocks_missing_zero_and_error():
    base = {(0, 0, 0, 0, 0): np.eye(4), (0, 0, 1, 0, 0): np.ones((4, 4))}
    only_onsite = {(0, 0, 0, 0, 0): 2 * np.eye(4)}
    args = ([14], np.zeros((1, 3)), np.eye(3) * 3, [True] * 3, {"Si": "1s1p"})
    with pytest.raises(FrameFormatError, match="same pairs"):
        frame_from_blocks(*args, {"H": base, "S": only_onsite})
    frame = frame_from_blocks(*args, {"H": base, "S": only_onsite}, missing="zero")
    assert frame.pairs.tolist() == [[0, 0], [0, 0]]
    np.testing.assert_array_equal(frame.blocks("S")[(0, 0, 1, 0, 0)], np.zeros((4, 4)))
    np.testing.assert_array_equal(frame.blocks("S")[(0, 0, 0, 0, 0)], 2 * np.eye(4))


def test_bad_basis_strings():
    assert parse_shells("2s2p1d") == [0, 0, 1, 1, 2]
    assert n_orbitals("1s1p1d1f") == 16
    for bad in ("2x", "s2p", "", "2s 2p"):
        with pytest.raises(BasisStringError, match="not of the form"):
            parse_shells(bad)
    assert parse_basis_spec(["Si=2s2p1d", "C=1s1p,H=1s"]) == {"Si": "2s2p1d", "C": "1s1p", "H": "1s"}
    with pytest.raises(BasisStringError, match="Si=2s2p1d"):
        parse_basis_spec("Si2s2p")
    with pytest.raises(BasisStringError, match="not of the form"):
        parse_basis_spec("Si=2q")


def test_frame_validation_messages():
    frame = random_frame(0, n_atoms=2)
    with pytest.raises(FrameFormatError, match="no basis given for element"):
        type(frame)(frame.numbers, frame.positions, frame.cell, frame.pbc, {"Si": "2s2p1d"}, frame.pairs,
                    frame.cell_shifts, frame.operators)  # fmt: skip
    with pytest.raises(FrameFormatError, match="operator H holds"):
        type(frame)(frame.numbers, frame.positions, frame.cell, frame.pbc, frame.basis, frame.pairs,
                    frame.cell_shifts, {"H": frame.operators["H"][:-1]})  # fmt: skip
