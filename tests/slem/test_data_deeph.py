"""DeepH folder import/export, including the OpenMX real-harmonic convention."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from e3nn import o3
from test_data_synthetic import assert_frames_equal, random_frame

from slem.data.deeph import orbital_index, read_deeph, write_deeph
from slem.data.frame import FrameFormatError, frame_from_blocks


def test_round_trip_is_lossless_up_to_f(tmp_path):
    frames = [random_frame(s, n_atoms=3) for s in range(2)]  # Si 2s2p1d, C 1s1p1d1f
    frames[0].metadata["fermi_level"] = -4.25
    write_deeph(frames, tmp_path)
    info = json.loads((tmp_path / "0/info.json").read_text())
    assert info == {"nsites": 3, "isorthogonal": False, "isspinful": False, "norbits": 13 + 16 + 13,
                    "fermi_level": -4.25}  # fmt: skip
    assert (tmp_path / "0/orbital_types.dat").read_text().splitlines() == ["0  0  1  1  2", "0  1  2  3"] + [
        "0  0  1  1  2"
    ]
    np.testing.assert_allclose(np.loadtxt(tmp_path / "0/lat.dat").T, frames[0].cell)
    rlat = np.loadtxt(tmp_path / "0/rlat.dat")  # columns are the reciprocal vectors
    np.testing.assert_allclose(frames[0].cell @ rlat, 2 * np.pi * np.eye(3), atol=1e-12)
    back = read_deeph(tmp_path)
    for a, b in zip(frames, back, strict=True):
        assert_frames_equal(a, b)
    assert back[0].metadata["fermi_level"] == -4.25
    assert_frames_equal(read_deeph(tmp_path / "1")[0], frames[1])


def _real_harmonics_ours(vectors: np.ndarray, lmax: int = 3) -> np.ndarray:
    """Our orbital order (m = -l..l, p = y, z, x): e3nn's harmonics of the (y, z, x)-permuted vector."""
    v = torch.as_tensor(vectors[:, [1, 2, 0]])
    return o3.spherical_harmonics(list(range(lmax + 1)), v, normalize=True, normalization="integral").numpy()


def _openmx_polynomials(vectors: np.ndarray) -> np.ndarray:
    """OpenMX's documented orbital order: s; px, py, pz; d3z2-r2, dx2-y2, dxy, dxz, dyz; f in m = 0, +1,
    -1, +2, -2, +3, -3 order. Unnormalised, unit vectors."""
    x, y, z = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).T
    one = np.ones_like(x)
    return np.stack(
        [one, x, y, z, 3 * z**2 - 1, x**2 - y**2, x * y, x * z, y * z,
         z * (5 * z**2 - 3), x * (5 * z**2 - 1), y * (5 * z**2 - 1), z * (x**2 - y**2), x * y * z,
         x * (x**2 - 3 * y**2), y * (3 * x**2 - y**2)], axis=1,
    )  # fmt: skip


def test_exported_blocks_follow_openmx_order_and_signs(tmp_path):
    """An s-on-H with spdf-on-C block whose column is Y_lm(bond) must come out as OpenMX's polynomials.

    Every ratio DeepH/OpenMX-polynomial must be one positive constant per orbital, the same for all
    bond directions: a wrong permutation or sign makes ratios differ between directions or go negative."""
    rng = np.random.default_rng(5)
    bonds = rng.normal(size=(6, 3))
    bonds *= 1.5 / np.linalg.norm(bonds, axis=1, keepdims=True)
    positions = np.vstack([[[10.0, 10.0, 10.0]], 10.0 + bonds])
    numbers = [6] + [1] * len(bonds)
    harmonics = _real_harmonics_ours(bonds)  # (n_bonds, 16), rows: C's orbitals in our order
    blocks = {(a, a, 0, 0, 0): np.eye(16 if a == 0 else 1) for a in range(len(numbers))}
    for k in range(len(bonds)):
        blocks[(0, k + 1, 0, 0, 0)] = harmonics[k][:, None]  # <C orbitals | H s>, column along the bond
    frame = frame_from_blocks(numbers, positions, np.eye(3) * 20, [False] * 3, {"C": "1s1p1d1f", "H": "1s"},
                              {"H": blocks})  # fmt: skip
    write_deeph([frame], tmp_path)
    with h5py.File(tmp_path / "0/hamiltonians.h5") as handle:
        exported = np.array([handle[f"[0, 0, 0, 1, {k + 2}]"][()][:, 0] for k in range(len(bonds))])
        np.testing.assert_array_equal(
            handle["[0, 0, 0, 2, 1]"][()], exported[0][None, :]
        )  # transposed partner
    ratio = exported / _openmx_polynomials(bonds)
    assert np.all(ratio > 0)
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[0], ratio.shape), rtol=1e-10)


def test_orbital_index_permutations():
    assert orbital_index([1]).tolist() == [1, 2, 0]  # ours (y, z, x) from OpenMX (x, y, z)
    assert orbital_index([2]).tolist() == [2, 4, 0, 3, 1]
    assert orbital_index([3]).tolist() == [6, 4, 2, 0, 1, 3, 5]
    assert orbital_index([1, 0]).tolist() == [3, 1, 2, 0]  # shells reordered to s first
    with pytest.raises(FrameFormatError, match="l=4"):
        orbital_index([4])


def _single_atom(tmp_path):
    onsite = np.arange(16.0).reshape(4, 4)
    onsite = onsite + onsite.T
    frame = frame_from_blocks([14], np.zeros((1, 3)), np.eye(3) * 3, [True] * 3, {"Si": "1s1p"},
                              {"H": {(0, 0, 0, 0, 0): onsite}})  # fmt: skip
    write_deeph([frame], tmp_path)
    return frame, tmp_path / "0"


def test_import_reorders_shells_listed_out_of_order(tmp_path):
    frame, folder = _single_atom(tmp_path)
    with h5py.File(folder / "hamiltonians.h5", "r+") as handle:
        block = handle["[0, 0, 0, 1, 1]"][()]
        del handle["[0, 0, 0, 1, 1]"]
        order = [1, 2, 3, 0]  # p shell listed before s
        handle["[0, 0, 0, 1, 1]"] = block[np.ix_(order, order)]
    (folder / "orbital_types.dat").write_text("1 0\n")
    assert_frames_equal(read_deeph(folder)[0], frame)


def test_bad_input_messages(tmp_path):
    _, folder = _single_atom(tmp_path)
    with pytest.raises(FrameFormatError, match="does not match"):
        read_deeph(folder, basis={"Si": "2s2p"})
    with pytest.raises(FrameFormatError, match="no basis given for Si"):
        read_deeph(folder, basis={"C": "1s"})
    info = json.loads((folder / "info.json").read_text())
    (folder / "info.json").write_text(json.dumps({**info, "isspinful": True}))
    with pytest.raises(FrameFormatError, match="spinful"):
        read_deeph(folder)
    (folder / "info.json").write_text(json.dumps(info))
    (folder / "hamiltonians.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 50)
    with pytest.raises(FrameFormatError, match="corrupt"):
        read_deeph(folder)
    (folder / "orbital_types.dat").unlink()
    with pytest.raises(FileNotFoundError, match="orbital_types.dat is missing"):
        read_deeph(folder)
    with pytest.raises(FileNotFoundError, match="no DeepH structure folders"):
        (tmp_path / "empty").mkdir()
        read_deeph(tmp_path / "empty")


def test_molecule_without_cell_is_refused(tmp_path):
    frame = random_frame(0, n_atoms=2, pbc=(False, False, False))
    frame.cell = np.zeros((3, 3))
    with pytest.raises(FrameFormatError, match="singular cell"):
        write_deeph([frame], tmp_path / "out")
    assert not (tmp_path / "out").exists()
