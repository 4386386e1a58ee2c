"""Model configuration: a plain dataclass that round-trips through dicts (YAML/JSON/checkpoints)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from slem.data.orbitals import parse_shells
from slem.model.irreps import DEFAULT_HIDDEN_WIDTHS, Irreps, hidden_irreps_for

KNOWN_HEADS = ("H", "S", "D")


class ModelConfigError(ValueError):
    """The model configuration is inconsistent."""


def _widths(name: str, value: Any, problems: list[str]) -> list[int]:
    """Hidden-layer widths as a list of positive ints; a problem is recorded otherwise."""
    try:
        widths = [int(w) for w in value]
        if all(w >= 1 and w == float(v) for w, v in zip(widths, value, strict=True)):
            return widths
    except (TypeError, ValueError):
        pass
    problems.append(f"{name} must be a list of positive integer widths, e.g. [32], got {value!r}")
    return []


@dataclass
class SlemConfig:
    species: list[str]
    basis: dict[str, str]
    r_cut: dict[str, float]
    n_layers: int = 3
    # "auto": up to l = 2 x the basis' largest l with hidden_widths[l] channels (irreps.hidden_irreps_for)
    hidden_irreps: str = "auto"
    hidden_widths: list[int] = field(default_factory=lambda: list(DEFAULT_HIDDEN_WIDTHS))
    latent_dim: int = 64
    latent_hidden: list[int] = field(default_factory=lambda: [128])
    # hidden widths of the latent -> SO(2) input-weight function; [] is one linear map
    radial_hidden: list[int] = field(default_factory=list)
    n_radial: int = 10
    heads: list[str] = field(default_factory=lambda: ["H", "S"])
    avg_num_neighbors: float = 50.0
    poly_p: float = 6.0
    overlap_hidden: list[int] = field(default_factory=lambda: [64, 64])
    # "learned": an MLP per (shell pair, |m|) of the distance (overlap.py); "basis": the basis's exact
    # two-centre S, tabulated from its basis file when training starts (exact_overlap.py)
    overlap: str = "learned"
    # > 0: distance-dependent hopping statistics with a two-centre baseline on this many knots
    # (bond_rescale.py); 0: one mean/std per species pair. Si64 1s1p, 100 steps: 2.8 vs 8.4 meV H MAE.
    bond_rescale_knots: int = 24
    dtype: str = "float32"

    def __post_init__(self) -> None:
        problems: list[str] = []
        self.species = list(self.species)
        self.heads = list(self.heads)
        self.latent_hidden = _widths("latent_hidden", self.latent_hidden, problems)
        self.radial_hidden = _widths("radial_hidden", self.radial_hidden, problems)
        if isinstance(self.r_cut, (int, float)):
            self.r_cut = {s: float(self.r_cut) for s in self.species}
        self.r_cut = {s: float(v) for s, v in dict(self.r_cut).items()}
        self.basis = dict(self.basis)
        for s in self.species:
            if s not in self.basis:
                problems.append(f"species {s!r} has no basis (basis={{'{s}': '1s1p'}})")
            else:
                try:
                    parse_shells(self.basis[s])
                except ValueError as err:
                    problems.append(str(err))
            if s not in self.r_cut or not float(self.r_cut[s]) > 0:
                problems.append(f"species {s!r} needs a positive cutoff in r_cut (Angstrom)")
        if not self.species:
            problems.append("species list is empty")
        for h in self.heads:
            if h not in KNOWN_HEADS:
                problems.append(f"unknown head {h!r}; choose from {KNOWN_HEADS}")
        if self.n_layers < 1:
            problems.append("n_layers must be >= 1")
        if self.hidden_irreps == "auto" and not problems:
            self.hidden_widths = _widths("hidden_widths", self.hidden_widths, problems)
            if self.hidden_widths:
                top = max(max(parse_shells(self.basis[s])) for s in self.species)
                self.hidden_irreps = hidden_irreps_for(top, self.hidden_widths)
        try:
            hidden = Irreps.parse(self.hidden_irreps)
            if hidden.mul(0, 1) == 0:
                problems.append("hidden_irreps needs 0e channels (the latent update reads them)")
        except ValueError as err:
            problems.append(str(err))
        if self.overlap not in ("learned", "basis"):
            problems.append(f"overlap must be 'learned' or 'basis', not {self.overlap!r}")
        if self.bond_rescale_knots < 0 or self.bond_rescale_knots == 1:
            problems.append("bond_rescale_knots must be 0 (off) or >= 2")
        if self.avg_num_neighbors <= 0:
            problems.append("avg_num_neighbors must be positive")
        if self.dtype not in ("float32", "float64"):
            problems.append("dtype must be 'float32' or 'float64'")
        if problems:
            raise ModelConfigError("invalid SLEM model config: " + "; ".join(problems))

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SlemConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ModelConfigError(f"unknown model config keys {unknown}; known keys: {sorted(names)}")
        return cls(**data)
