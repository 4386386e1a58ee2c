"""``BasisData``: the confined pseudo-atomic orbital basis (``slem-basis`` HDF5) of one or more elements."""

from __future__ import annotations

import pathlib

from slem.basis.orbital import BasisFileError, ElementBasis, read_basis

from ._file import SlemFileData


class BasisData(SlemFileData):
    """The ``basis.h5`` written by ``slem basis``; attributes summarise it per element.

    Attributes: ``elements``, ``label`` (e.g. ``DZP``), ``shells`` (``{"Si": "2s2p1d"}``),
    ``radii`` (largest orbital cutoff per element, Angstrom), ``n_orbitals``, ``upf_md5``, ``upf_name``.
    """

    DEFAULT_FILENAME = "basis.h5"

    def _inspect(self, path: pathlib.Path) -> dict:
        try:
            bases = read_basis(path)
        except BasisFileError:
            raise
        except (KeyError, OSError, ValueError) as exc:
            raise BasisFileError(f"basis file is damaged ({exc}); regenerate it with 'slem basis'") from exc
        if not bases:
            raise BasisFileError("basis file holds no element; regenerate it with 'slem basis'")
        for basis in bases.values():
            basis.check_order()
            if not basis.upf_md5:
                raise BasisFileError(
                    f"basis of {basis.element} does not record the md5 of its UPF; it cannot be matched to a "
                    "pseudopotential. Regenerate it with 'slem basis'"
                )
        labels = sorted({b.label for b in bases.values()})
        return {
            "elements": sorted(bases),
            "label": labels[0] if len(labels) == 1 else "+".join(labels),
            "shells": {el: b.shells for el, b in bases.items()},
            "radii": {el: float(b.cutoff) for el, b in bases.items()},
            "n_orbitals": {el: int(b.n_orbitals) for el, b in bases.items()},
            "upf_md5": {el: b.upf_md5 for el, b in bases.items()},
            "upf_name": {el: b.upf_name for el, b in bases.items()},
        }

    @property
    def elements(self) -> list[str]:
        return self.base.attributes.get("elements")

    @property
    def label(self) -> str:
        return self.base.attributes.get("label")

    @property
    def shells(self) -> dict[str, str]:
        return self.base.attributes.get("shells")

    @property
    def radii(self) -> dict[str, float]:
        return self.base.attributes.get("radii")

    @property
    def upf_md5(self) -> dict[str, str]:
        return self.base.attributes.get("upf_md5")

    def get_basis(self) -> dict[str, ElementBasis]:
        with self.local_path() as path:
            return read_basis(path)

    def check_pseudos(self, pseudos: dict) -> None:
        """Raise ``ValueError`` unless each pseudo ``{kind: UpfData}`` is the UPF the basis was built from."""
        for kind, pseudo in pseudos.items():
            element = pseudo.element
            if element not in self.upf_md5:
                raise ValueError(
                    f"the basis {self.label} has no orbitals for {element} (kind {kind}); build a basis that "
                    f"includes it with 'slem basis'"
                )
            if pseudo.md5 != self.upf_md5[element]:
                raise ValueError(
                    f"the basis for {element} was built from a UPF with md5 {self.upf_md5[element]}, but the "
                    f"pseudopotential {pseudo.filename} has md5 {pseudo.md5}; a basis must be built from the "
                    "UPF actually used"
                )
