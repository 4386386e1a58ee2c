"""slem spectrum on a spin-polarised frame (H_up, H_down, one S): both channels filled to one Fermi level, the
shift-invert edges against dense eigh of each channel, and the moment from the per-channel KPM counts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg

from slem.bands.bloch import operator_pair
from slem.data.frame import Frame, read_frames
from slem.data.supercell import supercell_frame
from slem.spectrum import BlochPattern, frame_spectrum
from slem.spectrum.analysis import SpectrumError

SI8 = Path(__file__).parents[1] / "data" / "si8_frames.h5"
# the exchange splitting, 2.6x the 1.17 eV gap of the Si64 cell: H_up = H + (delta/2) S and H_down =
# H - (delta/2) S move every level by +-delta/2, and a random onsite part on H_up makes the channels differ in
# shape too
SPLIT_EV = 3.0


def _channel_levels(frame: Frame, name: str) -> np.ndarray:
    single = dataclasses.replace(frame, operators={"H": frame.operators[name], "S": frame.operators["S"]})
    h, s = operator_pair(single, np.zeros((1, 3)))
    return scipy.linalg.eigh(h[0], s[0], eigvals_only=True)


@pytest.fixture(scope="module")
def si64_spin() -> Frame:
    frame = read_frames(SI8, [0])[0]
    h, s = frame.operators["H"], frame.operators["S"]
    rng = np.random.default_rng(7)
    onsite = np.zeros_like(h)
    for p, ((i, j), r) in enumerate(zip(frame.pairs.tolist(), frame.cell_shifts.tolist(), strict=True)):
        if i == j and not any(r):
            block = rng.normal(0.0, 0.05, (4, 4))
            start = frame.block_offsets[p]
            onsite[start : start + 16] = (block + block.T).ravel()
    operators = {"H_up": h + 0.5 * SPLIT_EV * s + onsite, "H_down": h - 0.5 * SPLIT_EV * s, "S": s}
    return supercell_frame(dataclasses.replace(frame, operators=operators), (2, 2, 2))


def test_both_channels_fill_to_one_fermi_level(si64_spin):
    result = frame_spectrum(si64_spin, n_moments=256, n_vectors=6)
    up, down = _channel_levels(si64_spin, "H_up"), _channel_levels(si64_spin, "H_down")
    both = np.sort(np.concatenate([up, down]))
    assert result["spin_channels"] == ["H_up", "H_down"] and result["electrons_per_state"] == 1
    assert result["n_orbitals"] == 512 and result["n_electrons"] == 256
    edges = result["edges"]
    # one electron per channel state: the HOMO is state 256 of the two channels' 512, not state 128 of one
    assert edges["inertia_checked"] and edges["n_occupied_states"] == 256
    assert abs(edges["homo_eV"] - both[255]) < 1e-8 and abs(edges["lumo_eV"] - both[256]) < 1e-8
    # the splitting exceeds the gap: the channels hold unequal numbers of electrons (a moment)
    n_up = int((up <= both[255] + 1e-9).sum())
    moment = n_up - (256 - n_up)
    assert moment < -4
    # exact at Gamma from the inertia of each channel at the level between states 256 and 257
    assert (edges["occupied_up"], edges["occupied_down"], edges["magnetization_mub"]) == (
        n_up,
        256 - n_up,
        moment,
    )
    # the KPM counts at that level agree within their stochastic error (6 vectors: about 3 states)
    kpm = result["kpm"]
    assert abs(kpm["integrated_total"] - 512) < 0.5
    sigma = kpm["magnetization_error_mub"]
    assert 0 < sigma < 6 and abs(kpm["magnetization_mub"] - moment) < 4 * sigma
    assert abs(kpm["states_below_level_up"] + kpm["states_below_level_down"] - 256) < 4 * sigma
    # per-channel DOS: each integrates to its 256 orbitals, and they add up to the total
    energies = result["energies_eV"]
    for name in ("dos_up_states_per_eV", "dos_down_states_per_eV"):
        assert abs(np.trapezoid(result[name], energies) - 256) < 1.0
    total = result["dos_up_states_per_eV"] + result["dos_down_states_per_eV"]
    assert np.abs(total - result["dos_states_per_eV"]).max() < 1e-9 * np.abs(total).max()


def test_channels_share_one_overlap_and_keep_their_own_h(si64_spin):
    hs, s = BlochPattern(si64_spin).channels((0.1, 0.2, -0.3))
    assert len(hs) == 2 and s.shape == (256, 256)
    dense_up = operator_pair(
        dataclasses.replace(
            si64_spin, operators={"H": si64_spin.operators["H_up"], "S": si64_spin.operators["S"]}
        ),
        np.array([[0.1, 0.2, -0.3]]),
    )[0][0]
    assert np.abs(hs[0].toarray() - dense_up).max() < 1e-12
    no_overlap = {name: si64_spin.operators[name] for name in ("H_up", "H_down")}
    with pytest.raises(SpectrumError, match="needs H and S"):
        frame_spectrum(dataclasses.replace(si64_spin, operators=no_overlap))


def test_a_degenerate_fermi_multiplet_is_filled_equally(si64_spin):
    """Identical channels make every level a pair (one up, one down state): with 255 electrons states 255
    and 256 are that pair, and no level between them exists. The multiplet holds the one electron left,
    half in each channel (M = 0, integer fillings -1 or +1); with 256 the pair is full and the counts are
    integers."""
    same = {"H_up": si64_spin.operators["H_down"], "H_down": si64_spin.operators["H_down"],
            "S": si64_spin.operators["S"]}
    frame = dataclasses.replace(si64_spin, operators=same)
    levels = _channel_levels(frame, "H_down")
    odd = frame_spectrum(frame, n_electrons=255, n_moments=64, n_vectors=2)["edges"]
    assert abs(odd["homo_eV"] - levels[127]) < 1e-8 and abs(odd["lumo_eV"] - levels[127]) < 1e-8
    assert odd["occupied_up"] == odd["occupied_down"] == 127.5 and odd["magnetization_mub"] == 0.0
    assert odd["magnetization_range_mub"] == [-1.0, 1.0]
    multiplet = odd["fermi_multiplet"]
    assert (multiplet["states_up"], multiplet["states_down"], multiplet["electrons"]) == (1, 1, 1.0)
    even = frame_spectrum(frame, n_electrons=256, n_moments=64, n_vectors=2)["edges"]
    assert (even["occupied_up"], even["occupied_down"], even["magnetization_mub"]) == (128, 128, 0)
    assert "fermi_multiplet" not in even and abs(even["lumo_eV"] - levels[128]) < 1e-8
