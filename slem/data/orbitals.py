"""Orbital-basis bookkeeping shared by the projection, the data format and the model.

A basis per element is written as a shell string such as ``"2s2p1d"``: two s shells,
two p shells and one d shell. Within an atom the orbitals run over all s shells, then
all p shells, then d, then f (zeta order within each l), and within a shell over
m = -l..l of the real spherical harmonics without Condon-Shortley phase, so that
p = (y, z, x). This is e3nn's and DeePTB's order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

L_LETTERS = "spdf"
_SHELL_RE = re.compile(r"(\d+)([spdf])")


class BasisStringError(ValueError):
    """A basis string such as ``2s2p1d`` could not be parsed."""


def parse_shells(basis: str) -> list[int]:
    """Return the angular momentum of every shell of ``basis`` in storage order.

    >>> parse_shells("2s2p1d")
    [0, 0, 1, 1, 2]
    """
    text = basis.strip().lower()
    matches = list(_SHELL_RE.finditer(text))
    if not matches or "".join(m.group(0) for m in matches) != text:
        raise BasisStringError(
            f"basis string {basis!r} is not of the form '2s2p1d' (counts followed by s, p, d or f)"
        )
    counts = {letter: 0 for letter in L_LETTERS}
    for m in matches:
        counts[m.group(2)] += int(m.group(1))
    return [L_LETTERS.index(letter) for letter in L_LETTERS for _ in range(counts[letter])]


def shells_to_string(shells: list[int]) -> str:
    """Inverse of :func:`parse_shells` (the order of the input does not matter)."""
    return "".join(f"{shells.count(l)}{L_LETTERS[l]}" for l in range(4) if shells.count(l))


def n_orbitals(basis: str) -> int:
    return sum(2 * l + 1 for l in parse_shells(basis))


def orbital_counts(basis: Mapping[str, str]) -> dict[str, int]:
    """Number of orbitals per element for a ``{"Si": "2s2p1d"}`` mapping."""
    return {element: n_orbitals(shells) for element, shells in basis.items()}


def parse_basis_spec(specs: str | list[str] | tuple[str, ...]) -> dict[str, str]:
    """Parse ``"Si=2s2p1d,C=1s1p"`` (or a list of ``"El=shells"`` items) into a basis mapping.

    Every shell string is checked with :func:`parse_shells`."""
    items = [specs] if isinstance(specs, str) else list(specs)
    basis: dict[str, str] = {}
    for item in (part.strip() for text in items for part in text.split(",")):
        if not item:
            continue
        element, sep, shells = item.partition("=")
        if not sep or not element.strip() or not shells.strip():
            raise BasisStringError(f"basis item {item!r} is not of the form 'Si=2s2p1d'")
        parse_shells(shells)
        basis[element.strip()] = shells.strip()
    if not basis:
        raise BasisStringError("empty basis; give e.g. 'Si=2s2p1d'")
    return basis
