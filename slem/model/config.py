"""Model configuration: the schema of the ``model`` section, and the dataclass that round-trips through dicts.

Torch-free, so the AiiDA side checks a model section at submission with the very messages ``slem train``
would print hours later: :func:`model_problems` is the one check, ``SlemConfig`` runs it on construction.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from slem.data.operators import OPERATORS
from slem.data.orbitals import parse_shells
from slem.schema import check_section

KNOWN_HEADS = OPERATORS  # H, S, D, or per spin channel H_up, H_down, D_up, D_down
DEFAULT_HIDDEN_WIDTHS = (32, 32, 16, 8, 8)
_IRREP = re.compile(r"^(?:(\d+)x)?(\d+)([eoy])$")


class ModelConfigError(ValueError):
    """The model configuration is inconsistent."""


@dataclass
class SlemConfig:
    species: list[str]
    basis: dict[str, str]
    r_cut: dict[str, float] | float
    n_layers: int = 3
    # "auto": up to l = 2 x the basis' largest l with hidden_widths[l] channels (hidden_irreps_for)
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
    overlap: Literal["learned", "basis"] = "learned"
    # > 0: distance-dependent hopping statistics with a two-centre baseline on this many knots
    # (bond_rescale.py); 0: one mean/std per species pair. Si64 1s1p, 100 steps: 2.8 vs 8.4 meV H MAE.
    bond_rescale_knots: int = 24
    dtype: Literal["float32", "float64"] = "float32"

    def __post_init__(self) -> None:
        problems = model_problems(dataclasses.asdict(self))
        if problems:
            raise ModelConfigError("invalid SLEM model config: " + "; ".join(problems))
        self.species = list(self.species)
        self.heads = list(self.heads)
        self.basis = dict(self.basis)
        r_cut = self.r_cut if isinstance(self.r_cut, Mapping) else {s: self.r_cut for s in self.species}
        self.r_cut = {s: float(v) for s, v in r_cut.items()}
        for name in ("n_layers", "latent_dim", "n_radial", "bond_rescale_knots"):
            setattr(self, name, int(getattr(self, name)))
        for name in ("avg_num_neighbors", "poly_p"):
            setattr(self, name, float(getattr(self, name)))
        for name in ("hidden_widths", "latent_hidden", "radial_hidden", "overlap_hidden"):
            setattr(self, name, [int(w) for w in getattr(self, name)])
        if self.hidden_irreps == "auto":
            top = max(max(parse_shells(self.basis[s])) for s in self.species)
            self.hidden_irreps = hidden_irreps_for(top, self.hidden_widths)

    @property
    def torch_dtype(self):
        import torch  # this module stays importable without torch

        return getattr(torch, self.dtype)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlemConfig:
        problems = model_problems(data)
        if problems:
            raise ModelConfigError("invalid SLEM model config: " + "; ".join(problems))
        return cls(**data)


def model_problems(data: Any, where: str = "model", complete: bool = True) -> list[str]:
    """Every problem of a model section, as ``slem train`` reports them.

    ``complete=False``: species, basis and r_cut may be absent (``slem train`` takes them from the data)."""
    problems: list[str] = []
    values = check_section(SlemConfig, data, where, problems, required=complete)
    for name in ("hidden_widths", "latent_hidden", "radial_hidden", "overlap_hidden"):
        if name in values and not _positive_ints(values[name], allow_empty=name == "radial_hidden"):
            problems.append(
                f"'{where}.{name}' must be a list of positive integer widths, e.g. [32], got {values[name]!r}"
            )
    for name in ("n_layers", "latent_dim", "n_radial"):
        if name in values and values[name] < 1:
            problems.append(f"'{where}.{name}' must be >= 1, got {values[name]}")
    for name in ("avg_num_neighbors", "poly_p"):
        if name in values and not values[name] > 0:
            problems.append(f"'{where}.{name}' must be positive, got {values[name]}")
    knots = values.get("bond_rescale_knots")
    if knots is not None and (knots < 0 or knots == 1):
        problems.append(f"'{where}.bond_rescale_knots' must be 0 (off) or >= 2, got {knots}")
    for head in values.get("heads", []):
        if head not in KNOWN_HEADS:
            problems.append(f"unknown head {head!r} in '{where}.heads'; choose from {list(KNOWN_HEADS)}")
    if "hidden_irreps" in values and values["hidden_irreps"] != "auto":
        problems.extend(irreps_problems(values["hidden_irreps"], f"{where}.hidden_irreps"))
    basis = values.get("basis", {})
    for element, shells in basis.items():
        try:
            parse_shells(shells)
        except (ValueError, AttributeError):
            problems.append(f"'{where}.basis.{element}' must be a shell string like '2s2p1d', got {shells!r}")
    r_cut = values.get("r_cut")
    cutoffs = r_cut.values() if isinstance(r_cut, Mapping) else [] if r_cut is None else [r_cut]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in cutoffs):
        problems.append(f"'{where}.r_cut' must be a positive number or {{element: Angstrom}}, got {r_cut!r}")
    if complete and "species" in values:
        if not values["species"]:
            problems.append(f"'{where}.species' is empty")
        for s in values["species"]:
            if s not in basis:
                problems.append(f"species {s!r} has no basis ({where}.basis: {{'{s}': '1s1p'}})")
            if isinstance(r_cut, Mapping) and s not in r_cut:
                problems.append(f"species {s!r} needs a positive cutoff in '{where}.r_cut' (Angstrom)")
    return problems


def _positive_ints(value: Sequence, allow_empty: bool) -> bool:
    ints = [isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in value]
    return all(ints) and (allow_empty or bool(ints))


def parse_irreps(text: str) -> list[tuple[int, int, int]]:
    """(mul, l, parity) of '32x0e+16x1o+8x2e' (e3nn's notation; 'y' is parity (-1)^l)."""
    items = []
    for term in str(text).replace(" ", "").split("+"):
        match = _IRREP.match(term)
        if match is None:
            raise ValueError(f"cannot parse irreps {text!r}; write e.g. '32x0e+32x1o+16x2e'")
        mul, l, p = int(match.group(1) or 1), int(match.group(2)), match.group(3)
        items.append((mul, l, {"e": 1, "o": -1, "y": (-1) ** l}[p]))
    return items


def irreps_problems(text: str, where: str) -> list[str]:
    try:
        items = parse_irreps(text)
    except ValueError as err:
        return [f"'{where}': {err}"]
    if not any(mul and l == 0 and p == 1 for mul, l, p in items):
        return [f"'{where}' needs 0e channels (the latent update reads them), got {text!r}"]
    return []


def hidden_irreps_for(max_orbital_l: int, widths: Sequence[int] = DEFAULT_HIDDEN_WIDTHS) -> str:
    """Hidden irreps up to l = 2 x the largest orbital l, with ``widths[l]`` channels of parity (-1)^l
    (the last width repeats for higher l): the SO(2) layers carry bond-frame |m| <= the hidden lmax,
    and an l1-l2 block has components up to |m| = l1 + l2 (s p d: ...+8x3o+8x4e; f: up to 6e)."""
    if not widths or min(widths) < 1:
        raise ValueError(
            f"hidden_widths must be positive channel counts per l, e.g. [32, 32, 16, 8, 8], got {widths}"
        )
    lmax = max(1, 2 * int(max_orbital_l))
    return "+".join(
        f"{widths[min(l, len(widths) - 1)]}x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(lmax + 1)
    )
