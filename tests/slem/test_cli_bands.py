"""slem bands: plot + data from a model, the reference overlay, the sparse solver, the S(k) check."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from slem.bands import band_energies, bloch_matrices
from slem.cli.bands import OverlapNotPositiveError, dense_bands, sparse_bands
from slem.cli.bands import bands as bands_cli
from slem.data.frame import read_frames
from slem.train.config import validate_config
from slem.train.trainer import Trainer

SI8 = Path(__file__).parents[1] / "data" / "si8_frames.h5"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    out = tmp_path_factory.mktemp("bands") / "run"
    cfg = {
        "dataset": {"path": str(SI8)},
        "operators": ["H", "S"],
        "output_dir": str(out),
        "model": {
            "r_cut": {"Si": 4.0},
            "n_layers": 1,
            "hidden_irreps": "4x0e+4x1o+2x2e",
            "latent_dim": 8,
            "latent_hidden": [8],
            "n_radial": 4,
            "avg_num_neighbors": 16.0,
            "overlap_hidden": [8],
        },
        "training": {"max_steps": 2, "validate_every": 2},
    }
    torch.set_num_threads(1)
    Trainer(validate_config(cfg), progress=False).run()
    return out / "model.pt"


def test_bands_cli_png_and_data(model_path, tmp_path):
    png, data = tmp_path / "bands.png", tmp_path / "bands.json"
    result = CliRunner().invoke(
        bands_cli,
        [
            str(model_path),
            str(SI8),
            "--index",
            "6",
            "--reference",
            "6",
            "--path",
            "GXMGR",
            "--npoints",
            "15",
            "-o",
            str(png),
            "--data",
            str(data),
        ],
    )
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:4] == b"\x89PNG"
    record = json.loads(data.read_text())
    energies = np.array(record["energies_eV"])
    ref = np.array(record["reference_energies_eV"])
    assert energies.shape == ref.shape == (15, 32)  # 8 atoms x 1s1p
    assert record["labels"][0] == "Γ" and len(record["special_x"]) == 5
    # the overlay is the reference frame's own bands
    frame = read_frames(SI8, [6])[0]
    np.testing.assert_allclose(ref, band_energies(frame, np.array(record["kpoints_reduced"])), atol=1e-8)
    assert record["band_mae_meV"] == pytest.approx(1000 * np.abs(energies - ref).mean())
    assert record["alignment_shift_eV"] == 0.0  # trained without onsite_shift: no alignment by default

    result = CliRunner().invoke(
        bands_cli,
        [
            str(model_path),
            str(SI8),
            "--index",
            "6",
            "--reference",
            "6",
            "--path",
            "GXMGR",
            "--npoints",
            "15",
            "--align",
            "mean",
            "-o",
            str(png),
            "--data",
            str(data),
        ],
    )
    assert result.exit_code == 0, result.output
    aligned = json.loads(data.read_text())
    shift = aligned["alignment_shift_eV"]
    assert shift == pytest.approx(float((energies - ref).mean()))
    assert aligned["band_mae_meV"] == pytest.approx(1000 * np.abs(energies - ref - shift).mean())

    npz = tmp_path / "bands.npz"
    result = CliRunner().invoke(
        bands_cli, [str(model_path), str(SI8), "--npoints", "8", "-o", str(png), "--data", str(npz)]
    )
    assert result.exit_code == 0, result.output
    assert np.load(npz)["energies_eV"].shape[1] == 32  # ase may add points to reach every special point


def test_sparse_solver_matches_dense():
    frame = read_frames(SI8, [0])[0]
    kpts = np.array([[0.0, 0.0, 0.0], [0.1, 0.25, -0.3]])
    dense = dense_bands(frame, kpts)
    sigma = float(dense[0, 10]) + 0.01
    sparse = sparse_bands(frame, kpts, nbands=6, sigma=sigma)
    for k in range(len(kpts)):
        nearest = dense[k][np.argsort(np.abs(dense[k] - sigma))[:6]]
        np.testing.assert_allclose(sparse[k], np.sort(nearest), atol=1e-7)


def test_overlap_not_positive_definite_is_named():
    frame = read_frames(SI8, [0])[0]
    frame.operators["S"] = frame.operators["S"] * 3.0 - 2.0 * (frame.operators["S"] != 0)  # a broken overlap
    with pytest.raises(OverlapNotPositiveError, match=r"k = \[.*smallest eigenvalue"):
        dense_bands(frame, np.array([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0]]))
    with pytest.raises(OverlapNotPositiveError, match="not positive definite"):
        sparse_bands(frame, np.array([[0.0, 0.0, 0.0]]), nbands=4, sigma=0.0)


def test_overlap_tolerance_drops_near_null_directions_and_is_checked(model_path, tmp_path):
    frame = read_frames(SI8, [0])[0]
    kpts = np.array([[0.0, 0.0, 0.0], [0.1, 0.25, -0.3]])
    s_min = min(np.linalg.eigvalsh(s)[0] for s in bloch_matrices(frame, "S", kpts))
    exact = dense_bands(frame, kpts)
    # a tolerance below every S(k) eigenvalue drops nothing and changes nothing
    np.testing.assert_allclose(dense_bands(frame, kpts, overlap_tolerance=0.5 * s_min), exact, atol=1e-8)
    # the broken overlap of the test above becomes solvable once its non-positive directions are dropped
    frame.operators["S"] = frame.operators["S"] * 3.0 - 2.0 * (frame.operators["S"] != 0)
    cut = dense_bands(frame, kpts, overlap_tolerance=1e-2)
    assert 0 < cut.shape[1] < exact.shape[1] and np.isfinite(cut).all()
    for bad, message in ((["--overlap-tolerance", "-1"], "must be >= 0"),
                         (["--overlap-tolerance", "0.01", "--solver", "sparse"], "dense only")):
        args = [str(model_path), str(SI8), "-o", str(tmp_path / "b.png"), *bad]
        result = CliRunner().invoke(bands_cli, args)
        assert result.exit_code == 2 and message in result.output
