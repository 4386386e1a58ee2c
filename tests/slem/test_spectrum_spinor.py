"""slem spectrum on a spin-orbit frame: the spinor H(k) = H (x) 1 + i sum_a H_so_a (x) sigma_a of a 64-atom
cell, its shift-invert band edges against dense eigh of the same spinor pair, and one electron per state."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg

from slem.bands.bloch import bloch_matrix_sparse, operator_pair
from slem.data.frame import Frame, read_frames
from slem.data.operators import spin_orbit_names
from slem.data.supercell import supercell_frame
from slem.spectrum import BlochPattern, frame_spectrum
from slem.spinor import real_generators

SI8 = Path(__file__).parents[1] / "data" / "si8_frames.h5"
# an atomic lambda L.S on the Si 3p shell, 10x silicon's (so the splittings are far above the solver's noise)
LAMBDA_EV = 0.3


def _with_atomic_spin_orbit(frame: Frame, strength: float) -> Frame:
    """The frame plus H_so_a with (lambda/2) A_a on every atom's p block (L.S = (1/2) sum_a L_a sigma_a and
    L_a = i A_a), zero elsewhere: antisymmetric under (i, j, R) -> (j, i, -R) as every H_so_a must be."""
    assert frame.basis == {"Si": "1s1p"}
    parts = {name: np.zeros_like(frame.operators["H"]) for name in spin_orbit_names("H")}
    generators = real_generators(1)
    for p, ((i, j), r) in enumerate(zip(frame.pairs.tolist(), frame.cell_shifts.tolist(), strict=True)):
        if i == j and not any(r):
            start = frame.block_offsets[p]
            for a, name in enumerate(spin_orbit_names("H")):
                block = np.zeros((4, 4))
                block[1:, 1:] = 0.5 * strength * generators[a]
                parts[name][start : start + 16] = block.ravel()
    operators = {name: frame.operators[name] for name in ("H", "S")} | parts
    return dataclasses.replace(frame, operators=operators)


@pytest.fixture(scope="module")
def si64_soc() -> Frame:
    return supercell_frame(_with_atomic_spin_orbit(read_frames(SI8, [0])[0], LAMBDA_EV), (2, 2, 2))


@pytest.mark.parametrize("kpt", [(0.0, 0.0, 0.0), (0.1, 0.2, -0.3)])
def test_sparse_spinor_pair_equals_the_dense_one(si64_soc, kpt):
    h, s = BlochPattern(si64_soc).pair(kpt)
    dense_h, dense_s = operator_pair(si64_soc, np.array([kpt]))
    assert h.shape == (512, 512) and np.iscomplexobj(h.data)
    assert np.abs(h.toarray() - dense_h[0]).max() < 1e-12 and np.abs(s.toarray() - dense_s[0]).max() < 1e-12
    assert np.abs(h.toarray() - h.toarray().conj().T).max() < 1e-12
    assert np.abs(bloch_matrix_sparse(si64_soc, "H", np.array(kpt)).toarray() - dense_h[0]).max() < 1e-12


def test_spinor_edges_match_dense_eigh_and_count_one_electron_per_state(si64_soc):
    result = frame_spectrum(si64_soc, n_moments=128, n_vectors=4)
    dense_h, dense_s = operator_pair(si64_soc, np.zeros((1, 3)))
    energies = scipy.linalg.eigh(dense_h[0], dense_s[0], eigvals_only=True)
    assert result["spinor"] and result["electrons_per_state"] == 1 and result["n_electrons"] == 256
    edges = result["edges"]
    assert edges["inertia_checked"] and edges["n_occupied_states"] == 256  # not 128: one electron per state
    assert abs(edges["homo_eV"] - energies[255]) < 1e-8 and abs(edges["lumo_eV"] - energies[256]) < 1e-8
    assert abs(result["kpm"]["integrated_total"] - 512) < 0.5  # the DOS counts the 512 spinor states
    assert abs(result["kpm"]["states_below_midgap"] - 256) < 2.0
    # the coupling is really there: the valence top is split, against the 3-fold (x2 spin) top without it
    scalar = frame_spectrum(supercell_frame(read_frames(SI8, [0])[0], (2, 2, 2)), n_moments=32, n_vectors=2)
    assert abs(edges["homo_eV"] - scalar["edges"]["homo_eV"]) > 0.05
    # time reversal at Gamma: every spinor level a Kramers pair, HOMO included (the frame is rattled: no other
    # degeneracy); the gap between the pairs stays open
    assert np.abs(energies[0::2] - energies[1::2]).max() < 1e-8 and energies[256] - energies[255] > 1e-3
