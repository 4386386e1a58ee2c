"""slem.spectrum: sparse H(k)/S(k) equal the dense Bloch sums; shift-invert band edges and the KPM DOS of a
512-atom Si supercell agree with dense scipy.linalg.eigh; the ``slem spectrum`` command."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.linalg
from click.testing import CliRunner

from slem.bands import band_energies, bloch_matrices
from slem.bands.bloch import bloch_matrix_sparse
from slem.cli.spectrum import spectrum as spectrum_cli
from slem.data.frame import Frame, frame_from_blocks, read_frames, write_frames
from slem.data.supercell import supercell_frame
from slem.spectrum import (
    BlochPattern,
    KpmError,
    OverlapSolver,
    SpectrumError,
    band_edges,
    electron_count,
    frame_spectrum,
    kpm_moments,
)
from slem.spectrum.kpm import KpmMoments
from slem.spectrum.overlap import lanczos_bounds

SI8 = Path(__file__).parents[1] / "data" / "si8_frames.h5"
KPOINTS = [(0.0, 0.0, 0.0), (0.5, 0.0, 0.5), (0.1, 0.2, -0.3)]


@pytest.fixture(scope="module")
def si8() -> Frame:
    return read_frames(SI8, [0])[0]


def _noisy(frame: Frame, seed: int = 0, h_noise: float = 0.01, s_noise: float = 1e-4) -> Frame:
    """A 'predicted' frame: every block perturbed independently (so H(R) and H(-R)^T differ, as a model's
    do, and the periodic degeneracies of a tiled crystal are broken)."""
    rng = np.random.default_rng(seed)
    operators = dict(frame.operators)
    operators["H"] = operators["H"] + h_noise * rng.normal(size=operators["H"].shape)
    operators["S"] = operators["S"] + s_noise * rng.normal(size=operators["S"].shape)
    return Frame(
        frame.numbers,
        frame.positions,
        frame.cell,
        frame.pbc,
        frame.basis,
        frame.pairs,
        frame.cell_shifts,
        operators,
        frame.metadata,
    )


@pytest.fixture(scope="module")
def si512(si8):
    """4x4x4 tiled Si8 (512 atoms, 2048 orbitals) with prediction-like noise, its Gamma H and S, and
    the dense generalized eigenvalues (scipy.linalg.eigh, about 5 s)."""
    frame = _noisy(supercell_frame(si8, (4, 4, 4), operators=["H", "S"]))
    pattern = BlochPattern(frame)
    h, s = pattern.matrix("H"), pattern.matrix("S")
    energies = scipy.linalg.eigh(h.toarray(), s.toarray(), eigvals_only=True)
    return frame, h, s, energies


def _half_list(frame: Frame) -> Frame:
    """The same frame with each bond stored once (i < j, or i == j with R >= 0), as DeePTB stores it."""
    keep = [
        p
        for p, ((i, j), r) in enumerate(zip(frame.pairs.tolist(), frame.cell_shifts.tolist(), strict=True))
        if i < j or (i == j and tuple(r) >= (0, 0, 0))
    ]
    blocks = {op: {} for op in frame.operators}
    for p in keep:
        key = (*frame.pairs[p].tolist(), *frame.cell_shifts[p].tolist())
        for op in frame.operators:
            blocks[op][key] = frame.block(op, p)
    return frame_from_blocks(frame.numbers, frame.positions, frame.cell, frame.pbc, frame.basis, blocks)


# --- sparse assembly ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kpt", KPOINTS)
def test_sparse_bloch_equals_dense(si8, kpt):
    pattern = BlochPattern(si8)
    for op in ("H", "S", "D"):
        dense = bloch_matrices(si8, op, np.array([kpt]))[0]
        sparse = pattern.matrix(op, kpt, hermitian=False)
        assert np.abs(sparse.toarray() - dense).max() < 1e-12
        symmetric = pattern.matrix(op, kpt).toarray()
        assert np.abs(symmetric - 0.5 * (dense + dense.conj().T)).max() < 1e-12
        assert sparse.dtype == (
            np.float64 if np.allclose(2 * np.array(kpt), np.round(2 * np.array(kpt))) else np.complex128
        )
    assert (
        np.abs(
            bloch_matrix_sparse(si8, "H", np.array(kpt)).toarray()
            - bloch_matrices(si8, "H", np.array([kpt]))[0]
        ).max()
        < 1e-12
    )


def test_half_pair_list_and_mixed_species_give_the_same_matrix(si8):
    half = _half_list(si8)
    assert len(half.pairs) < len(si8.pairs)
    for kpt in KPOINTS:
        assert (
            np.abs(
                BlochPattern(half).matrix("H", kpt).toarray() - BlochPattern(si8).matrix("H", kpt).toarray()
            ).max()
            < 1e-12
        )
    # two species with 1 and 4 orbitals, half list, blocks of every shape
    rng = np.random.default_rng(1)
    keys = [
        (0, 0, 0, 0, 0),
        (1, 1, 0, 0, 0),
        (0, 1, 0, 0, 0),
        (0, 1, 1, 0, 0),
        (1, 1, 0, 1, 0),
        (0, 0, 0, 0, 1),
    ]
    sizes = {0: 1, 1: 4}
    blocks = {"H": {k: rng.normal(size=(sizes[k[0]], sizes[k[1]])) for k in keys}}
    frame = frame_from_blocks(
        ["H", "C"], np.zeros((2, 3)), np.eye(3) * 3, [True] * 3, {"H": "1s", "C": "1s1p"}, blocks
    )
    for kpt in KPOINTS:
        dense = bloch_matrices(frame, "H", np.array([kpt]))[0]
        assert np.abs(BlochPattern(frame).matrix("H", kpt, hermitian=False).toarray() - dense).max() < 1e-12


def test_supercell_at_gamma_folds_the_primitive_bands(si8):
    """The 2x2x2 supercell's Gamma spectrum is the primitive spectrum on the 2x2x2 mesh m/2 (zone folding)."""
    frame = supercell_frame(si8, (2, 2, 2))
    assert frame.n_atoms == 64 and len(frame.pairs) == 8 * len(si8.pairs)
    assert frame.metadata["n_electrons"] == 8 * si8.metadata["n_electrons"]
    pattern = BlochPattern(frame)
    folded = scipy.linalg.eigh(
        pattern.matrix("H").toarray(), pattern.matrix("S").toarray(), eigvals_only=True
    )
    mesh = np.array([[a, b, c] for a in range(2) for b in range(2) for c in range(2)]) / 2.0
    assert np.abs(folded - np.sort(band_energies(si8, mesh).ravel())).max() < 1e-9
    with pytest.raises(ValueError, match="non-periodic"):
        supercell_frame(
            Frame(
                si8.numbers,
                si8.positions,
                si8.cell,
                [True, True, False],
                si8.basis,
                si8.pairs,
                si8.cell_shifts,
                si8.operators,
            ),
            (1, 1, 2),
        )


# --- shift-invert band edges ----------------------------------------------------------------------------
def test_shift_invert_edges_match_dense_eigh_on_512_atoms(si512):
    frame, h, s, dense = si512
    n_occ = 2 * frame.n_atoms  # 4 valence electrons per Si, two per state
    homo, lumo = dense[n_occ - 1], dense[n_occ]
    assert lumo - homo > 0.5  # an insulator even with the noise
    for guess in (0.5 * (homo + lumo), homo - 2.0):  # in the gap, deep in the valence band
        edges = band_edges(h, s, 4 * frame.n_atoms, guess)
        assert abs(edges.homo - homo) < 1e-3 and abs(edges.lumo - lumo) < 1e-3  # the brief: 1 meV
        assert abs(edges.homo - homo) < 1e-8 and abs(edges.lumo - lumo) < 1e-8  # what it achieves
        # the inertia of the last factorization is the exact count of states below its shift
        assert edges.inertia == int((dense < edges.sigma).sum())
        np.testing.assert_allclose(edges.eigenvalues, dense[edges.indices - 1], atol=1e-8)


def test_shift_invert_edges_at_a_general_k_point_are_complex_hermitian(si8):
    frame = _noisy(supercell_frame(si8, (2, 2, 2), operators=["H", "S"]), seed=3)
    kpt = (0.13, -0.21, 0.37)
    pattern = BlochPattern(frame)
    h, s = pattern.matrix("H", kpt), pattern.matrix("S", kpt)
    assert h.dtype == np.complex128
    dense = scipy.linalg.eigh(h.toarray(), s.toarray(), eigvals_only=True)
    for guess in (dense[0], dense[-1] + 1.0):  # below and above the whole spectrum
        edges = band_edges(h, s, 256, guess=guess)
        assert abs(edges.homo - dense[127]) < 1e-8 and abs(edges.lumo - dense[128]) < 1e-8


# --- KPM ------------------------------------------------------------------------------------------------
def _exact_moments(energies: np.ndarray, moments: KpmMoments) -> np.ndarray:
    x = (energies - moments.centre) / moments.half_width
    return np.cos(np.outer(np.arange(moments.n_moments), np.arccos(x))).sum(axis=1)


def test_kpm_dos_integrates_to_the_orbitals_and_matches_the_dense_dos(si512):
    frame, h, s, dense = si512
    moments = kpm_moments(h, s, n_moments=128, n_vectors=4, seed=1)
    n = h.shape[0]
    assert moments.spectrum[0] <= dense[0] + 1e-6 and moments.spectrum[1] >= dense[-1] - 1e-6
    assert abs(moments.moments[0] - n) < 1e-3 * n  # z^T z = n up to the S^-1/2 series
    grid = np.linspace(moments.centre - moments.half_width, moments.centre + moments.half_width, 8001)
    dos = moments.dos(grid)
    assert abs(np.trapezoid(dos, grid) - n) < 1e-3 * n
    assert abs(moments.integrated(grid[-1:])[0] - n) < 1e-3 * n
    # each moment is a stochastic trace: for Rademacher z, var z^T A z = 2 sum_(i != j) A_ij^2 <= 2n
    # (|T_m| <= 1), so with 4 vectors its error stays within 5 sqrt(2n / 4) (measured: 2 standard errors)
    exact = _exact_moments(dense, moments)
    assert np.abs(moments.moments - exact).max() < 5 * np.sqrt(2 * n / 4)
    # the dense DOS broadened by the same Jackson kernel (the KPM with exact moments): 6 % in L1 with 4
    # vectors, falling as 1 / sqrt(vectors x orbitals)
    reference = moments.dos(grid, exact)
    assert np.abs(dos - reference).sum() / np.abs(reference).sum() < 0.1
    # states below mid-gap: half the electrons, within the stochastic error
    n_occ = 2 * frame.n_atoms
    midgap = np.array([0.5 * (dense[n_occ - 1] + dense[n_occ])])
    error = moments.integrated_error(midgap)[0]
    assert abs(moments.integrated(midgap)[0] - n_occ) < max(4 * error, 2.0)
    # the KPM Fermi level lies in the gap (the middle of the plateau, not a noise-shifted crossing)
    assert dense[n_occ - 1] < moments.level(n_occ) < dense[n_occ]


def test_kpm_overlap_solvers_agree_and_tight_bounds_are_refused(si8):
    frame = supercell_frame(si8, (2, 2, 2), operators=["H", "S"])
    pattern = BlochPattern(frame)
    h, s = pattern.matrix("H"), pattern.matrix("S")
    by_lu = kpm_moments(h, s, 64, 2, overlap=OverlapSolver(s, "lu"))
    by_cg = kpm_moments(h, s, 64, 2, overlap=OverlapSolver(s, "cg", rtol=1e-10))
    assert np.abs(by_lu.moments - by_cg.moments).max() < 1e-6 * by_lu.moments[0]
    with pytest.raises(KpmError, match="diverges"):
        kpm_moments(h, s, 64, 2, bounds=(-1.0, 1.0), pad=0.0)
    low, high, info = lanczos_bounds(s, steps=40)
    assert 0 < low <= info["ritz_low"] and high >= info["ritz_high"]


def test_kpm_without_overlap_counts_a_diagonal_spectrum():
    import scipy.sparse

    values = np.linspace(-2.0, 3.0, 400)
    moments = kpm_moments(scipy.sparse.diags(values).tocsr(), None, n_moments=200, n_vectors=1)
    # a diagonal matrix: z^T T_m(A) z = Tr T_m(A) exactly for Rademacher z
    np.testing.assert_allclose(moments.moments, _exact_moments(values, moments), atol=1e-8)
    assert abs(moments.integrated(np.array([0.5]))[0] - (values < 0.5).sum()) < 3


# --- electron count, the whole analysis, the command ----------------------------------------------------
def test_electron_count_from_metadata_or_density_matrix(si8):
    assert electron_count(si8) == (32.0, "metadata")
    bare = Frame(
        si8.numbers,
        si8.positions,
        si8.cell,
        si8.pbc,
        si8.basis,
        si8.pairs,
        si8.cell_shifts,
        si8.operators,
        {},
    )
    count, source = electron_count(bare)
    assert count == 32.0 and source.startswith("Tr(DS)")
    assert electron_count(_half_list(bare))[0] == 32.0
    no_d = Frame(
        si8.numbers,
        si8.positions,
        si8.cell,
        si8.pbc,
        si8.basis,
        si8.pairs,
        si8.cell_shifts,
        {k: v for k, v in si8.operators.items() if k != "D"},
        {},
    )
    with pytest.raises(SpectrumError, match="electron count"):
        electron_count(no_d)
    # an untrained D: the count is rounded, and flagged
    bad_d = Frame(
        si8.numbers,
        si8.positions,
        si8.cell,
        si8.pbc,
        si8.basis,
        si8.pairs,
        si8.cell_shifts,
        {**si8.operators, "D": 0.9 * si8.operators["D"]},
        {},
    )
    result = frame_spectrum(bad_d, n_moments=32, n_vectors=2, edges=False)
    assert result["n_electrons"] == 29.0 and "not close to an integer" in result["n_electrons_warning"]


def test_frame_spectrum_reports_edges_dos_and_timings(si8):
    frame = supercell_frame(si8, (2, 2, 2))
    result = frame_spectrum(frame, n_moments=128, n_vectors=4)
    pattern = BlochPattern(frame)
    dense = scipy.linalg.eigh(pattern.matrix("H").toarray(), pattern.matrix("S").toarray(), eigvals_only=True)
    assert abs(result["edges"]["homo_eV"] - dense[127]) < 1e-8
    assert abs(result["edges"]["gap_eV"] - (dense[128] - dense[127])) < 1e-8
    assert result["edges"]["inertia_checked"] and result["n_electrons"] == 256
    assert result["dos_states_per_eV"].shape == result["energies_eV"].shape == (2001,)
    assert abs(result["kpm"]["integrated_total"] - 256) < 0.5
    assert {"assembly_s", "kpm_s", "edges_s", "peak_rss_mb"} <= set(result["timings"])


def test_spectrum_cli_writes_json_hdf5_and_plot(si8, tmp_path):
    frames = write_frames(tmp_path / "si8.h5", [si8])
    out, png = tmp_path / "spectrum.json", tmp_path / "dos.png"
    args = [str(frames), "--supercell", "2", "2", "2", "--moments", "96", "--vectors", "2"]
    run = CliRunner().invoke(spectrum_cli, [*args, "-o", str(out), "--plot", str(png)])
    assert run.exit_code == 0, run.output
    assert "gap" in run.output and png.stat().st_size > 1000
    data = json.loads(out.read_text())
    assert data["n_atoms"] == 64 and data["supercell"] == [2, 2, 2]
    assert len(data["energies_eV"]) == len(data["dos_states_per_eV"]) == 2001
    assert data["edges"]["lumo_eV"] > data["edges"]["homo_eV"]
    h5 = tmp_path / "spectrum.h5"
    run = CliRunner().invoke(
        spectrum_cli,
        [
            *args,
            "--no-edges",
            "--emin",
            "-6",
            "--emax",
            "20",
            "--points",
            "300",
            "-o",
            str(h5),
            "--plot",
            str(png),
        ],
    )
    assert run.exit_code == 0, run.output
    with h5py.File(h5) as handle:
        assert handle["dos_states_per_eV"].shape == (300,)
        assert json.loads(handle.attrs["summary"])["edges"] is None


def test_spectrum_cli_refuses_bad_input_in_one_line(si8, tmp_path):
    no_s = Frame(
        si8.numbers,
        si8.positions,
        si8.cell,
        si8.pbc,
        si8.basis,
        si8.pairs,
        si8.cell_shifts,
        {"H": si8.operators["H"]},
        si8.metadata,
    )
    path = write_frames(tmp_path / "no_s.h5", [no_s])
    for args, message in (([str(path)], "needs H and S"), ([str(SI8), "--index", "99"], "holds 8 frame")):
        run = CliRunner().invoke(
            spectrum_cli, [*args, "-o", str(tmp_path / "x.json"), "--plot", str(tmp_path / "x.png")]
        )
        assert run.exit_code == 2 and message in run.output, run.output
