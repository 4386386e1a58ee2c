"""``slem project``: one pw.x SCF -> one frame of H(R), S(R), D(R) blocks (plus a JSON summary)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from slem.atomic import atomic_open


def _parse_kmesh(text: str) -> tuple[int, int, int] | None:
    if text.strip().lower() == "auto":
        return None
    try:
        mesh = tuple(int(x) for x in text.split(","))
    except ValueError:
        mesh = ()
    if len(mesh) != 3 or min(mesh) < 1:
        raise click.BadParameter(f"{text!r}: give 'auto' or three positive integers such as 8,8,8")
    return mesh


def _find_pseudo(name: str, dirs: list[Path]) -> Path:
    for folder in dirs:
        if (folder / name).is_file():
            return folder / name
    raise click.ClickException(
        f"pseudopotential {name} not found in {', '.join(str(d) for d in dirs)}; pass --pseudo-dir"
    )


def _write_json(path: Path, data: dict) -> None:
    with atomic_open(path) as handle:
        json.dump(data, handle, indent=2, sort_keys=True)


@click.command("project")
@click.option(
    "--scf-dir", type=click.Path(path_type=Path), help="Folder holding data-file-schema.xml (prefix.save)."
)
@click.option("--xml", "xml_path", type=click.Path(path_type=Path), help="The data-file-schema.xml itself.")
@click.option("--potential", type=click.Path(path_type=Path), help="pp.x plot_num=1 file (Ry), nspin=1.")
@click.option(
    "--potential-up",
    type=click.Path(path_type=Path),
    help="nspin=2: pp.x plot_num=1 spin_component=1 file (the up channel).",
)
@click.option(
    "--potential-down",
    type=click.Path(path_type=Path),
    help="nspin=2: pp.x plot_num=1 spin_component=2 file (the down channel).",
)
@click.option(
    "--basis", "basis_path", required=True, type=click.Path(path_type=Path), help="slem-basis HDF5 file."
)
@click.option("--pseudo-dir", type=click.Path(path_type=Path), help="Folder with the SCF's UPF files.")
@click.option(
    "-o", "--output", required=True, type=click.Path(path_type=Path), help="Frame file to write (HDF5)."
)
@click.option(
    "--kmesh",
    default="auto",
    show_default=True,
    help="k-mesh for D: 'auto' (resolves all stored bonds) or n1,n2,n3.",
)
@click.option("--summary", type=click.Path(path_type=Path), help="Write the checks as JSON here.")
@click.option(
    "--allow-unconverged",
    is_flag=True,
    help="Project an SCF that did not reach convergence (refused otherwise; scf_converged is recorded).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="BLAS threads [default: OMP_NUM_THREADS, else the CPUs this process may use] (docs/threading.md).",
)
def project(
    scf_dir: Path | None,
    xml_path: Path | None,
    potential: Path | None,
    potential_up: Path | None,
    potential_down: Path | None,
    basis_path: Path,
    pseudo_dir: Path | None,
    output: Path,
    kmesh: str,
    summary: Path | None,
    allow_unconverged: bool,
    threads: int | None,
) -> None:
    """Project a pw.x SCF (norm-conserving; fixed occupations or smearing; nspin 1 or 2) onto a confined
    LCAO basis. An nspin=2 SCF gives H_up, H_down, D_up and D_down beside one S."""
    from slem.threads import configure_threads

    configure_threads(threads, use_torch=False)  # numpy's OpenBLAS reads the count when it loads
    from slem.basis.orbital import BasisFileError, read_basis
    from slem.data.frame import write_frames
    from slem.projection.project import ProjectionError
    from slem.projection.project import project as run_projection
    from slem.qe.potential import PotentialFileError, read_filplot
    from slem.qe.upf import UpfError, read_upf
    from slem.qe.xml import QeXmlError, read_qe_xml

    if (scf_dir is None) == (xml_path is None):
        raise click.UsageError("give exactly one of --scf-dir and --xml")
    spin_files = [f for f in (potential_up, potential_down) if f is not None]
    if not ((potential is not None and not spin_files) or (potential is None and len(spin_files) == 2)):
        raise click.UsageError(
            "give --potential (nspin=1 SCF), or both --potential-up and --potential-down (nspin=2 SCF)"
        )
    mesh = _parse_kmesh(kmesh)
    try:
        scf = read_qe_xml(xml_path if xml_path is not None else scf_dir)
        pot = read_filplot(potential) if potential is not None else [read_filplot(f) for f in spin_files]
        bases = read_basis(basis_path)
        search = [
            d for d in (pseudo_dir, scf.path.parent, Path(scf.pseudo_dir) if scf.pseudo_dir else None) if d
        ]
        upfs = {
            label: read_upf(_find_pseudo(name, search), spin_orbit=True)
            for label, name in scf.pseudo_files.items()
        }
        result = run_projection(
            scf, pot, bases, upfs, kmesh=mesh, allow_unconverged=allow_unconverged
        )
    except (QeXmlError, PotentialFileError, BasisFileError, UpfError, ProjectionError) as exc:
        raise click.ClickException(str(exc)) from exc
    write_frames(output, [result.frame])
    checks = {**result.checks, "output": str(output)}
    if summary is not None:
        _write_json(summary, {**result.frame.metadata, "output": str(output)})
    if checks["smearing"] is None:
        levels = f"HOMO {checks['homo_ev']:.4f} eV (QE {checks['qe_homo_ev']}), LUMO {checks['lumo_ev']}"
    else:
        levels = (
            f"{checks['smearing']} smearing, degauss {checks['degauss_ev']:.4f} eV: E_F "
            f"{checks['fermi_energy_ev']:.4f} eV on the LCAO bands "
            f"(pw.x {checks['qe_fermi_energy_ev']:.4f} eV)"
        )
    click.echo(
        f"projected {result.frame.n_atoms} atoms, {checks['n_pairs']} pairs, k-mesh {checks['kmesh']} "
        f"in {checks['seconds']:.1f} s -> {output}\n"
        f"  sum Tr(DS) = {checks['sum_tr_ds']:.8f} (N_el = {checks['n_electrons']:g})\n"
        f"  sum Tr(DH) = {checks['sum_tr_dh_ev']:.6f} eV, band energy {checks['band_energy_ev']:.6f} eV\n"
        f"  {levels}\n"
        f"  H stored to r_i + r_j + {result.frame.metadata['h_range_extra_angstrom']} A; "
        f"largest dropped |H| {checks['max_h_beyond_ev']:.2e} eV (S is zero beyond r_i + r_j)"
    )
    if checks.get("magnetization_mub") is not None:
        click.echo(
            f"  magnetisation sum Tr((D_up - D_down) S) = {checks['magnetization_mub']:.4f} mu_B "
            f"(pw.x {checks['qe_magnetization_mub']}) ; "
            f"N_up {checks['electrons_up']:.4f}, N_down {checks['electrons_down']:.4f}"
        )
    if checks["lcao_band_overlap_ev"] is not None:
        click.echo(
            f"  WARNING: the SCF used fixed occupations, but on the LCAO bands of the {checks['kmesh']} mesh "
            f"the highest occupied level lies {checks['lcao_band_overlap_ev']:.3f} eV above the lowest empty "
            "one; if the material is a metal, rerun pw.x with occupations='smearing' (e.g. smearing='mv', "
            "degauss=0.02)"
        )
    if not checks["kmesh_alias_free"]:
        click.echo("  WARNING: k-mesh too coarse, blocks are aliased: " + "; ".join(checks["kmesh_problems"]))
