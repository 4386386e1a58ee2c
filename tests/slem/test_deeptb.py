"""DeePTB folder import/export on synthetic frames and hand-made folders."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from test_data_synthetic import assert_frames_equal, random_frame

from slem.data.deeptb import read_deeptb, write_deeptb
from slem.data.frame import FrameFormatError


def test_round_trip_is_lossless(tmp_path):
    frames = [random_frame(s, n_atoms=3) for s in range(2)]
    write_deeptb(frames, tmp_path / "dptb")
    assert json.loads((tmp_path / "dptb/info.json").read_text()) == {
        "nframes": 1,
        "pos_type": "cart",
        "pbc": True,
    }
    assert sorted(p.name for p in (tmp_path / "dptb").iterdir()) == ["frame.0", "frame.1", "info.json"]
    names = sorted(p.name for p in (tmp_path / "dptb/frame.0").iterdir())
    assert names == ["DM.h5", "atomic_numbers.dat", "basis.dat", "cell.dat", "hamiltonians.h5", "info.json",
                     "overlaps.h5", "positions.dat"]  # fmt: skip
    back = read_deeptb(tmp_path / "dptb")
    for a, b in zip(frames, back, strict=True):
        assert_frames_equal(a, b)
        assert b.metadata["source"] == "deeptb"


def test_blocks_are_keyed_as_deeptb_expects(tmp_path):
    frame = random_frame(2, n_atoms=3, operators=("H",))
    write_deeptb([frame], tmp_path, prefix="set")
    with h5py.File(tmp_path / "set.0/hamiltonians.h5") as handle:
        group = handle["0"]
        assert len(group) == len(frame.pairs)
        for p, ((i, j), r) in enumerate(zip(frame.pairs, frame.cell_shifts, strict=True)):
            np.testing.assert_array_equal(group[f"{i}_{j}_{r[0]}_{r[1]}_{r[2]}"][()], frame.block("H", p))


def test_half_stored_frame_is_completed_with_transposes(tmp_path):
    frame = random_frame(4, n_atoms=2, operators=("S",))
    blocks = frame.blocks("S")
    half = {k: v for k, v in blocks.items() if (k[0], *k[2:]) <= (k[1], *(-np.array(k[2:])))}
    assert len(half) < len(blocks)
    from slem.data.frame import frame_from_blocks

    partial = frame_from_blocks(
        frame.numbers, frame.positions, frame.cell, frame.pbc, frame.basis, {"S": half}
    )
    write_deeptb([partial], tmp_path)
    assert_frames_equal(read_deeptb(tmp_path)[0], frame)


def _hand_made_folder(root, one_based=False, frac=False):
    """Two frames of a 2-atom Si cell stacked in one folder, as DeePTB's MD interfaces write them."""
    root.mkdir()
    (root / "info.json").write_text(
        json.dumps({"nframes": 2, "pos_type": "frac" if frac else "cart", "pbc": True})
    )
    folder = root / "md.0"
    folder.mkdir()
    cell = np.eye(3) * 5.43
    frac_pos = np.array([[[0, 0, 0], [0.25, 0.25, 0.25]], [[0.01, 0, 0], [0.25, 0.24, 0.25]]])
    np.savetxt(folder / "positions.dat", (frac_pos if frac else frac_pos @ cell).reshape(-1, 3))
    np.savetxt(folder / "cell.dat", cell)
    np.savetxt(folder / "atomic_numbers.dat", [14, 14], fmt="%d")
    rng = np.random.default_rng(0)
    base = 1 if one_based else 0
    with h5py.File(folder / "hamiltonians.h5", "w") as handle:
        for f in range(2):
            group = handle.create_group(str(f + base))
            onsite = rng.normal(size=(2, 4, 4))
            hop = rng.normal(size=(4, 4))
            for a in range(2):
                group[f"{a + base}_{a + base}_0_0_0"] = onsite[a] + onsite[a].T
            group[f"{base}_{1 + base}_0_0_0"] = hop
            group[f"{1 + base}_{base}_0_0_0"] = hop.T
    return cell, frac_pos


@pytest.mark.parametrize(("one_based", "frac"), [(False, False), (True, True)])
def test_stacked_frames_frac_positions_and_one_based_keys(tmp_path, one_based, frac):
    cell, frac_pos = _hand_made_folder(tmp_path / "d", one_based, frac)
    frames = read_deeptb(tmp_path / "d", basis={"Si": "1s1p"})
    assert len(frames) == 2
    for f, frame in enumerate(frames):
        np.testing.assert_allclose(frame.positions, frac_pos[f] @ cell, atol=1e-12)
        assert frame.pairs.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
        np.testing.assert_array_equal(
            frame.blocks("H")[(0, 1, 0, 0, 0)], frame.blocks("H")[(1, 0, 0, 0, 0)].T
        )
    assert not np.array_equal(frames[0].operators["H"], frames[1].operators["H"])


def test_bad_input_messages(tmp_path):
    _hand_made_folder(tmp_path / "d")
    with pytest.raises(FrameFormatError, match="no basis.dat; give the basis"):
        read_deeptb(tmp_path / "d")
    with pytest.raises(FrameFormatError, match=r"has shape \(4, 4\) but the basis gives \(13, 13\)"):
        read_deeptb(tmp_path / "d", basis={"Si": "2s2p1d"})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_deeptb(tmp_path / "nowhere", basis={"Si": "1s1p"})
    with pytest.raises(FileNotFoundError, match="no DeePTB trajectory folders"):
        read_deeptb(tmp_path / "d", basis={"Si": "1s1p"}, prefix="other")
    h5 = tmp_path / "d/md.0/hamiltonians.h5"
    h5.write_bytes(h5.read_bytes()[:100])
    with pytest.raises(FrameFormatError, match="corrupt"):
        read_deeptb(tmp_path / "d", basis={"Si": "1s1p"})
    h5.unlink()
    with pytest.raises(FileNotFoundError, match="holds none of hamiltonians.h5"):
        read_deeptb(tmp_path / "d", basis={"Si": "1s1p"})
    (tmp_path / "d/md.0/atomic_numbers.dat").unlink()
    with pytest.raises(FileNotFoundError, match="atomic_numbers.dat is missing"):
        read_deeptb(tmp_path / "d", basis={"Si": "1s1p"})
    (tmp_path / "d/info.json").write_text("{not json")
    with pytest.raises(FrameFormatError, match="not valid JSON"):
        read_deeptb(tmp_path / "d", basis={"Si": "1s1p"})


def test_export_refuses_mismatched_basis_before_writing(tmp_path):
    frame = random_frame(0, n_atoms=2)
    with pytest.raises(FrameFormatError, match="drop --basis"):
        write_deeptb([frame], tmp_path / "out", basis={"Si": "1s1p"})
    assert not (tmp_path / "out").exists()
