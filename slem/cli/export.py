"""``slem export``: convert a frames file to DeePTB or DeepH folders, and back with --import-from."""

from __future__ import annotations

from pathlib import Path

import click


def _basis(values: tuple[str, ...]) -> dict[str, str] | None:
    from slem.data.orbitals import BasisStringError, parse_basis_spec  # keeps --help light

    if not values:
        return None
    try:
        return parse_basis_spec(list(values))
    except BasisStringError as exc:
        raise click.BadParameter(str(exc), param_hint="--basis") from exc


@click.command("export")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["deeptb", "deeph"]), help="Folder format to write.")
@click.option(
    "--import-from",
    "import_from",
    type=click.Choice(["deeptb", "deeph"]),
    help="Read SOURCE as a DeePTB/DeepH folder and write a frames HDF5 file instead.",
)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True, help="Output folder or .h5 file."
)
@click.option(
    "--basis",
    multiple=True,
    help="Basis per element, e.g. --basis Si=1s1p (repeat or comma-separate). On import it is needed when "
    "the folder does not say (DeePTB without basis.dat); on export it is checked against the frames.",
)
@click.option("--prefix", default=None, help="DeePTB trajectory-folder prefix (export default 'frame').")
@click.option(
    "--spin",
    type=click.Choice(["up", "down"]),
    default=None,
    help="Export one channel of spin-polarised frames (H_up, D_up -> hamiltonians.h5 ...), once per channel.",
)
def export(
    source: Path,
    fmt: str | None,
    import_from: str | None,
    output: Path,
    basis: tuple[str, ...],
    prefix: str | None,
    spin: str | None,
) -> None:
    """Convert SOURCE (a frames .h5 file) to --format FOLDER, or SOURCE folder --import-from FORMAT to .h5.

    \b
    slem export frames.h5 --format deeptb -o dptb_data/
    slem export frames.h5 --format deeph -o deeph_data/
    slem export --import-from deeptb dptb_data/ -o frames.h5 --basis Si=1s1p
    """
    from slem.data import deeph, deeptb
    from slem.data.frame import FrameFormatError, read_frames, write_frames
    from slem.data.operators import select_spin_channel

    given = _basis(basis)
    if (fmt is None) == (import_from is None):
        raise click.UsageError("give exactly one of --format (export) or --import-from (import)")
    try:
        if import_from:
            if not source.is_dir():
                raise click.BadParameter(f"{source} is not a folder", param_hint="SOURCE")
            if import_from == "deeptb":
                frames = deeptb.read_deeptb(source, given, prefix)
            else:
                frames = deeph.read_deeph(source, given)
            write_frames(output, frames, attrs={"imported_from": import_from, "source": str(source)})
            click.echo(f"wrote {len(frames)} frame(s) to {output}")
        else:
            frames = read_frames(source)
            if spin is not None:
                select_spin_channel(frames, spin)
            if fmt == "deeptb":
                deeptb.write_deeptb(frames, output, prefix or "frame", given)
            else:
                deeph.write_deeph(frames, output, given)
            click.echo(f"wrote {len(frames)} frame(s) as {fmt} to {output}")
    except (FrameFormatError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
