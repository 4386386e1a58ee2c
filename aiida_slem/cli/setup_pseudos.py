"""The pseudopotential families of ``aiida-slem setup``: Debian's default family, an offline folder of UPFs
checked before anything is created, and the pipeline's default family."""

from __future__ import annotations

from pathlib import Path

import click

from aiida_slem.cli.report import report_item
from aiida_slem.pseudo_families import (
    CUTOFFS_JSON,
    MANIFEST,
    PseudoFamilyError,
    check_cutoffs_cover,
    folder_hints,
    folder_upfs,
    install_family,
    load_usable_family,
    merge_cutoffs,
    parse_cutoffs_option,
    read_upf_files,
    screen_levels,
)
from aiida_slem.pseudos import DEBIAN_PSEUDO_DIR, FAMILY_LABEL, STRINGENCIES, available_choices

QE_INSTALL_HINT = (
    "Quantum ESPRESSO is missing. Install it with:\n"
    "    sudo apt-get install quantum-espresso quantum-espresso-data\n"
    "(Debian/Ubuntu; it provides pw.x, pp.x, projwfc.x and the pseudopotentials in "
    "/usr/share/espresso/pseudo)."
)
DEBIAN_DESCRIPTION = "Norm-conserving PBE UPFs from Debian's quantum-espresso-data, chosen by aiida-slem"


def _family_rows(family) -> None:
    stringencies = [s for s in STRINGENCIES if s in family.get_cutoff_stringencies()]
    for pseudo in sorted(family.nodes, key=lambda p: p.element):
        pairs = (family.get_recommended_cutoffs(elements=pseudo.element, stringency=s, unit="Ry")
                 for s in stringencies)
        levels = " ".join(f"{wfc:>4.0f}/{rho:<4.0f}" for wfc, rho in pairs)
        click.echo(f"      {pseudo.element:<3} {pseudo.filename:<22} {levels} Ry")


def install_reported(files: dict, label: str, cutoffs: dict, description: str) -> str:
    try:
        family, state = install_family(files, label, cutoffs, description)
    except PseudoFamilyError as exc:
        raise click.ClickException(str(exc)) from exc
    report_item(f"pseudo family {label}", state)
    if state != "exists":
        stringencies = [s for s in STRINGENCIES if s in family.get_cutoff_stringencies()]
        click.echo(f"      (ecutwfc/ecutrho per stringency: {', '.join(stringencies)})")
        _family_rows(family)
    return state


def ensure_pseudo_family(pseudo_dir: Path = DEBIAN_PSEUDO_DIR) -> None:
    """The Debian family: the default that needs no download."""
    choices = available_choices(pseudo_dir)
    if not choices:
        raise click.ClickException(f"no norm-conserving UPF found in {pseudo_dir}.\n{QE_INSTALL_HINT}")
    from aiida import orm
    from aiida_pseudo.groups.family import PseudoPotentialFamily

    # the ghost-state screening takes seconds per file: only for a family about to be created
    new = not orm.QueryBuilder().append(PseudoPotentialFamily, filters={"label": FAMILY_LABEL}).count()
    try:
        files = read_upf_files([pseudo_dir / choice.filename for choice in choices], check_levels=new)
    except PseudoFamilyError as exc:
        raise click.ClickException(f"{exc}\nReinstall quantum-espresso-data.") from exc
    cutoffs = {choice.element: choice.cutoffs for choice in choices}
    if install_reported(files, FAMILY_LABEL, cutoffs, DEBIAN_DESCRIPTION) != "exists":
        for choice in choices:
            click.echo(f"      {choice.element:<3} {choice.why}")


def read_pseudo_dir(folder: Path, cutoffs_option: str | None, screen: bool = True) -> tuple[dict, dict]:
    """Every UPF of ``folder`` read and its cutoffs found, before anything is created. The cheap checks
    (files, hints, cutoffs) come first, so a bad hints file is refused before minutes of ghost screening
    (``screen`` False leaves the screening to ``screen_new_files``).
    ``--cutoffs`` adds to the hints file's cutoffs and replaces those of the elements it names."""
    try:
        files = read_upf_files(folder_upfs(folder))
        hints = folder_hints(folder, files)
        if hints is None and not cutoffs_option:
            raise PseudoFamilyError(
                f"{folder} has no hints file ({MANIFEST} with a hints_Ha column, or {CUTOFFS_JSON}); "
                "give the recommended cutoffs with --cutoffs Si=30/120,Ga=40/160 (Ry) or --cutoffs FILE.json"
            )
        cutoffs = merge_cutoffs(hints, parse_cutoffs_option(cutoffs_option) if cutoffs_option else {})
        check_cutoffs_cover(files, cutoffs)
    except PseudoFamilyError as exc:
        raise click.ClickException(str(exc)) from exc
    if screen:
        _screen_reported(files)
    return files, cutoffs


def _screen_reported(files: dict) -> None:
    try:
        screen_levels([upf.path for upf in files.values()], report=click.echo)
    except PseudoFamilyError as exc:
        raise click.ClickException(str(exc)) from exc


def _existing_profile(profile_name: str | None) -> str | None:
    """The profile setup would use, if it exists already (nothing is created here)."""
    from aiida.manage.configuration import get_config

    try:
        config = get_config()
    except Exception:  # no configuration yet: a fresh machine
        return None
    name = profile_name or config.default_profile_name
    return name if name in config.profile_names else None


def screen_new_files(files: dict, label: str, profile_name: str | None) -> None:
    """The ghost screening, before anything is created, unless the profile setup will use already has family
    ``label`` with exactly these files: they were screened when it was installed, and rerunning setup on a
    whole table should not take minutes again."""
    profile = _existing_profile(profile_name)
    if profile is not None:
        from aiida import load_profile, orm
        from aiida_pseudo.groups.family import PseudoPotentialFamily

        load_profile(profile, allow_switch=True)
        family = orm.QueryBuilder().append(PseudoPotentialFamily, filters={"label": label}).first(flat=True)
        held = {p.element: p.md5 for p in family.nodes} if family is not None else None
        if held == {element: upf.md5 for element, upf in files.items()}:
            click.echo(f"  {len(files)} UPFs as in {label} (screened when it was installed)")
            return
    _screen_reported(files)


def make_default_family(label: str) -> None:
    from aiida_slem.pseudos import default_family_label, set_default_family

    try:
        family = load_usable_family(label)
    except PseudoFamilyError as exc:
        raise click.ClickException(str(exc)) from exc
    state = "exists" if default_family_label() == label else "updated"
    set_default_family(family)
    report_item("default pseudo family", state, label)
