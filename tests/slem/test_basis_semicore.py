"""Semicore, valence and polarisation shells of PseudoDojo (ONCVPSP) pseudopotentials."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from slem.basis.atom import ValenceState
from slem.basis.errors import BasisGenerationError
from slem.basis.generate import generate_basis
from slem.basis.ghosts import GhostStateError, check_upf_levels
from slem.basis.shells import plan_shells

DOJO = Path(__file__).parents[1] / "data" / "pseudos" / "pseudodojo-nlcc"


def _plan(element: str, spec: list[tuple[str, int, float]]):
    """spec: (label, l, free eigenvalue in eV); ranks within l follow the list order."""
    ranks: dict[int, int] = {}
    states, energies = [], {}
    for label, l, energy in spec:
        index = ranks.get(l, 0)
        ranks[l] = index + 1
        states.append(ValenceState(label, l, index, 1.0))
        energies[(l, index)] = energy
    plan = plan_shells(element, states, energies)
    return [s.label for s in plan.semicore], [s.label for s in plan.valence], plan


def test_semicore_rule_on_measured_free_atom_levels():
    # free pseudo-atom eigenvalues (eV) of the PseudoDojo v0.4 files
    semicore, valence, plan = _plan("Ga", [("3D", 2, -19.1), ("4S", 0, -8.9), ("4P", 1, -2.5)])
    assert (semicore, valence) == (["3D"], ["4S", "4P"])
    assert (plan.polarization_l, plan.polarization_index) == (2, 1)  # 4d above the 3d
    semicore, valence, plan = _plan(
        "Mo", [("4S", 0, -64.4), ("4P", 1, -38.4), ("4D", 2, -3.7), ("5S", 0, -4.0)]
    )
    assert (semicore, valence) == (["4S", "4P"], ["4D", "5S"])
    assert (plan.polarization_l, plan.polarization_parent, plan.polarization_index) == (1, 0, 1)  # 5p on 5s
    # shallow filled d shells stay valence (Cu 3d 0.4 eV, Zn 3d 4.1 eV below the top)
    _, valence, _ = _plan("Cu", [("3S", 0, -114.7), ("3P", 1, -72.1), ("3D", 2, -5.0), ("4S", 0, -4.6)])
    assert valence == ["3D", "4S"]
    # a first-row 2s is valence although it lies 14.9 eV below 2p: same principal quantum number
    semicore, valence, plan = _plan("O", [("2S", 0, -23.9), ("2P", 1, -9.0)])
    assert (semicore, valence, plan.polarization_l) == ([], ["2S", "2P"], 2)
    # W-fsp: the 4f is semicore, so the basis is polarised with p, not g
    semicore, _, plan = _plan(
        "W", [("4F", 3, -33.2), ("5S", 0, -79.1), ("5P", 1, -43.2), ("5D", 2, -4.5), ("6S", 0, -5.7)]
    )
    assert semicore == ["4F", "5S", "5P"] and plan.polarization_l == 1


def test_a_basis_that_needs_g_is_refused_with_the_reason():
    with pytest.raises(BasisGenerationError, match="g.*orbitals stop at f.*SZ, DZ"):
        _plan("X", [("5P", 1, -5.0), ("4F", 3, -4.0)])


def test_pseudodojo_si_dzp():
    basis = generate_basis(DOJO / "Si.upf", preset="DZP")
    assert basis.shells == "2s2p1d"
    assert basis.params["shells"]["semicore"] == []
    for orbital in basis.orbitals:
        assert np.all(np.isfinite(orbital.values))
        assert orbital.norm() == pytest.approx(1.0, abs=1e-6)
        assert np.all(orbital.values[orbital.r >= orbital.cutoff] == 0.0)


def test_ga_d_gets_a_single_zeta_3d_and_a_4d_polarisation():
    basis = generate_basis(DOJO / "Ga-d.upf", preset="DZP")
    assert basis.shells == "2s2p2d"
    d = [o for o in basis.orbitals if o.l == 2]
    assert [o.kind for o in d] == ["semicore", "polarization"]
    records = {r["state"]: r for r in basis.params["orbitals"]}
    # the 3d is compact (its own energy-shift radius); the 4d takes the 4p radius
    assert records["3D"]["r_c"] < 2.5 < records["d-pol"]["r_c"] == pytest.approx(basis.params["radii"]["p"])
    # the polarisation state has one radial node more than the 3d (it is the channel's second state)
    pol = d[1].values[d[1].r < d[1].cutoff][1:]
    assert np.count_nonzero(np.diff(np.sign(pol[np.abs(pol) > 1e-8]))) == 1
    assert basis.params["polarization"] == {
        "l": 2,
        "r_c": pytest.approx(records["d-pol"]["r_c"]),
        "state_index": 1,
    }


def test_a_pseudopotential_with_a_ghost_state_is_refused_before_any_dft():
    ghost = DOJO.parent / "broken" / "Si-ghost.upf"
    with pytest.raises(
        GhostStateError, match=r"3S -25\.\d+ eV vs -10\.81 eV.*ghost state.*another pseudopotential"
    ):
        generate_basis(ghost, preset="DZP")
    with pytest.raises(GhostStateError):
        check_upf_levels(ghost)
    # sound files: the pseudo-atom reproduces ONCVPSP's own levels to 0.01 eV, semicore shells included
    for name in ("Si.upf", "Ga-d.upf", "As-d.upf", "N.upf"):
        levels = check_upf_levels(DOJO / name)
        assert levels and max(abs(a - b) for a, b in levels.values()) < 0.02, levels
