"""Pseudopotential families for aiida-slem: install an offline folder of UPFs as an aiida-pseudo cutoffs
family, check an installed one, and read recommended cutoffs from hints files.

Every file is read with ``slem.qe.upf.read_upf`` before anything is stored, so a truncated, ultrasoft or PAW
UPF refuses the whole folder and no half-made family is left behind. A family is scalar-relativistic or fully
relativistic (spin-orbit runs, docs/spin-orbit.md), never a mixture.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from aiida_slem.pseudos import STRINGENCIES
from slem.qe.upf import read_upf
from slem.threads import available_cpus

UPF_SUFFIXES = (".upf",)
MANIFEST = "MANIFEST.txt"
CUTOFFS_JSON = "cutoffs.json"
HARTREE_IN_RY = 2.0
# PseudoDojo's convention for norm-conserving tables: the density cutoff is 4 x the wavefunction cutoff
NC_DUAL = 4.0
# a manifest row's hints_Ha for a file the table gives no cutoff hints for
NO_HINTS = "-"
PSEUDO_DIR_HINT = "aiida-slem setup --pseudo-dir DIR [--family-label LABEL] [--cutoffs Si=30/120,...]"

Cutoffs = dict  # element -> stringency -> (ecutwfc, ecutrho), Ry


class PseudoFamilyError(ValueError):
    """A pseudopotential folder, hints file or family that slem cannot use; the message names the fix."""


@dataclass(frozen=True)
class UpfFile:
    element: str
    path: Path
    md5: str


def _refuse(problems: list[str], where: str, tail: str = "Nothing was installed.") -> None:
    if problems:
        raise PseudoFamilyError(f"{where}:\n  " + "\n  ".join(problems) + f"\n{tail}")


def read_upf_files(paths: list[Path], check_levels: bool = False) -> dict[str, UpfFile]:
    """element -> file for ``paths``, after reading every one; all problems are reported together. With
    ``check_levels`` each pseudo-atom is then screened for ghost states (``screen_levels``)."""
    problems, found, relativistic = [], {}, {}
    for path in sorted(paths):
        try:
            upf = read_upf(path, spin_orbit=True)
        except ValueError as exc:  # UpfError, or numbers that do not parse
            problems.append(f"{path.name}: {exc}")
            continue
        if not upf.element:
            problems.append(f"{path.name}: the PP_HEADER has no element; this is not a usable UPF")
        elif upf.element in found:
            problems.append(
                f"{path.name} and {found[upf.element].path.name} are both {upf.element}: "
                "keep one UPF per element"
            )
        else:
            found[upf.element] = UpfFile(upf.element, path, upf.md5)
            relativistic[path.name] = upf.spin_orbit
    if len(set(relativistic.values())) > 1:
        fully = sorted(name for name, so in relativistic.items() if so)
        problems.append(
            f"{', '.join(fully)} fully relativistic and the other files scalar-relativistic: a family is one "
            "or the other (spin-orbit runs need every file fully relativistic); install them as two families"
        )
    _refuse(problems, "refused, the pseudopotentials are not usable")
    if check_levels:
        screen_levels([f.path for f in found.values()])
    return found


def _screen(path: Path) -> str | None:
    from slem.basis.ghosts import check_upf_levels

    try:
        check_upf_levels(path)
    except ValueError as exc:  # GhostStateError, or a pseudo-atom that does not converge
        return f"{path.name}: {exc}"
    return None


def _screened(paths: list[Path], workers: int):
    """(path, problem or None) for each file, in order, as each is done."""
    if workers == 1:
        yield from zip(paths, map(_screen, paths), strict=True)
        return
    # spawn: the CLI process may hold threads (torch, BLAS) that a forked child would inherit mid-lock
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from zip(paths, pool.map(_screen, paths), strict=True)


def screen_levels(paths: list[Path], report: Callable[[str], None] | None = None) -> None:
    """Solve each file's pseudo-atom and compare its levels with the file's own (a ghost state or a damaged
    file shows there). A few seconds per file, so the files are spread over the CPUs this process may use,
    and ``report`` hears of each as it is done: a whole table of 69 elements would otherwise be minutes of
    silence."""
    paths = sorted(paths)
    workers = max(min(available_cpus(), len(paths)), 1)
    if report:
        report(f"  screening {len(paths)} pseudo-atoms for ghost states on {workers} CPU(s), seconds each")
    problems = []
    for done, (path, problem) in enumerate(_screened(paths, workers), 1):
        if report:
            report(f"    {done:>3}/{len(paths)} {path.name:<16} {'refused' if problem else 'ok'}")
        if problem:
            problems.append(problem)
    _refuse(problems, "refused, the pseudopotentials are not usable")


def folder_upfs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise PseudoFamilyError(f"{folder} is not a folder; give the folder that holds one UPF per element")
    paths = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in UPF_SUFFIXES]
    if not paths:
        raise PseudoFamilyError(f"{folder} holds no *.upf / *.UPF file; give the folder of the UPF files")
    return paths


def _pair(wfc: float, rho: float | None = None) -> tuple[float, float]:
    return (float(wfc), float(rho) if rho is not None else NC_DUAL * float(wfc))


def read_manifest(path: Path) -> tuple[Cutoffs, dict[str, tuple[str, str]]]:
    """PseudoDojo-style manifest: a '# element file md5 ... hints_Ha' header line, then one row per element
    with 'low/normal/high' hints in Hartree, or '-' where the table gives none. Returns (cutoffs in Ry of the
    elements with hints, element -> (file, md5) of every row)."""
    columns, cutoffs, files = None, {}, {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("#"):
            words = line.lstrip("#").split()
            if words[:2] == ["element", "file"]:
                columns = words
            continue
        if not line.strip():
            continue
        if columns is None or "hints_Ha" not in columns:
            raise PseudoFamilyError(
                f"{path}:{number}: no '# element file ... hints_Ha' header line before the rows; add it, or "
                f"give the cutoffs with --cutoffs"
            )
        row = dict(zip(columns, line.split(), strict=False))
        files[row["element"]] = (row["file"], row.get("md5", ""))
        if row.get("hints_Ha") == NO_HINTS:  # the table has no hints for this file: --cutoffs gives them
            continue
        try:
            hints = [float(h) for h in row["hints_Ha"].split("/")]
        except (KeyError, ValueError):
            hints = []
        if len(hints) != 3:
            raise PseudoFamilyError(
                f"{path}:{number}: hints_Ha must be 'low/normal/high' in Hartree (e.g. 14/18/24), got "
                f"{row.get('hints_Ha')!r}"
            )
        levels = zip(STRINGENCIES, hints, strict=True)
        cutoffs[row["element"]] = {s: _pair(HARTREE_IN_RY * h) for s, h in levels}
    return cutoffs, files


def read_cutoffs_json(path: Path) -> Cutoffs:
    """{element: {cutoff_wfc, cutoff_rho}} in Ry for one stringency ('normal'), or
    {element: {low|normal|high: {cutoff_wfc, cutoff_rho}}}."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PseudoFamilyError(f"{path} is not readable JSON ({exc}); fix the file") from exc
    example = '{"Si": {"cutoff_wfc": 30, "cutoff_rho": 120}}'
    if not isinstance(data, dict):
        raise PseudoFamilyError(f"{path}: expected {example} (Ry), got {type(data).__name__}")
    cutoffs = {}
    for element, entry in data.items():
        levels = entry if isinstance(entry, dict) and set(entry) <= set(STRINGENCIES) else {"normal": entry}
        try:
            cutoffs[element] = {s: _pair(v["cutoff_wfc"], v.get("cutoff_rho")) for s, v in levels.items()}
        except (TypeError, KeyError, ValueError) as exc:
            raise PseudoFamilyError(f"{path}: entry {element}: expected e.g. {example} (Ry)") from exc
    return cutoffs


def parse_cutoffs_option(text: str) -> Cutoffs:
    """``--cutoffs``: a JSON file, or 'Si=30/120,Ga=40' (Ry; ecutrho defaults to 4 x ecutwfc), 'normal'."""
    if Path(text).is_file():
        return read_cutoffs_json(Path(text))
    cutoffs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        match = re.fullmatch(r"([A-Z][a-z]?)=([\d.]+)(?:/([\d.]+))?", item)
        if match is None:
            raise PseudoFamilyError(
                f"--cutoffs {item!r}: write ELEMENT=ECUTWFC[/ECUTRHO] in Ry, comma-separated "
                "(e.g. Si=30/120,Ga=40), or give a JSON file"
            )
        cutoffs[match[1]] = {"normal": _pair(match[2], match[3])}
    return cutoffs


def folder_hints(folder: Path, files: dict[str, UpfFile]) -> Cutoffs | None:
    """Cutoffs from the folder's MANIFEST.txt (checked against the files it names) or cutoffs.json."""
    if (folder / MANIFEST).is_file():
        cutoffs, named = read_manifest(folder / MANIFEST)
        problems = []
        for element, (filename, md5) in sorted(named.items()):
            upf = files.get(element)
            if upf is None or upf.path.name != filename:
                problems.append(f"{MANIFEST} lists {filename} for {element}, which is not in the folder")
            elif md5 and md5 != upf.md5:
                problems.append(f"{filename} has md5 {upf.md5}, {MANIFEST} says {md5}: the file changed")
        _refuse(problems, f"refused, {folder / MANIFEST} does not match the files (restore them)")
        return cutoffs
    if (folder / CUTOFFS_JSON).is_file():
        return read_cutoffs_json(folder / CUTOFFS_JSON)
    return None


def merge_cutoffs(hints: Cutoffs | None, given: Cutoffs) -> Cutoffs:
    """The hints file's cutoffs with ``--cutoffs`` on top: a given element replaces its hints. One pair given
    for an element serves every stringency the hints have, so one element the table gives no hints for does
    not strip low and high (the fast and precise protocols' cutoffs) from the whole family."""
    hints = hints or {}
    stringencies = {s for levels in hints.values() for s in levels}
    merged = dict(hints)
    for element, levels in given.items():
        if set(levels) == {"normal"} and stringencies:
            levels = {s: levels["normal"] for s in STRINGENCIES if s in stringencies | {"normal"}}
        merged[element] = levels
    return merged


def check_cutoffs_cover(files: dict[str, UpfFile], cutoffs: Cutoffs) -> None:
    problems = [f"no recommended cutoffs for {e} ({files[e].path.name}): give them with --cutoffs "
                f"{e}=ECUTWFC/ECUTRHO (Ry), or take {files[e].path.name} out of the folder"
                for e in sorted(set(files) - set(cutoffs))]
    for element, levels in sorted(cutoffs.items()):
        for stringency, (wfc, rho) in levels.items():
            if not 0 < wfc <= rho:
                problems.append(f"{element} {stringency}: need 0 < ecutwfc <= ecutrho, got {wfc}/{rho} Ry")
    _refuse(problems, "refused, fix the cutoffs (--cutoffs Si=30/120,... in Ry, or the hints file)")


def _stored_cutoffs(family) -> Cutoffs:
    stored = {}
    for stringency in family.get_cutoff_stringencies():
        for element in family.elements:
            pair = family.get_recommended_cutoffs(elements=element, stringency=stringency, unit="Ry")
            stored.setdefault(element, {})[stringency] = tuple(round(v, 6) for v in pair)
    return stored


def install_family(files: dict[str, UpfFile], label: str, cutoffs: Cutoffs, description: str):
    """Create (or confirm, or update the cutoffs of) the cutoffs family ``label``; returns (family, state)."""
    from aiida import orm
    from aiida_pseudo.data.pseudo import UpfData
    from aiida_pseudo.groups.family import CutoffsPseudoPotentialFamily, PseudoPotentialFamily

    check_cutoffs_cover(files, cutoffs)
    wanted = {e: {s: tuple(round(v, 6) for v in pair) for s, pair in cutoffs[e].items()} for e in files}
    existing = orm.QueryBuilder().append(PseudoPotentialFamily, filters={"label": label}).first(flat=True)
    if existing is not None:
        stored = {p.element: p.md5 for p in existing.nodes}
        given = {e: f.md5 for e, f in files.items()}
        if not isinstance(existing, CutoffsPseudoPotentialFamily) or stored != given:
            changed = sorted(e for e in set(stored) | set(given) if stored.get(e) != given.get(e))
            raise PseudoFamilyError(
                f"family {label!r} exists with other files (elements {changed} differ); nothing was changed. "
                f"Install these files under another label (--family-label), or remove the old family first "
                f"if no calculation used it ('verdi group delete {label}')"
            )
        if _stored_cutoffs(existing) == wanted:
            return existing, "exists"
        set_family_cutoffs(existing, wanted)
        return existing, "updated"
    with tempfile.TemporaryDirectory() as folder:
        for upf in files.values():
            shutil.copy(upf.path, Path(folder) / upf.path.name)
        family = CutoffsPseudoPotentialFamily.create_from_folder(Path(folder), label, pseudo_type=UpfData)
    set_family_cutoffs(family, wanted)
    family.description = description
    return family, "created"


def set_family_cutoffs(family, cutoffs: Cutoffs) -> None:
    """Every stringency the hints give, in Ry; 'normal' is the default where it is given."""
    for stringency in family.get_cutoff_stringencies():
        if not all(stringency in levels for levels in cutoffs.values()):
            family.delete_cutoffs(stringency)
    given = [s for s in STRINGENCIES if all(s in levels for levels in cutoffs.values())]
    if not given:
        raise PseudoFamilyError(
            "the cutoffs name no stringency common to all elements (low, normal, high); "
            "give 'normal' for each"
        )
    for stringency in given:
        pairs = {e: {"cutoff_wfc": v[stringency][0], "cutoff_rho": v[stringency][1]}
                 for e, v in cutoffs.items()}
        family.set_cutoffs(pairs, stringency, unit="Ry")
    family.set_default_stringency("normal" if "normal" in given else given[0])


def load_usable_family(label: str):
    """The installed family ``label``, after checking that slem can use every pseudopotential in it."""
    from aiida import orm
    from aiida_pseudo.groups.family import CutoffsPseudoPotentialFamily, PseudoPotentialFamily

    family = orm.QueryBuilder().append(PseudoPotentialFamily, filters={"label": label}).first(flat=True)
    if family is None:
        installed = orm.QueryBuilder().append(PseudoPotentialFamily, project="label").all(flat=True)
        raise PseudoFamilyError(
            f"no pseudopotential family {label!r} in this profile (installed: {sorted(installed)}); "
            f"install it with 'aiida-pseudo install ...' or '{PSEUDO_DIR_HINT}'"
        )
    if not isinstance(family, CutoffsPseudoPotentialFamily) or not family.get_cutoff_stringencies():
        raise PseudoFamilyError(
            f"family {label!r} has no recommended cutoffs, from which the protocols take ecutwfc/ecutrho; "
            f"install its folder with '{PSEUDO_DIR_HINT}'"
        )
    problems = []
    for pseudo in sorted(family.nodes, key=lambda p: p.element):
        with pseudo.as_path() as path:
            try:
                read_upf(path, spin_orbit=True)
            except ValueError as exc:
                problems.append(f"{pseudo.element} ({pseudo.filename}): {exc}")
    _refuse(
        problems,
        f"family {label!r} is not usable by slem (norm-conserving UPF v2 only)",
        f"Choose another family, or install usable files with '{PSEUDO_DIR_HINT}'.",
    )
    return family
