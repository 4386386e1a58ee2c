"""`aiida-slem setup --pseudo-dir / --pseudo-family`: the real PseudoDojo folder installs with its
low/normal/high hints; broken copies are refused before anything is stored; reruns never hide a change."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path

import click
import pytest
from aiida import orm

from aiida_slem.cli.setup_pseudos import make_default_family, read_pseudo_dir
from aiida_slem.pseudo_families import (
    PseudoFamilyError,
    install_family,
    load_usable_family,
    parse_cutoffs_option,
    read_upf_files,
)
from aiida_slem.pseudos import DEBIAN_PSEUDO_DIR, DEFAULT_FAMILY_EXTRA, FAMILY_LABEL, default_family_label

DOJO = Path(__file__).resolve().parents[1] / "data" / "pseudos" / "pseudodojo-nlcc"


def _label() -> str:
    return f"test/{uuid.uuid4().hex[:8]}"


def _groups() -> int:
    return orm.QueryBuilder().append(orm.Group).count()


def _copy(tmp_path: Path, manifest: bool = True, keep: tuple = ("N", "Al")) -> Path:
    """The PseudoDojo folder with only ``keep`` (and their MANIFEST rows): each file's ghost-state screening
    costs seconds."""
    folder = tmp_path / "dojo"
    folder.mkdir()
    rows = (DOJO / "MANIFEST.txt").read_text().splitlines()
    rows = [r for r in rows if r.startswith("#") or r.split()[0] in keep]
    for row in rows:
        if not row.startswith("#"):
            shutil.copy(DOJO / row.split()[1], folder)
    if manifest:
        (folder / "MANIFEST.txt").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture
def restore_default():
    yield
    marked = orm.QueryBuilder().append(orm.Group, filters={"extras": {"has_key": DEFAULT_FAMILY_EXTRA}})
    for group in marked.all(flat=True):
        group.base.extras.delete(DEFAULT_FAMILY_EXTRA)


def test_pseudodojo_folder_installs_with_its_three_stringencies(aiida_profile):
    files, cutoffs = read_pseudo_dir(DOJO, None)
    assert sorted(files) == ["Al", "As", "B", "Fe", "Ga", "N", "Si"]
    label = _label()
    family, state = install_family(files, label, cutoffs, "test")
    assert state == "created" and set(family.get_cutoff_stringencies()) == {"low", "normal", "high"}
    assert family.get_default_stringency() == "normal"
    # MANIFEST hints are Hartree: Si 14/18/24 Ha -> ecutwfc 28/36/48 Ry, ecutrho 4 x ecutwfc
    recommended = family.get_recommended_cutoffs
    assert recommended(elements="Si", stringency="low", unit="Ry") == pytest.approx((28, 112))
    assert recommended(elements=("Ga", "As"), stringency="high", unit="Ry") == pytest.approx((96, 384))
    assert install_family(files, label, cutoffs, "test")[1] == "exists"


def _truncate(folder: Path) -> str:
    text = (folder / "Al.upf").read_text()
    (folder / "Al.upf").write_text(text[: text.index("<PP_RHOATOM")] + "<PP_RHOATOM>\n 0.0 0.0\n")
    return "Al.upf ends before </UPF>: the file is truncated"


def _ultrasoft(folder: Path) -> str:
    shutil.copy(DEBIAN_PSEUDO_DIR / "Si.pbe-nl-rrkjus_psl.1.0.0.UPF", folder / "Si.upf")
    return "Si.upf is an ultrasoft pseudopotential"


def _paw(folder: Path) -> str:
    shutil.copy(DEBIAN_PSEUDO_DIR / "B.pbe-n-kjpaw_psl.1.0.0.UPF", folder / "B.upf")
    return "B.upf is a PAW pseudopotential"


def _fully_relativistic(folder: Path) -> str:
    # PseudoDojo's fully relativistic Si among scalar-relativistic files: a family is one or the other
    shutil.copy(DOJO.parent / "pseudodojo-fr" / "Si.upf", folder / "Si.upf")
    return "Si.upf fully relativistic and the other files scalar-relativistic"


def _rewrite_with_manifest(folder: Path, name: str, text: str) -> None:
    """Write ``name`` and its new md5 into the MANIFEST, as the maker of a (broken) table would."""
    old = hashlib.md5((folder / name).read_bytes()).hexdigest()
    (folder / name).write_text(text)
    new = hashlib.md5((folder / name).read_bytes()).hexdigest()
    (folder / "MANIFEST.txt").write_text((folder / "MANIFEST.txt").read_text().replace(old, new))


def _wrong_levels(folder: Path) -> str:
    # the file's own 3S eigenvalue no longer matches its potential: what a ghost state or damage looks like
    text = (folder / "Al.upf").read_text().replace("-0.5698283664E+00", "-0.9698283664E+00")
    _rewrite_with_manifest(folder, "Al.upf", text)
    return "Al.upf: the pseudo-atom's levels disagree with the file's own PP_CHI energies"


def _no_element(folder: Path) -> str:
    (folder / "N.upf").write_text((folder / "N.upf").read_text().replace('element="N "', 'element=""', 1))
    return "N.upf: the PP_HEADER has no element"


def _duplicate(folder: Path) -> str:
    shutil.copy(folder / "N.upf", folder / "N-copy.upf")
    return "are both N: keep one UPF per element"


def _missing(folder: Path) -> str:
    (folder / "N.upf").unlink()
    return "MANIFEST.txt lists N.upf for N, which is not in the folder"


def _changed(folder: Path) -> str:
    (folder / "Al.upf").write_text((folder / "Al.upf").read_text().replace("</UPF>", "</UPF>\n\n"))
    return "Al.upf has md5"


@pytest.mark.parametrize(
    "breaker",
    [_truncate, _ultrasoft, _paw, _fully_relativistic, _wrong_levels, _no_element, _duplicate, _missing,
     _changed],
)
def test_broken_folder_is_refused_before_anything_is_stored(aiida_profile, tmp_path, breaker):
    folder = _copy(tmp_path)
    message = breaker(folder)
    before = _groups()
    with pytest.raises(click.ClickException, match=message) as info:
        read_pseudo_dir(folder, None)
    assert "Nothing was installed" in info.value.message
    assert _groups() == before


def test_folder_without_hints_needs_cutoffs(aiida_profile, tmp_path):
    folder = _copy(tmp_path, manifest=False)
    with pytest.raises(click.ClickException, match="no hints file .* --cutoffs Si=30/120"):
        read_pseudo_dir(folder, None)
    with pytest.raises(click.ClickException, match=r"no recommended cutoffs for N"):
        read_pseudo_dir(folder, "Si=30/120,Al=40")
    files, cutoffs = read_pseudo_dir(folder, "N=40,Al=30/120")
    assert cutoffs["N"] == {"normal": (40.0, 160.0)} and cutoffs["Al"] == {"normal": (30.0, 120.0)}


def _no_hints_for(folder: Path, element: str) -> None:
    """PseudoDojo writes '-' where its table gives a file no cutoff hints (W-fsp in v0.4)."""
    rows = (folder / "MANIFEST.txt").read_text().splitlines()
    rows = [r if r.startswith("#") or r.split()[0] != element else " ".join(r.split()[:-1] + ["-"])
            for r in rows]
    (folder / "MANIFEST.txt").write_text("\n".join(rows) + "\n")


def test_a_file_without_hints_is_named_and_cutoffs_fill_it_in(aiida_profile, tmp_path, capsys):
    folder = _copy(tmp_path)
    _no_hints_for(folder, "N")
    with pytest.raises(click.ClickException, match=r"no recommended cutoffs for N \(N.upf\): give them with "
                       r"--cutoffs N=ECUTWFC/ECUTRHO \(Ry\), or take N.upf out of the folder"):
        read_pseudo_dir(folder, None)
    # refused before the minutes of ghost screening a whole table costs
    assert "screening" not in capsys.readouterr().out
    files, cutoffs = read_pseudo_dir(folder, "N=44")
    # the option fills in N at every stringency; Al keeps the MANIFEST's three (Al 16/20/26 Ha)
    assert cutoffs["N"] == {s: (44.0, 176.0) for s in ("low", "normal", "high")}
    assert cutoffs["Al"]["low"] == (32.0, 128.0) and cutoffs["Al"]["high"] == (52.0, 208.0)
    shown = capsys.readouterr().out
    assert "screening 2 pseudo-atoms" in shown and "Al.upf" in shown and "N.upf" in shown
    family, state = install_family(files, _label(), cutoffs, "test")
    # the fast protocol's 'low' survives the element without hints
    assert state == "created" and set(family.get_cutoff_stringencies()) == {"low", "normal", "high"}
    low = family.get_recommended_cutoffs(elements=("Al", "N"), stringency="low", unit="Ry")
    assert low == pytest.approx((44, 176))


def test_cutoffs_option_forms(tmp_path):
    path = tmp_path / "cutoffs.json"
    hints = {"Si": {"cutoff_wfc": 30, "cutoff_rho": 120}, "C": {"low": {"cutoff_wfc": 4}}}
    path.write_text(json.dumps(hints))
    assert parse_cutoffs_option(str(path)) == {"Si": {"normal": (30.0, 120.0)}, "C": {"low": (4.0, 16.0)}}
    with pytest.raises(PseudoFamilyError, match="ELEMENT=ECUTWFC"):
        parse_cutoffs_option("Si:30")


def test_rerun_with_changed_files_refuses_and_new_cutoffs_update(aiida_profile, tmp_path):
    folder = _copy(tmp_path, manifest=False)
    hints = {e: {"cutoff_wfc": 40} for e in ("N", "Al")}
    (folder / "cutoffs.json").write_text(json.dumps(hints))
    label = _label()
    files, cutoffs = read_pseudo_dir(folder, None)
    family, _ = install_family(files, label, cutoffs, "test")
    al_md5 = family.get_pseudo("Al").md5

    shutil.copy(DEBIAN_PSEUDO_DIR / "Al.pz-vbc.UPF", folder / "Al.upf")
    files, cutoffs = read_pseudo_dir(folder, None)
    with pytest.raises(PseudoFamilyError, match=r"exists with other files \(elements \['Al'\] differ\)"):
        install_family(files, label, cutoffs, "test")
    assert orm.load_group(label).get_pseudo("Al").md5 == al_md5

    shutil.copy(DOJO / "Al.upf", folder / "Al.upf")
    files, cutoffs = read_pseudo_dir(folder, "Al=40,N=44")
    assert install_family(files, label, cutoffs, "test")[1] == "updated"
    assert orm.load_group(label).get_recommended_cutoffs(elements="N", unit="Ry") == pytest.approx((44, 176))


def test_pseudo_family_must_be_usable_and_becomes_the_default(aiida_profile, tmp_path, restore_default):
    from aiida_pseudo.data.pseudo import UpfData
    from aiida_pseudo.groups.family import CutoffsPseudoPotentialFamily

    with pytest.raises(click.ClickException, match="no pseudopotential family 'nope'.*setup --pseudo-dir"):
        make_default_family("nope")
    folder = tmp_path / "us"
    folder.mkdir()
    shutil.copy(DEBIAN_PSEUDO_DIR / "Si.pbe-nl-rrkjus_psl.1.0.0.UPF", folder)
    bad = CutoffsPseudoPotentialFamily.create_from_folder(folder, _label(), pseudo_type=UpfData)
    bad.set_cutoffs({"Si": {"cutoff_wfc": 30, "cutoff_rho": 240}}, "normal", unit="Ry")
    with pytest.raises(PseudoFamilyError, match="Si .*ultrasoft"):
        load_usable_family(bad.label)
    assert default_family_label() == FAMILY_LABEL

    label = _label()
    install_family(read_upf_files([DOJO / "Si.upf"]), label, {"Si": {"normal": (36.0, 144.0)}}, "test")
    make_default_family(label)
    assert default_family_label() == label
