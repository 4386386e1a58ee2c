"""Basis generation from UPF files: shells, normalisation, strict locality, splits and rejections."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from slem.basis.confinement import BOHR_ANGSTROM
from slem.basis.errors import BasisGenerationError, MissingAtomDataError, RadiusTooSmallError
from slem.basis.generate import generate_basis
from slem.basis.orbital import read_basis, write_basis
from slem.basis.shells import polarization_l
from slem.basis.split import make_split
from slem.qe.upf import UpfError

PSEUDO = Path("/usr/share/espresso/pseudo")
SI = PSEUDO / "Si.pbe-rrkj.UPF"
C = PSEUDO / "C.pbe-mt_gipaw.UPF"

pytestmark = pytest.mark.skipif(not SI.is_file(), reason="QE pseudopotentials missing")


@pytest.fixture(scope="module")
def si_dzp():
    return generate_basis(SI)


@pytest.fixture(scope="module")
def c_dzp():
    return generate_basis(C, "DZP")


def _overlap(a, b):
    return float(np.trapezoid(a.values * b.values * a.r**2, a.r))


def test_si_dzp_shells_order_and_metadata(si_dzp):
    assert si_dzp.element == "Si"
    assert si_dzp.label == "DZP"
    assert si_dzp.shells == "2s2p1d"
    assert si_dzp.n_orbitals == 13
    assert [(o.l, o.zeta, o.kind) for o in si_dzp.orbitals] == [
        (0, 0, "valence"),
        (0, 1, "split"),
        (1, 0, "valence"),
        (1, 1, "split"),
        (2, 0, "polarization"),
    ]
    params = si_dzp.params
    assert params["preset"] == "DZP" and params["functional"] == "PBE" and params["z_valence"] == 4.0
    assert set(params["radii"]) == {"s", "p", "d"}
    assert params["radii"]["d"] == params["radii"]["p"]  # polarisation shares the p radius
    # Default radii: close to the 4.3 Angstrom measured to give ~50 meV valence bands for bulk Si.
    assert 3.0 < params["radii"]["s"] < params["radii"]["p"] < 4.8
    assert params["eigenvalues"]["s"][0] < params["eigenvalues"]["p"][0] < 0 < params["eigenvalues"]["d"][0]
    assert re.fullmatch(r"[0-9a-f]{32}", si_dzp.upf_md5) and si_dzp.upf_name == SI.name


@pytest.mark.parametrize("fixture", ["si_dzp", "c_dzp"])
def test_orbitals_normalised_and_strictly_zero_beyond_cutoff(fixture, request):
    basis = request.getfixturevalue(fixture)
    for orbital in basis.orbitals:
        assert orbital.norm() == pytest.approx(1.0, abs=1e-10)
        assert orbital.r[0] == 0.0
        np.testing.assert_allclose(np.diff(orbital.r), 0.01, atol=1e-12)
        assert orbital.r[-1] >= basis.cutoff
        beyond = orbital.r >= orbital.cutoff
        assert beyond.any() and np.all(orbital.values[beyond] == 0.0)
        inside = orbital.values[orbital.r < orbital.cutoff]
        if orbital.kind != "split":  # splits end with zero value and slope at r_s instead
            # Soft confinement: the function has already decayed smoothly before the wall.
            assert np.max(np.abs(inside[-5:])) < 1e-2 * np.max(np.abs(inside))
        if orbital.l > 0:
            assert orbital.values[0] == pytest.approx(0.0, abs=1e-12)


def test_energy_shift_sets_the_confined_eigenvalue(si_dzp):
    shift = si_dzp.params["energy_shift_ev"]
    free = si_dzp.params["free_eigenvalues"]
    assert si_dzp.params["eigenvalues"]["s"][0] - free["3S"] == pytest.approx(shift, abs=1e-3)
    assert si_dzp.params["eigenvalues"]["p"][0] - free["3P"] == pytest.approx(shift, abs=1e-3)
    tighter = generate_basis(SI, "SZ", energy_shift_ev=4 * shift)
    assert tighter.params["radii"]["p"] < si_dzp.params["radii"]["p"] - 0.3


def test_split_zeta_matches_siesta_definition(si_dzp):
    for l in (0, 1):
        first, second = [o for o in si_dzp.orbitals if o.l == l]
        r_s = second.cutoff
        assert r_s < first.cutoff
        tail = np.trapezoid(np.where(first.r >= r_s, first.values**2 * first.r**2, 0.0), first.r)
        assert tail == pytest.approx(si_dzp.params["split_norm"], abs=5e-3)
        # phi1 - phi2 is continuous with zero value and slope at r_s
        near = (second.r < r_s) & (second.r > r_s - 0.05)
        assert np.max(np.abs(second.values[near])) < 0.02 * np.max(np.abs(second.values))
        s12 = _overlap(first, second)
        assert 0.2 < abs(s12) < 0.99  # distinct, linearly independent, not orthogonal by construction


def test_split_polynomial_matches_value_and_slope():
    f = lambda r: np.exp(-r) * r
    df = lambda r: np.exp(-r) * (1 - r)
    split = make_split(1, f, df, 8.0, 0.15)
    h = 1e-6
    phi2 = lambda r: r**split.l * (split.a - split.b * r**2)
    assert phi2(split.r_s) == pytest.approx(f(split.r_s), rel=1e-10)
    assert (phi2(split.r_s + h) - phi2(split.r_s - h)) / (2 * h) == pytest.approx(df(split.r_s), rel=1e-6)


def test_explicit_radii_and_tz2p():
    basis = generate_basis(SI, "TZ2P", radii={0: 4.0, 1: 4.5})
    assert basis.shells == "3s3p2d" and basis.n_orbitals == 22
    assert basis.params["radii"] == pytest.approx({"s": 4.0, "p": 4.5, "d": 4.5})
    assert basis.params["energy_shift_ev"] is None
    assert [o.kind for o in basis.orbitals if o.l == 2] == ["polarization", "split"]
    cut = [o.cutoff for o in basis.orbitals if o.l == 1]
    assert cut[0] == pytest.approx(4.5) and cut[0] > cut[1] > cut[2]  # third zeta: larger split norm
    single = generate_basis(SI, "SZ", radii=3.8)
    assert single.shells == "1s1p" and single.cutoff == pytest.approx(3.8)


def test_carbon_dzp(c_dzp):
    assert c_dzp.element == "C" and c_dzp.shells == "2s2p1d"
    assert c_dzp.params["configuration"] == {"2S": 2.0, "2P": 1.5}  # unoccupied 3S/3P are not valence
    assert c_dzp.cutoff < 3.5


def test_write_read_roundtrip(tmp_path, si_dzp, c_dzp):
    path = write_basis(tmp_path / "basis.h5", {"Si": si_dzp, "C": c_dzp})
    back = read_basis(path)
    assert back["Si"].shells == "2s2p1d" and back["C"].params["radii"] == c_dzp.params["radii"]
    np.testing.assert_array_equal(back["Si"].orbitals[3].values, si_dzp.orbitals[3].values)


def test_polarization_shell_choice():
    assert polarization_l({0, 1}) == (2, 1)
    assert polarization_l({0}) == (1, 0)
    assert polarization_l({0, 2}) == (1, 0)  # transition metal: p polarises s


def test_rejects_ultrasoft():
    with pytest.raises(UpfError, match="norm-conserving"):
        generate_basis(PSEUDO / "Si.pbe-nl-rrkjus_psl.1.0.0.UPF")


def test_rejects_too_small_radius():
    with pytest.raises(RadiusTooSmallError, match=r"l=0.*not bound.*at least [0-9.]+ Angstrom") as info:
        generate_basis(SI, radii=1.0)
    assert isinstance(info.value, ValueError)


def test_rejects_bad_settings():
    with pytest.raises(BasisGenerationError, match="preset"):
        generate_basis(SI, "QZ")
    with pytest.raises(BasisGenerationError, match="energy shift"):
        generate_basis(SI, energy_shift_ev=0.0)
    with pytest.raises(BasisGenerationError, match="positive"):
        generate_basis(SI, radii={1: -2.0})


def test_rejects_upf_without_occupations(tmp_path):
    text = SI.read_text()
    no_occ = tmp_path / "Si.noocc.UPF"
    no_occ.write_text(re.sub(r'occupation="[^"]*"', 'occupation="0.0"', text))
    with pytest.raises(MissingAtomDataError, match="occupation"):
        generate_basis(no_occ)
    no_chi = tmp_path / "Si.nochi.UPF"
    no_chi.write_text(re.sub(r"<PP_PSWFC>.*</PP_PSWFC>", "<PP_PSWFC>\n</PP_PSWFC>", text, flags=re.S))
    with pytest.raises(MissingAtomDataError, match="PP_CHI"):
        generate_basis(no_chi)


def test_radii_are_recorded_in_angstrom(si_dzp):
    s_radius = si_dzp.params["radii"]["s"]
    assert si_dzp.orbitals[0].cutoff == pytest.approx(s_radius)
    assert si_dzp.params["orbitals"][0]["r_c"] == pytest.approx(s_radius)
    assert s_radius / BOHR_ANGSTROM > 5.0  # bohr


def test_rejects_radius_for_a_shell_the_basis_lacks():
    with pytest.raises(BasisGenerationError, match=r"l=\[3\]"):
        generate_basis(SI, "DZP", radii={1: 4.0, 3: 4.0})
