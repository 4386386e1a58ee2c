"""Reader for ``data-file-schema.xml``, the summary pw.x writes into ``<prefix>.save``.

The XML stores energies in Hartree and lengths in bohr; :class:`QeScf` keeps those units
(suffixes ``_ha`` and ``_bohr`` name them) so the projection can work in atomic units and
convert once at the interface.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class QeXmlError(ValueError):
    """The XML file is missing, unreadable, or describes a calculation the projection cannot use."""


@dataclass
class QeScf:
    path: Path
    cell_bohr: np.ndarray  # (3, 3) rows are lattice vectors
    positions_bohr: np.ndarray  # (N, 3) Cartesian
    symbols: list[str]  # species label per atom
    pseudo_files: dict[str, str]  # species label -> UPF file name
    pseudo_dir: str
    ecutwfc_ha: float
    ecutrho_ha: float
    fft_grid: tuple[int, int, int]  # dense grid, the one pp.x writes
    n_electrons: float
    n_bands: int
    occupations: str  # fixed | smearing | ...
    smearing: str | None  # gaussian | mp | mv | fd as pw.x writes it; None without smearing
    degauss_ha: float | None
    fermi_energy_ha: float | None
    homo_ha: float | None
    lumo_ha: float | None
    kpoints_cart: np.ndarray  # (nk, 3) Cartesian, bohr^-1
    kweights: np.ndarray  # (nk,)
    eigenvalues_ha: np.ndarray  # (nk, nbnd)
    npw: np.ndarray  # (nk,) plane waves per k, for cross-checking the G sphere
    converged: bool
    lsda: bool
    noncolin: bool
    gamma_only: bool
    # noncolin with lspinorb and no magnetisation: spinor bands, each holding one electron
    spin_orbit: bool = False
    # collinear spin (lsda): pw.x's total and absolute magnetisation (Bohr magnetons per cell)
    magnetization_total: float | None = None
    magnetization_absolute: float | None = None
    energies_ha: dict[str, float] = field(default_factory=dict)
    functional: str = ""
    md5: str = ""

    @property
    def species(self) -> list[str]:
        return list(self.pseudo_files)

    @property
    def n_spin(self) -> int:
        return 2 if self.lsda else 1

    def spin_eigenvalues_ha(self) -> np.ndarray:
        """Eigenvalues (n_spin, n_k, n_bands): pw.x writes an lsda run's up bands, then its down bands."""
        values = np.asarray(self.eigenvalues_ha)
        return values.reshape(len(values), self.n_spin, -1).transpose(1, 0, 2)


def _strip_namespaces(root: ET.Element) -> None:
    for element in root.iter():
        if "}" in element.tag:
            element.tag = element.tag.split("}", 1)[1]


def _floats(text: str | None) -> np.ndarray:
    return np.array((text or "").split(), dtype=np.float64)


def _bool(element: ET.Element | None) -> bool:
    return element is not None and (element.text or "").strip().lower() == "true"


def _find(root: ET.Element, path: str, source: Path) -> ET.Element:
    element = root.find(path)
    if element is None:
        raise QeXmlError(f"{source} has no <{path}>; is it a pw.x data-file-schema.xml from a finished run?")
    return element


def _optional_float(root: ET.Element, path: str) -> float | None:
    element = root.find(path)
    return None if element is None else float(element.text)


def read_qe_xml(path: str | Path) -> QeScf:
    """Read the SCF summary; ``path`` may be the XML file or the ``.save`` folder holding it."""
    path = Path(path)
    if path.is_dir():
        path = path / "data-file-schema.xml"
    if not path.is_file():
        raise QeXmlError(f"{path} does not exist; pass the pw.x '<prefix>.save' folder or its XML file")
    raw = path.read_bytes()
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise QeXmlError(f"{path} is not valid XML ({exc}); the pw.x run may have been interrupted") from exc
    _strip_namespaces(root)
    out = _find(root, "output", path)

    structure = _find(out, "atomic_structure", path)
    cell = np.array([_floats(_find(structure, f"cell/a{i}", path).text) for i in (1, 2, 3)])
    atoms = structure.findall("atomic_positions/atom")
    if not atoms:
        raise QeXmlError(f"{path}: no atomic positions (crystal_positions/wyckoff are not supported)")
    positions = np.array([_floats(a.text) for a in atoms])
    symbols = [a.get("name") for a in atoms]

    species_root = _find(out, "atomic_species", path)
    pseudo_files = {
        s.get("name"): _find(s, "pseudo_file", path).text.strip() for s in species_root.findall("species")
    }

    basis = _find(out, "basis_set", path)
    grid = _find(basis, "fft_grid", path)
    band = _find(out, "band_structure", path)
    noncolin, spin_orbit = _bool(band.find("noncolin")), _bool(band.find("spinorbit"))
    if noncolin and (not spin_orbit or _bool(out.find("magnetization/do_magnetization"))):
        raise QeXmlError(
            f"{path} is from a non-collinear pw.x run "
            + ("without spin-orbit coupling" if not spin_orbit else "with magnetisation")
            + "; slem projects spin-unpolarised (nspin=1), collinear spin-polarised (nspin=2) and "
            "non-magnetic spin-orbit SCFs (noncolin and lspinorb, every starting_magnetization 0)"
        )
    lsda = _bool(band.find("lsda"))
    if lsda and band.find("two_fermi_energies") is not None:
        raise QeXmlError(
            f"{path} is from an nspin=2 run with a fixed total magnetisation (two Fermi energies); slem "
            "projects nspin=2 SCFs with one Fermi level: rerun pw.x without tot_magnetization, with "
            "occupations='smearing' and a starting_magnetization per species"
        )
    n_bands_text = band.findtext("nbnd") or band.findtext("nbnd_up")
    if n_bands_text is None:
        raise QeXmlError(f"{path} has no <nbnd> or <nbnd_up>; is it a pw.x data-file-schema.xml?")
    ks = band.findall("ks_energies")
    kpts = np.array([_floats(k.find("k_point").text) for k in ks])
    alat = float(structure.get("alat"))
    conv = out.find("convergence_info/scf_conv/convergence_achieved")
    total = out.find("total_energy")
    children = list(total) if total is not None else []
    energies = {child.tag: float(child.text) for child in children if child.text and child.text.strip()}
    occupations = (band.findtext("occupations_kind") or "").strip()
    # pw.x 6.7 writes <smearing degauss="..."> (Hartree) under band_structure and under input/bands
    smear = band.find("smearing")
    if smear is None:
        smear = root.find("input/bands/smearing")
    smearing = (smear.text or "").strip() if smear is not None and occupations == "smearing" else None
    return QeScf(
        path=path,
        cell_bohr=cell,
        positions_bohr=positions,
        symbols=symbols,
        pseudo_files=pseudo_files,
        pseudo_dir=species_root.get("pseudo_dir", ""),
        ecutwfc_ha=float(_find(basis, "ecutwfc", path).text),
        ecutrho_ha=float(_find(basis, "ecutrho", path).text),
        fft_grid=(int(grid.get("nr1")), int(grid.get("nr2")), int(grid.get("nr3"))),
        n_electrons=float(_find(band, "nelec", path).text),
        n_bands=int(n_bands_text),
        occupations=occupations,
        smearing=smearing,
        degauss_ha=float(smear.get("degauss")) if smearing else None,
        fermi_energy_ha=_optional_float(band, "fermi_energy"),
        homo_ha=_optional_float(band, "highestOccupiedLevel"),
        lumo_ha=_optional_float(band, "lowestUnoccupiedLevel"),
        kpoints_cart=kpts * 2 * np.pi / alat,
        kweights=np.array([float(k.find("k_point").get("weight")) for k in ks]),
        eigenvalues_ha=np.array([_floats(k.find("eigenvalues").text) for k in ks]),
        npw=np.array([int(k.findtext("npw")) for k in ks]),
        converged=_bool(conv) if conv is not None else True,
        lsda=lsda,
        noncolin=noncolin,
        spin_orbit=spin_orbit,
        gamma_only=_bool(basis.find("gamma_only")),
        energies_ha=energies,
        functional=(out.findtext("dft/functional") or "").strip(),
        md5=hashlib.md5(raw).hexdigest(),
        magnetization_total=_optional_float(out, "magnetization/total") if lsda else None,
        magnetization_absolute=_optional_float(out, "magnetization/absolute") if lsda else None,
    )
