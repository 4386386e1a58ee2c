"""All two-centre ingredients of H and S in real space, per pair of atoms (bohr, Ry).

* S and the kinetic energy T: exact two-centre integrals of the basis orbitals (twocentre.py);
* <phi|beta>: the same with the UPF's KB projectors; the KB term itself is assembled from these
  blocks (threecentre.py);
* the local potential: quadrature on the pw.x FFT grid, tile by tile (local_potential.py).

The radial Fourier transforms run to Q_MAX, far beyond the wavefunction cutoff, so the orbitals
are the basis file's (strictly confined) functions rather than their plane-wave truncations.
"""

from __future__ import annotations

import numpy as np

from slem.basis.orbital import ElementBasis
from slem.qe.relativistic import spin_orbit_weights
from slem.qe.upf import Upf
from slem.spinor import real_generators

from .grid_orbitals import GridOrbitals
from .local_potential import local_potential_blocks
from .radial import BOHR, orbital_transforms, projector_transforms
from .twocentre import TwoCentreTable

Q_MAX = 25.0  # bohr^-1; the kinetic tail beyond is ~1e-5 Ry (0.1 meV) for the DZP bases
# q step 0.05 bohr^-1: every block within 1e-9 eV (H) and 1e-13 (S) of a 0.02 step (SiC, Si2 DZP),
# at ~60% of its table cost; the longest bond of the tables oscillates with period ~0.3 bohr^-1
Q_POINTS = 501
REACH_BATCH = 8  # separations per step of the KB-range scan

Key = tuple[int, int, int, int, int]


def expanded_dion(upf: Upf) -> np.ndarray:
    """D_ij of the UPF (Ry) over (beta, m), block-diagonal in l and m."""
    index = [(b, beta.l, m) for b, beta in enumerate(upf.betas) for m in range(2 * beta.l + 1)]
    d = np.zeros((len(index), len(index)))
    for a, (b1, l1, m1) in enumerate(index):
        for c, (b2, l2, m2) in enumerate(index):
            if l1 == l2 and m1 == m2:
                d[a, c] = upf.dij[b1, b2]
    return d


def expanded_spin_orbit_dion(upf: Upf) -> np.ndarray:
    """The spin-orbit KB matrices K_a (Ry), a = x, y, z, over (beta, m) of a fully relativistic UPF: its
    operator is i sum_a |beta> K_a <beta| (x) sigma_a, with K_a = D_ij w_i A_a (L_a = i A_a on the real
    harmonics, w_i = +-1/(2l+1), slem.qe.relativistic). Real and antisymmetric in m."""
    index = [(b, beta.l, m) for b, beta in enumerate(upf.betas) for m in range(2 * beta.l + 1)]
    weights = spin_orbit_weights(upf)
    k = np.zeros((3, len(index), len(index)))
    for a, (b1, l1, m1) in enumerate(index):
        for c, (b2, l2, m2) in enumerate(index):
            if l1 == l2 and l1 > 0:
                k[:, a, c] = upf.dij[b1, b2] * weights[b1] * real_generators(l1)[:, m1, m2]
    return k


class RealSpaceOperators:
    """Radial tables of every species (keyed by the SCF's species labels) and the pair blocks."""

    def __init__(self, bases: dict[str, ElementBasis], upfs: dict[str, Upf], max_distance: float) -> None:
        self.q = np.linspace(0.0, Q_MAX, Q_POINTS)
        self.labels = list(bases)
        self.orbitals = {
            s: [(o.l, f) for o, f in zip(b.orbitals, orbital_transforms(b.orbitals, self.q), strict=True)]
            for s, b in bases.items()
        }
        self.betas = {
            s: [(b.l, f) for b, f in zip(u.betas, projector_transforms(u, self.q), strict=True)]
            for s, u in upfs.items()
        }
        self.grid_orbitals = {s: GridOrbitals(b) for s, b in bases.items()}
        self.cutoff = {s: b.cutoff / BOHR for s, b in bases.items()}
        self.beta_radius = {s: u.max_projector_radius for s, u in upfs.items()}
        self.dion = {s: expanded_dion(u) for s, u in upfs.items()}
        self._max_distance = float(max_distance)
        self._bessel: dict = {}
        l_orbital = max(l for o in self.orbitals.values() for l, _ in o)
        l_beta = max((l for b in self.betas.values() for l, _ in b), default=0)
        self._bessel_lmax = max(2 * l_orbital, l_orbital + l_beta)
        self._tables: dict = {}

    def _table(self, kind: str, a: str, b: str) -> TwoCentreTable:
        key = (kind, a, b)
        if key not in self._tables:
            right = self.betas[b] if kind == "P" else self.orbitals[b]
            power = 2 if kind == "T" else 0
            self._tables[key] = TwoCentreTable(
                self.orbitals[a], right, self.q, power, self._max_distance, self._bessel, self._bessel_lmax
            )
        return self._tables[key]

    def two_centre(
        self, kind: str, keys: list[Key], cell: np.ndarray, positions: np.ndarray, symbols: list[str]
    ) -> dict[Key, np.ndarray]:
        """Blocks of S ('S'), T in Ry ('T') or <phi_i|beta_c> ('P') for pair keys (i, j, R)."""
        out: dict[Key, np.ndarray] = {}
        groups: dict[tuple[str, str], list[Key]] = {}
        for key in keys:
            groups.setdefault((symbols[key[0]], symbols[key[1]]), []).append(key)
        for (a, b), group in groups.items():
            arr = np.array(group, dtype=np.int64)
            bonds = positions[arr[:, 1]] + arr[:, 2:] @ cell - positions[arr[:, 0]]
            if kind != "P" and self.labels.index(a) > self.labels.index(b):
                # <f_a|O|f_b(. - d)> = <f_b|O|f_a(. + d)>^T: one table serves both orders
                blocks = self._table(kind, b, a).blocks(-bonds).transpose(0, 2, 1)
            else:
                blocks = self._table(kind, a, b).blocks(bonds)
            for key, block in zip(group, blocks, strict=True):
                out[key] = block
        return out

    def local(
        self, keys: list[Key], cell: np.ndarray, positions: np.ndarray, symbols: list[str], v: np.ndarray
    ) -> dict[Key, np.ndarray]:
        """Blocks of the local potential V (Ry, pp.x grid) for pair keys (with their mirrors)."""
        return local_potential_blocks(cell, positions, symbols, v, self.grid_orbitals, keys)

    def nonlocal_reach(self, a: str, b: str, tolerance: float, step: float = 0.1 / BOHR) -> float:
        """Smallest extra distance x (bohr, a multiple of ``step``) beyond r_a + r_b from which the KB
        term between species a and b stays below ``tolerance`` (Ry) for any single third atom.

        The third atom is scanned along and around the bond axis, where the two <phi|beta> tails
        meet; the worst case over positions bounds every real geometry."""
        r_a, r_b = self.cutoff[a], self.cutoff[b]
        extras = np.arange(0.0, 2 * max(self.beta_radius.values()) + step, step)
        # Extras are scanned in batches, shortest first: the answer is usually among the first few.
        for batch in np.array_split(np.arange(len(extras)), -(-len(extras) // REACH_BATCH)):
            worst = self._worst_nonlocal(a, b, r_a + r_b + extras[batch])
            below = np.flatnonzero(worst < tolerance)
            if len(below):
                return float(extras[batch[below[0]]])
        return float(extras[-1])

    def _worst_nonlocal(self, a: str, b: str, separations: np.ndarray) -> np.ndarray:
        """Largest |KB element| between a and b at each separation over the scanned third atoms."""
        r_a, r_b = self.cutoff[a], self.cutoff[b]
        worst = np.zeros(len(separations))
        for c in self.labels:
            r_c = self.beta_radius[c]
            if not r_c or not self.betas[c]:
                continue
            ring = np.array(
                [[o * np.cos(p), o * np.sin(p)] for o in np.linspace(0.0, r_c, 4) for p in (0, 1.3)]
            )
            points, separation, owner = [], [], []
            for n, d in enumerate(separations):
                axial = np.linspace(d - r_b - r_c, r_a + r_c, 40)
                pts = np.column_stack([np.tile(ring, (len(axial), 1)), np.repeat(axial, len(ring))])
                points.append(pts)
                separation.append(np.full(len(pts), d))
                owner.append(np.full(len(pts), n))
            pts, d, owner = np.concatenate(points), np.concatenate(separation), np.concatenate(owner)
            left = self._table("P", a, c).blocks(pts)
            right = self._table("P", b, c).blocks(pts - np.column_stack([0 * d, 0 * d, d]))
            term = np.abs((left @ self.dion[c]) @ right.transpose(0, 2, 1)).max(axis=(1, 2))
            np.maximum.at(worst, owner, term)
        return worst
