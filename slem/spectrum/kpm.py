"""Density of states of H c = E S c by the kernel polynomial method (KPM), in time and memory linear in atoms.

The moments are mu_m = Tr T_m(A~), A~ = (S^{-1} H - c) / w with [c - w, c + w] just wider than the spectrum
(Lanczos bounds, padded). S is handled without a Loewdin orthogonalisation: S^{-1} H is self-adjoint in the
S inner product, so with random vectors r = S^{-1/2} z (z Rademacher, or random phases for complex H(k);
S^{-1/2} z by a Chebyshev expansion in S, matrix-vector products only)

    E[r^H S T_m(A~) r] = Tr T_m(A~),    mu_2m = 2 <v_m, v_m>_S - mu_0,    mu_2m+1 = 2 <v_m+1, v_m>_S - mu_1

with v_m = T_m(A~) r, which is the ordinary stochastic KPM of S^{-1/2} H S^{-1/2} (mu_0 = z^H z = n exactly)
at half the number of steps. Each step is one product with H and one solve with S (``OverlapSolver``). The
Jackson kernel damps the Gibbs oscillations; the DOS integrates to the number of orbitals, and the
integrated DOS up to E_F to half the electron count (spin-degenerate states).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .overlap import OverlapSolver, inverse_sqrt_apply, lanczos_bounds


class KpmError(RuntimeError):
    """The Chebyshev recursion left the spectral interval (bounds too tight) or the input is unusable."""


def jackson_kernel(n_moments: int) -> np.ndarray:
    m = np.arange(n_moments)
    q = np.pi / (n_moments + 1)
    return ((n_moments - m + 1) * np.cos(q * m) + np.sin(q * m) / np.tan(q)) / (n_moments + 1)


@dataclass
class KpmMoments:
    """Chebyshev moments (per random vector) of the spectrum on [centre - half_width, centre + half_width]."""

    per_vector: np.ndarray  # (n_moments, n_vectors)
    centre: float
    half_width: float
    n_orbitals: int
    spectrum: tuple[float, float]  # Lanczos estimates of the lowest and highest eigenvalue (before padding)
    info: dict = field(default_factory=dict)

    @property
    def moments(self) -> np.ndarray:
        return self.per_vector.mean(axis=1)

    @property
    def n_moments(self) -> int:
        return self.per_vector.shape[0]

    @property
    def n_vectors(self) -> int:
        return self.per_vector.shape[1]

    @property
    def resolution(self) -> float:
        """Jackson kernel width in eV at the centre of the interval (pi w / M); it narrows towards its ends
        as sqrt(1 - x^2)."""
        return float(np.pi * self.half_width / self.n_moments)

    def _x(self, energies) -> np.ndarray:
        return (np.asarray(energies, dtype=np.float64) - self.centre) / self.half_width

    def dos(self, energies, moments: np.ndarray | None = None) -> np.ndarray:
        """Density of states (states/eV, spin not counted) at ``energies``; integrates to n_orbitals."""
        mu = (self.moments if moments is None else moments) * jackson_kernel(self.n_moments)
        x = self._x(energies)
        # the interval's ends lie beyond the spectrum (padded); there 1/sqrt(1 - x^2) would only blow up
        # the series' rounding error
        inside = np.abs(x) < 1 - 1e-10
        xs = np.clip(x, -1 + 1e-10, 1 - 1e-10)
        theta = np.arccos(xs)
        series = mu[0] + 2 * np.cos(np.outer(theta, np.arange(1, self.n_moments))) @ mu[1:]
        return np.where(inside, series / (np.pi * np.sqrt(1 - xs**2) * self.half_width), 0.0)

    def integrated(self, energies, moments: np.ndarray | None = None) -> np.ndarray:
        """Number of states below each energy (the integral of ``dos``), spin not counted."""
        mu = (self.moments if moments is None else moments) * jackson_kernel(self.n_moments)
        theta = np.arccos(np.clip(self._x(energies), -1, 1))
        m = np.arange(1, self.n_moments)
        return mu[0] * (1 - theta / np.pi) - (2 / np.pi) * (np.sin(np.outer(theta, m)) @ (mu[1:] / m))

    def integrated_error(self, energies) -> np.ndarray:
        """Standard error of ``integrated`` from the spread over random vectors."""
        if self.n_vectors < 2:
            return np.full(np.shape(energies), np.nan)
        each = np.stack([self.integrated(energies, self.per_vector[:, r]) for r in range(self.n_vectors)])
        return each.std(axis=0, ddof=1) / np.sqrt(self.n_vectors)

    def level(self, n_states: float, points: int = 4001) -> float:
        """Energy where the integrated DOS reaches ``n_states`` (E_F for n_states = N_electrons / 2).

        Within the energies where the integrated DOS is within the stochastic error (3 standard errors,
        at least one state) of n_states, the one with the lowest DOS: mid-gap for an insulator, whose
        plateau the noise shifts by a few states and would otherwise put the crossing at a band edge."""
        grid = np.linspace(self.centre - self.half_width, self.centre + self.half_width, points)
        counts = self.integrated(grid)
        if counts[-1] < n_states or counts[0] > n_states:
            raise KpmError(
                f"the integrated DOS ({counts[0]:.1f} to {counts[-1]:.1f}) never reaches {n_states}"
            )
        crossing = int(np.argmax(counts >= n_states))
        error = self.integrated_error(grid)
        tolerance = np.maximum(1.0, 3 * np.nan_to_num(error, nan=0.0))
        near = np.abs(counts - n_states) <= tolerance
        if not near[crossing]:
            return float(grid[crossing])
        # the run of near energies around the crossing
        lo = crossing - int(np.argmin(near[crossing::-1])) + 1 if not near[: crossing + 1].all() else 0
        hi = crossing + int(np.argmin(near[crossing:])) if not near[crossing:].all() else points
        run = np.arange(lo, hi)
        return float(grid[run[np.argmin(self.dos(grid[run]))]])


def random_vectors(n: int, n_vectors: int, complex_: bool, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if complex_:
        return np.exp(2j * np.pi * rng.random((n, n_vectors)))
    return rng.choice(np.array([-1.0, 1.0]), size=(n, n_vectors))


def kpm_moments(
    h,
    s=None,
    n_moments: int = 256,
    n_vectors: int = 8,
    seed: int = 0,
    overlap: OverlapSolver | None = None,
    bounds: tuple[float, float] | None = None,
    pad: float = 0.01,
    bound_steps: int = 40,
    overlap_bounds: tuple[float, float] | None = None,
) -> KpmMoments:
    """Stochastic Chebyshev moments of the pencil (H, S) (S = None: identity).

    ``bounds``: the lowest and highest eigenvalue if known (else ``bound_steps`` Lanczos steps, widened by
    the Ritz residuals); widened again by ``pad`` of the width on each side. ``overlap``: a prepared
    ``OverlapSolver`` for S (else conjugate gradients to a relative residual of 1e-5, which moves the DOS by
    3e-4 of its peak for Si: the moments need far less than the eigenvalues)."""
    start = time.perf_counter()
    n = h.shape[0]
    complex_ = np.iscomplexobj(h.data if hasattr(h, "data") else h) or (
        s is not None and np.iscomplexobj(s.data if hasattr(s, "data") else s)
    )
    z = random_vectors(n, n_vectors, complex_, seed)
    info: dict = {}
    if s is None:
        r, solve = z, (lambda b: b)
        inner = z
    else:
        overlap = overlap or OverlapSolver(s, rtol=1e-5)
        solve = overlap.solve
        if overlap_bounds is None:
            low, high, lanczos = lanczos_bounds(s, steps=bound_steps, seed=seed)
            if lanczos["ritz_low"] <= 0:
                raise KpmError(
                    f"S is not positive definite (Lanczos finds an eigenvalue {lanczos['ritz_low']:.3e})"
                )
            # a lower bound below the true smallest eigenvalue only costs a higher degree of S^-1/2
            overlap_bounds = (
                min(0.95 * low, 0.5 * lanczos["ritz_low"]) if low <= 0 else 0.95 * low,
                1.02 * high,
            )
        info["overlap_bounds"] = [float(x) for x in overlap_bounds]
        r = inverse_sqrt_apply(s, z, overlap_bounds)
        inner = None
    if bounds is None:
        low, high, lanczos = lanczos_bounds(h, s, None if s is None else solve, steps=bound_steps, seed=seed)
        info.update(lanczos)
        bounds = (low, high)
    low, high = float(min(bounds)), float(max(bounds))
    width = max(high - low, 1e-6)
    centre, half = 0.5 * (low + high), 0.5 * width * (1 + 2 * pad)
    info["bounds_seconds"] = time.perf_counter() - start

    def s_times(v):
        return v if s is None else s @ v

    def step(v):  # A~ v = (S^{-1} H v - c v) / w
        return (solve(h @ v) - centre * v) / half

    def dot(a, b):  # <a, b>_S per vector, b already multiplied by S
        return np.einsum("ij,ij->j", a.conj(), b).real

    mu = np.zeros((max(n_moments, 2), n_vectors))
    previous = r
    s_previous = s_times(r) if inner is None else inner
    current = step(previous)
    s_current = s_times(current)
    mu[0] = dot(previous, s_previous)
    mu[1] = dot(previous, s_current)
    m = 1
    while 2 * m < n_moments:  # current = v_m, previous = v_(m-1)
        mu[2 * m] = 2 * dot(current, s_current) - mu[0]
        if 2 * m + 1 >= n_moments:
            break
        following = 2 * step(current) - previous
        s_following = s_times(following)
        mu[2 * m + 1] = 2 * dot(current, s_following) - mu[1]
        # |r^H S T_m(A~) r| = |z^H T_m(S^-1/2 H S^-1/2 scaled) z| <= z^H z = mu_0 inside the bounds
        if np.any(np.abs(mu[2 * m : 2 * m + 2]) > 1.01 * mu[0] + 1e-9):
            raise KpmError(
                f"the Chebyshev recursion diverges at moment {2 * m}: the spectrum exceeds the bounds "
                f"[{centre - half:.3f}, {centre + half:.3f}] eV; give wider bounds or a larger pad"
            )
        previous, current, s_current = current, following, s_following
        m += 1
    mu = mu[:n_moments]
    info["seconds"] = time.perf_counter() - start
    if overlap is not None:
        info["overlap_solver"] = overlap.method
        info["overlap_cg_iterations"] = overlap.iterations
        info["overlap_solves"] = overlap.calls
    return KpmMoments(mu, centre, half, n, (low, high), info)
