"""Inversion parities of LCAO states (slem.bands.parity) against pw.x's own symmetry labels (bands.x lsym)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from slem.bands.bloch import BandsError, bloch_matrices
from slem.bands.parity import inversion_centre, inversion_matrix, inversion_parities
from slem.qe.band_symmetry import read_band_symmetry
from slem.qe.inputs import bands_symmetry_input, pw_input, run_qe

# bands.x (lsym) at Gamma of Bi2Se3 with spin-orbit coupling, as QE 6.7 writes it: D3d's two one-dimensional
# irreps G_5, G_6 of a Kramers pair are printed on two lines with the same bands
BI2SE3_GAMMA = """
                    xk=(   0.00000,   0.00000,   0.00000  )

     Band symmetry, D_3d (-3m)  double point group:

     e( 75 - 76) =      7.95128  eV     2   --> G_5-  L_4-
     e( 75 - 76) =      7.95128  eV     2   --> G_6-  L_5-
     e( 77 - 78) =      9.15163  eV     2   --> G_4+  L_6+
     e( 79 - 80) =      9.50107  eV     2   --> G_4-  L_6-

                    xk=(  -0.17678,  -0.53033,   0.53033  )

     zone border point and non-symmorphic group
     symmetry decomposition not available
"""


def test_bands_x_levels_are_read_once_per_kramers_pair(tmp_path):
    path = tmp_path / "symmetry.out"
    path.write_text(BI2SE3_GAMMA)
    gamma, border = read_band_symmetry(path)
    assert gamma.kpoint == (0.0, 0.0, 0.0) and border.levels == []
    assert [(level.first, level.last) for level in gamma.levels] == [(75, 76), (77, 78), (79, 80)]
    assert gamma.levels[0].labels == "G_5-  L_4- / G_6-  L_5-" and gamma.levels[0].parity == -1
    assert gamma.band_parities() == [None] * 74 + [-1, -1, 1, 1, -1, -1]


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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_parities_are_refused_where_they_are_undefined(qe_runs):
    si = qe_runs.project(qe_runs.scf("si2")).frame
    with pytest.raises(BandsError, match="time-reversal-invariant momenta"):
        inversion_parities(si, [0.25, 0.0, 0.0])
    with pytest.raises(BandsError, match="not an inversion centre"):
        inversion_matrix(si, GAMMA, center=np.array([0.3, 0.1, 0.0]))
    sic = qe_runs.project(qe_runs.scf("sic")).frame  # zincblende has no inversion
    with pytest.raises(BandsError, match="no inversion centre"):
        inversion_parities(sic, GAMMA)
