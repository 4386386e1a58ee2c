"""Run the whole SLEM pipeline: ``verdi run submit_pipeline.py [options]``.

The options: ``verdi run submit_pipeline.py -- --help`` (``verdi run`` takes a bare ``--help`` as its own).

With no option: the ``fast`` protocol on bulk Si (8-atom cubic cell) on this profile's localhost codes,
through the daemon if one runs (submit, then poll and print progress) or in this process otherwise.
Ends with a table of the held-out errors, the plot files and the PKs to query.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

from aiida import orm
from aiida.engine import submit

from aiida_slem.materials import MATERIALS, electronic_type, magnetization, material_names
from aiida_slem.pipeline_summary import print_summary


def _comma_list(cast):
    """An argparse type: 'a,b,c' -> [cast(a), cast(b), cast(c)]."""
    return lambda text: [cast(item.strip()) for item in text.split(",") if item.strip()]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="verdi run submit_pipeline.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--structure",
        type=pathlib.Path,
        action="append",
        default=[],
        help="An ase-readable structure file (cif, POSCAR, xyz); repeat it to build one dataset "
        "from several structures.",
    )
    parser.add_argument(
        "--material",
        choices=material_names(),
        action="append",
        default=[],
        help="Built-in cell (default: Si); repeatable, and combinable with --structure: "
        + "; ".join(f"{name}: {MATERIALS[name].description}" for name in material_names())
        + ". Metals (smeared occupations, bands validated within 1 eV of E_F): "
        + ", ".join(n for n in material_names() if MATERIALS[n].electronic_type == "metal")
        + ". Monolayers are 2D by their vacuum (docs/aiida.md).",
    )
    parser.add_argument(
        "--hold-out",
        default=None,
        metavar="LABEL",
        help="Label (material name or file stem) of one structure whose frames all become the test split: "
        "validation then measures transfer to a structure never seen in training.",
    )
    parser.add_argument(
        "--hold-out-elements",
        default=None,
        metavar="EL,EL",
        type=_comma_list(str),
        help="Hold out every structure holding all of these elements, e.g. Si,C: train on --material Si "
        "--material C, test on --material SiC (composition transfer).",
    )
    parser.add_argument(
        "--larger-cells",
        default=None,
        metavar="N,N,N",
        type=_comma_list(int),
        help="Also test on one thermally displaced supercell of each training structure, this many times "
        "the MD supercell, e.g. 2,2,2 (size transfer; one SCF of 8x the atoms per structure).",
    )
    parser.add_argument(
        "--strains",
        default=None,
        metavar="PRESET,...",
        type=_comma_list(str),
        help="Extra training MD on strained copies of every structure: 'volume' (+-3 %% volume), 'shear' "
        "(3 %% in two planes), or both ('volume,shear'), so the data covers the bond lengths and angles of "
        "structures not trained on.",
    )
    parser.add_argument(
        "--magnetization",
        default=None,
        metavar="EL=M,...",
        type=_comma_list(str),
        help="Collinear magnetism: pw.x starting magnetisation per element, e.g. Fe=0.4 (nspin=2, smeared "
        "occupations, one model head per spin channel). Fe and Ni set their own.",
    )
    parser.add_argument(
        "--spin-orbit",
        action="store_true",
        help="Spin-orbit coupling (pw.x noncolin + lspinorb, no magnetisation) with a fully relativistic "
        "--pseudo-family; the model also learns H_so_x, H_so_y, H_so_z (docs/spin-orbit.md).",
    )
    parser.add_argument("--protocol", choices=("fast", "balanced", "precise"), default="fast")
    parser.add_argument(
        "--pseudo-family",
        default=None,
        metavar="LABEL",
        help="Installed pseudopotential family (default: the one 'aiida-slem setup' recorded, else "
        "SLEM/NC/PBE/Debian); pw.x cutoffs are its recommended ones (fast: low, balanced: normal, "
        "precise: high).",
    )
    parser.add_argument(
        "--computer",
        default="localhost",
        help="Computer whose codes pw, pp and slem are used (labels pw@COMPUTER, ...).",
    )
    parser.add_argument(
        "--gpus", type=int, default=None, help="GPUs for training (one is used for prediction)."
    )
    parser.add_argument(
        "--overrides",
        type=json.loads,
        default=None,
        help='JSON merged into the protocol, e.g. \'{"train": {"config": {"training": '
        '{"max_steps": 100}}}}\'.',
    )
    parser.add_argument(
        "--options",
        type=json.loads,
        default=None,
        help='metadata.options for every job, e.g. \'{"queue_name": "gpu", "account": "abc"}\'.',
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--submit",
        dest="mode",
        action="store_const",
        const="submit",
        help="Submit to the daemon (default when a daemon runs).",
    )
    mode.add_argument(
        "--run",
        dest="mode",
        action="store_const",
        const="run",
        help="Run in this process (default when no daemon runs). Ctrl-C or SIGTERM cancels its jobs and "
        "marks what was unfinished killed; for anything long, prefer --submit with a running daemon.",
    )
    parser.add_argument(
        "--plots-dir",
        type=pathlib.Path,
        default=None,
        help="Where to copy the PNG plots (default: ./slem_pipeline_<PK>).",
    )
    return parser.parse_args(argv)


def _read_file(path: pathlib.Path) -> orm.StructureData:
    import ase.io

    if not path.is_file():
        sys.exit(f"--structure {path}: no such file")
    try:
        atoms = ase.io.read(path)
    except Exception as exc:  # noqa: BLE001 - ase raises many types for unreadable files
        sys.exit(f"--structure {path}: ase cannot read it ({exc}); give cif, POSCAR, xyz, ...")
    return orm.StructureData(ase=atoms)


def _built_in(name: str) -> orm.StructureData:
    return orm.StructureData(ase=MATERIALS[name].build())


def load_structures(args: argparse.Namespace) -> dict[str, orm.StructureData]:
    """Label -> structure for every --structure and --material (Si when none is given)."""
    structures: dict[str, orm.StructureData] = {}
    sources = [("file", p) for p in args.structure] + [("material", m) for m in args.material]
    for kind, source in sources or [("material", "Si")]:
        if kind == "file":
            label = "".join(c if c.isalnum() else "_" for c in source.stem) or "structure"
            structure = _read_file(source)
        else:
            label, structure = source, _built_in(source)
        if label in structures:
            sys.exit(f"two structures are labelled {label!r}; rename one of the files")
        structures[label] = structure
    try:
        electronic_type(args.material)
    except ValueError as exc:
        sys.exit(f"--material: {exc}")
    if args.hold_out is not None and args.hold_out not in structures:
        sys.exit(f"--hold-out {args.hold_out!r} is not one of the structures {sorted(structures)}")
    if args.hold_out is not None and len(structures) < 2:
        sys.exit("--hold-out needs at least two structures: one to train on, one held out")
    return structures


def load_codes(computer: str) -> dict:
    from aiida.common.exceptions import NotExistent

    codes = {}
    for name in ("pw", "pp", "slem"):
        try:
            codes[name] = orm.load_code(f"{name}@{computer}")
        except NotExistent:
            sys.exit(
                f"no code '{name}@{computer}'; run 'aiida-slem setup' (localhost) or set up the code on "
                f"{computer} as in docs/tutorial.md"
            )
    return codes


def daemon_running() -> bool:
    try:
        from aiida.engine.daemon.client import get_daemon_client

        return get_daemon_client().is_daemon_running
    except Exception:  # noqa: BLE001 - no daemon configured for this profile
        return False


def poll(node: orm.WorkflowNode, interval: float = 10.0, progress_every: float = 60.0) -> None:
    """Print each sub-process once when it starts and once when it ends, until the pipeline terminates;
    running training and MD jobs also report their step (and a training its loss and ETA) every minute."""
    from aiida_slem.progress import job_progress

    seen: dict[int, str] = {}
    reported = 0.0
    while True:
        descendants = node.called_descendants
        for child in sorted(descendants, key=lambda n: n.ctime):
            state = "done" if child.is_terminated else "running"
            if seen.get(child.pk) != state:
                seen[child.pk] = state
                status = (
                    ""
                    if not child.is_terminated
                    else (" ok" if child.is_finished_ok else f" exit {child.exit_status}")
                )
                print(
                    f"  {time.strftime('%H:%M:%S')} {child.process_label}<{child.pk}> {state}{status}",
                    flush=True,
                )
        if node.is_terminated:
            return
        if time.monotonic() - reported >= progress_every:
            reported = time.monotonic()
            for child in descendants:
                live = job_progress(child)
                if live:
                    stamp = time.strftime("%H:%M:%S")
                    print(f"  {stamp} {child.process_label}<{child.pk}> {live}", flush=True)
        time.sleep(interval)


def pipeline_overrides(args: argparse.Namespace) -> dict:
    overrides = dict(args.overrides or {})
    if args.hold_out is not None:
        overrides["hold_out_structure"] = args.hold_out
    if args.hold_out_elements is not None:
        overrides["hold_out_elements"] = args.hold_out_elements
    if args.larger_cells is not None:
        overrides["larger_cells"] = args.larger_cells
    if args.strains:
        from aiida_slem.workflows.strain import preset_strains

        try:
            strains = preset_strains(args.strains)
        except ValueError as exc:
            sys.exit(f"--strains: {exc}")
        overrides["md"] = {**(overrides.get("md") or {}), "strains": strains}
    if args.pseudo_family is not None:
        overrides["pseudo_family"] = args.pseudo_family
    if electronic_type(args.material) == "metal":  # smeared occupations for Al, Cu, Fe, Ni, graphene
        overrides.setdefault("electronic_type", "metal")
    moments = dict(magnetization(args.material))
    for item in args.magnetization or []:
        element, _, value = item.partition("=")
        try:
            moments[element.strip()] = float(value)
        except ValueError:
            sys.exit(f"--magnetization: {item!r} is not ELEMENT=VALUE, e.g. Fe=0.4")
    if moments:
        overrides.setdefault("magnetization", moments)
        overrides.setdefault("electronic_type", "metal")  # nspin=2 needs smeared occupations
    if args.spin_orbit:
        overrides["spin_orbit"] = True
    return overrides


def checked_builder(workchain, codes, structures, protocol, overrides, options, gpus):
    """The pipeline's builder, refused here (nothing stored, no DFT run) if its inputs are: a family that
    lacks an element, a UPF slem cannot use, a spin-polarised request, a misspelt override."""
    try:
        builder = workchain.get_builder_from_protocol(
            codes, structures, protocol=protocol, overrides=overrides, options=options, gpus=gpus
        )
    except ValueError as exc:
        sys.exit(f"refused: {exc}")
    error = workchain.spec().inputs.validate(builder._inputs(prune=True))
    if error is not None:
        sys.exit(f"refused: {error.message}")
    return builder


def main(argv: list[str]) -> int:
    from aiida_slem.workflows.pipeline import SlemPipelineWorkChain

    from aiida_slem.interrupt import Interrupted, run_interruptible

    args = parse_args(argv)
    structures = load_structures(args)
    codes = load_codes(args.computer)
    overrides = pipeline_overrides(args)
    builder = checked_builder(
        SlemPipelineWorkChain, codes, structures, args.protocol, overrides, args.options, args.gpus
    )
    mode = args.mode or ("submit" if daemon_running() else "run")
    described = ", ".join(
        f"{label} {st.get_formula()} ({len(st.sites)} atoms)" for label, st in structures.items()
    )
    held = f", held out: {args.hold_out}" if args.hold_out else ""
    if args.hold_out_elements:
        held += f", held out: every structure with {' and '.join(args.hold_out_elements)}"
    if args.larger_cells:
        held += f", larger cells: {'x'.join(map(str, args.larger_cells))} supercells"
    print(
        f"SLEM pipeline, protocol '{args.protocol}', {described}{held}, computer {args.computer}, mode {mode}"
    )
    if mode == "submit":
        if not daemon_running():
            sys.exit("--submit needs a running daemon: verdi daemon start (or use --run)")
        node = submit(builder)
        print(
            f"submitted SlemPipelineWorkChain<{node.pk}>; progress (Ctrl-C stops watching, not the pipeline):"
        )
        poll(node)
    else:
        try:
            node = run_interruptible(builder)
        except Interrupted as exc:
            print(exc, file=sys.stderr)
            return 128 + exc.signum
    print_summary(node, args.plots_dir)
    return 0 if node.is_finished_ok else 1


# ``verdi run`` executes this file with __name__ == "__main__" and the script's own arguments in sys.argv
if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
