"""Inversion parities of LCAO states (slem.bands.parity) against pw.x's own symmetry labels (bands.x lsym)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from slem.bands.bloch import BandsError, bloch_matrices
from slem.bands.parity import inversion_centre, inversion_matrix, inversion_parities
from slem.qe.band_symmetry import read_band_symmetry
from slem.qe.inputs import bands_symmetry_input, pw_input, run_qe

pytestmark = pytest.mark.slow

GAMMA = [0.0, 0.0, 0.0]
TRIMS = [GAMMA, [0.5, 0.0, 0.5], [0.5, 0.5, 0.5], [0.5, 0.0, 0.0]]


def pw_x_gamma_parities(case, nbnd: int) -> list:
    """pw.x's parities at Gamma, from bands.x's irreducible representations of a bands run there."""
    folder = case.workdir.parent / f"{case.workdir.name}_parity"
    if not (folder / "symmetry.out").is_file():
        shutil.copytree(case.workdir / "out", folder / "out", dirs_exist_ok=True)
        gamma = np.array([GAMMA])
        text = pw_input(case.symbols, case.positions, case.cell, case.pseudos, case.ecutwfc, gamma,
                        calculation="bands", nbnd=nbnd)  # fmt: skip
        run_qe("pw.x", text, folder, "bands")
        run_qe("bands.x", bands_symmetry_input(), folder, "symmetry")
    return read_band_symmetry(folder / "symmetry.out")[0].band_parities()


def test_silicon_gamma_parities_are_pw_x_irreps(qe_runs):
    """Diamond Si about its bond centre: Gamma_1+, Gamma_25'+ (valence), Gamma_15-, Gamma_2'- (conduction),
    as pw.x's bands.x names its own states; the LCAO parities are +-1 to 1e-6."""
    case = qe_runs.scf("si2")
    frame = qe_runs.project(case).frame
    reference = pw_x_gamma_parities(case, 8)
    assert reference == [1, 1, 1, 1, -1, -1, -1, -1]
    energies, parities = inversion_parities(frame, GAMMA, n_bands=8)
    assert np.allclose(np.abs(parities), 1.0, atol=1e-6)
    assert np.round(parities).astype(int).tolist() == reference
    bond_centre = 0.5 * case.positions.sum(axis=0)
    assert np.allclose(inversion_centre(frame), bond_centre, atol=1e-9)


def test_inversion_commutes_with_projected_h_and_s_at_every_trim(qe_runs):
    """P H P^-1 = H and P S P^-1 = S at Gamma, X, L and a zone-face point (the lattice phases e^{ik.L}
    matter away from Gamma), and P^2 = 1: the operator parities are read from is the crystal's symmetry."""
    frame = qe_runs.project(qe_runs.scf("si2")).frame
    for k in TRIMS:
        p = inversion_matrix(frame, k)
        assert np.allclose(p @ p, np.eye(len(p)), atol=1e-12)
        for name in ("H", "S"):
            x = bloch_matrices(frame, name, np.array([k]))[0]
            assert np.abs(p @ x @ p.conj().T - x).max() < 1e-6 * np.abs(x).max(), (k, name)
        _, parities = inversion_parities(frame, k, n_bands=8)
        assert np.allclose(np.abs(parities), 1.0, atol=1e-6)


def test_parities_are_refused_where_they_are_undefined(qe_runs):
    si = qe_runs.project(qe_runs.scf("si2")).frame
    with pytest.raises(BandsError, match="time-reversal-invariant momenta"):
        inversion_parities(si, [0.25, 0.0, 0.0])
    with pytest.raises(BandsError, match="not an inversion centre"):
        inversion_matrix(si, GAMMA, center=np.array([0.3, 0.1, 0.0]))
    sic = qe_runs.project(qe_runs.scf("sic")).frame  # zincblende has no inversion
    with pytest.raises(BandsError, match="no inversion centre"):
        inversion_parities(sic, GAMMA)
