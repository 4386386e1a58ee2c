"""The screened pseudo-atom solver: free eigenstates against PP_CHI and ld1.x, and the xc functionals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from slem.basis.atom import PseudoAtom
from slem.basis.confinement import HARTREE_EV, SoftConfinement
from slem.basis.xc import UnsupportedFunctionalError, _ec_pw92, _energy_density, parse_functional, xc_terms
from slem.qe.upf import read_upf

PSEUDO = Path("/usr/share/espresso/pseudo")
FREE_RADIUS = 12.0 / 0.529177210903

pytestmark = pytest.mark.skipif(
    not (PSEUDO / "Si.pbe-rrkj.UPF").is_file(), reason="QE pseudopotentials missing"
)

# Pseudo-atom eigenvalues (eV) printed by QE 6.7's ld1.x in test mode (&test, configts = the PP_CHI
# occupations) for the same UPF files: "e PS (Ry)" column times 13.6057.
LD1_EIGENVALUES = {
    "Si.pbe-rrkj.UPF": {(0, 0): -0.79140 * 13.605693, (1, 0): -0.30060 * 13.605693},
    "C.pbe-mt_gipaw.UPF": {(0, 0): -1.42413 * 13.605693, (1, 0): -0.78796 * 13.605693},
    "Si.pz-vbc.UPF": {(0, 0): -0.79663 * 13.605693, (1, 0): -0.30705 * 13.605693},
}


def _free_atom(name: str) -> PseudoAtom:
    upf = read_upf(PSEUDO / name)
    atom = PseudoAtom(upf, parse_functional(upf.functional))
    atom.scf(FREE_RADIUS)
    return atom


@pytest.mark.parametrize("name", sorted(LD1_EIGENVALUES))
def test_free_atom_reproduces_ld1_and_pp_chi(name):
    atom = _free_atom(name)
    for key, reference in LD1_EIGENVALUES[name].items():
        assert atom.free_energies[key] * HARTREE_EV == pytest.approx(reference, abs=2e-3)
    upf = atom.upf
    occupied = [c for c in upf.chi if c.occupation > 0]
    for state, chi in zip(atom.states, occupied, strict=True):
        u = atom.free_channels[state.l].radial(upf.r, state.index) * upf.r
        overlap = np.sum(upf.rab * u * chi.values) / np.sqrt(
            np.sum(upf.rab * u**2) * np.sum(upf.rab * chi.values**2)
        )
        assert overlap > 0.9999, (name, state.label, overlap)


def test_confined_states_of_one_channel_are_orthonormal():
    atom = _free_atom("C.pbe-mt_gipaw.UPF")
    r_c = 3.0 / 0.529177210903
    channel = atom.solve(0, r_c, n_states=3, confinement=SoftConfinement())
    r = np.linspace(0.0, r_c, 6001)
    values = np.stack([channel.radial(r, k) for k in range(3)])
    gram = np.trapezoid(values[:, None, :] * values[None, :, :] * r**2, r, axis=-1)
    np.testing.assert_allclose(gram, np.eye(3), atol=1e-6)
    assert np.all(np.diff(channel.energies) > 0)
    # Confinement can only raise the eigenvalue above the free atom's.
    assert channel.energies[0] > atom.free_energies[(0, 0)]


@pytest.mark.parametrize(
    "text, name",
    [
        ("SLA PW PBE PBE", "PBE"),
        ("SLA PW PBX PBC", "PBE"),
        ("PBE", "PBE"),
        ("SLA PZ NOGX NOGC", "LDA-PZ"),
        ("PZ", "LDA-PZ"),
        ("SLA PW NOGX NOGC", "LDA-PW92"),
    ],
)
def test_parse_functional(text, name):
    assert parse_functional(text).name == name


def test_unknown_functional_is_rejected():
    with pytest.raises(UnsupportedFunctionalError, match="BLYP"):
        parse_functional("SLA LYP B88 BLYP")
    assert issubclass(UnsupportedFunctionalError, ValueError)


def test_pbe_reduces_to_pw92_lda_without_gradient_and_derivatives_match_finite_differences():
    n = np.array([1e-4, 1e-2, 0.3, 5.0])
    pbe, lda = parse_functional("PBE"), parse_functional("SLA PW NOGX NOGC")
    ex = -0.75 * (3.0 / np.pi) ** (1.0 / 3.0) * n ** (1.0 / 3.0)
    np.testing.assert_allclose(_energy_density(pbe, n, np.zeros_like(n)), n * (ex + _ec_pw92(n)), rtol=1e-12)
    # PW92 at r_s = 1 and 10 (Perdew-Wang 1992, Table: -0.0598, -0.0186 Ha)
    rs = np.array([1.0, 10.0])
    np.testing.assert_allclose(_ec_pw92(3.0 / (4.0 * np.pi * rs**3)), [-0.0598, -0.0186], atol=2e-4)
    dn = np.array([-1e-4, -0.05, -0.4, -3.0])
    for functional in (pbe, lda):
        f, fn, g = xc_terms(functional, n, dn)
        h = 1e-6 * n
        fd = (_energy_density(functional, n + h, dn**2) - _energy_density(functional, n - h, dn**2)) / (2 * h)
        np.testing.assert_allclose(fn, fd, rtol=1e-6)
        if functional.gga:
            hs = 1e-6 * dn**2
            fds = (
                _energy_density(functional, n, dn**2 + hs) - _energy_density(functional, n, dn**2 - hs)
            ) / (2 * hs)
            np.testing.assert_allclose(g, 2.0 * fds * dn, rtol=1e-5)
            assert np.all(f < 0)
        else:
            assert not np.any(g)


def test_single_blas_thread_restores_the_thread_count():
    from slem.threads import _openblas_controls, single_blas_thread

    controls = _openblas_controls()
    if not controls:
        pytest.skip("no OpenBLAS loaded")
    before = [getter() for _, getter in controls]
    with single_blas_thread():
        assert [getter() for _, getter in controls] == [1] * len(controls)
    assert [getter() for _, getter in controls] == before
