"""SLEM (this package) against DeePTB 2.2.1's SLEM on the same Si64 frame, same hyperparameters.

Usage: python benchmarks/slem_vs_deeptb.py [--steps 100] [--sizes 64,512,4096] [--threads 2]
                                           [--timed-steps 10] [--skip-deeptb]

Each measurement runs in its own subprocess (so peak RSS is that measurement's alone): one
training run of ``--steps`` Adam steps on the Si64 frame (median step time after warm-up, H MAE
at the end, peak RSS), and one inference forward pass per size (supercells of the frame). DeePTB
runs under benchmarks/_deeptb_venv, built here if missing (torch 2.13.0 CPU, dptb 2.2.1 without
its pins, torch_scatter from source: ~10 min). ``--skip-deeptb`` compares against the numbers
measured earlier (/work/shared/design/slem.md) instead. Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ARCHIVE = HERE.parent / "tests" / "data" / "deeptb_si64" / "Si64.tar.xz"
VENV = HERE / "_deeptb_venv"
R_MAX = 7.4
HIDDEN = "32x0e+32x1o+16x2e"
LR = 5e-3
# DeePTB's example uses 32-wide hidden layers for its latent MLP ("latent_channels") and for the
# latent -> SO(2) weight function ("tp_radial_channels"); ours are set to the same by default.
WIDTHS = "32"
REPEATS = {64: (1, 5), 512: (1, 2)}  # atoms -> (warm-up, timed); larger systems: one cold pass
# DeePTB 2.2.1 measured earlier on this machine (2 threads); used with --skip-deeptb.
PEER = {
    "train": {"step_s": 1.65, "peak_rss_mb": 1500.0, "edges": 5504, "h_mae_mev": 6.3, "steps": 100},
    "forward": {64: {"time_s": 0.40, "peak_rss_mb": 600.0, "edges": 5504},
                512: {"time_s": 5.5, "peak_rss_mb": 1500.0, "edges": 44032},
                4096: {"time_s": 74.0, "peak_rss_mb": 6200.0, "edges": 352256}},
}
DEEPTB_DEPS = [
    "numpy", "scipy>=1.11,<1.13", "spglib", "matplotlib", "ase", "pyyaml", "dargs==0.4.4", "e3nn>=0.5.1",
    "torch-runstats==0.2.0", "torch_geometric>=2.4.0", "opt-einsum==3.3.0", "h5py>=3.7,<3.12,!=3.10.0",
    "lmdb==1.4.1", "pyfiglet==1.0.2", "tensorboard", "seekpath", "rich>=13", "setuptools", "wheel",
]


def rss_mb() -> float:
    """Current resident set size (Linux /proc), MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def unpack(dest: Path) -> Path:
    if not ARCHIVE.is_file():
        raise FileNotFoundError(f"{ARCHIVE} is missing; it ships with the repository (git checkout it)")
    with tarfile.open(ARCHIVE) as archive:
        archive.extractall(dest, filter="data")
    return dest


def supercell(root: Path, atoms_wanted: int):
    """ase.Atoms of the Si64 frame repeated n x n x n to ``atoms_wanted`` atoms."""
    import ase  # both venvs have ase; imported late so --help is instant
    import numpy as np

    frame = root / "Si64.0"
    pos = np.loadtxt(frame / "positions.dat").reshape(-1, 3)
    n = round((atoms_wanted / len(pos)) ** (1 / 3))
    if n**3 * len(pos) != atoms_wanted:
        raise ValueError(f"--sizes must be 64 * n^3 (64, 512, 4096, ...), got {atoms_wanted}")
    atoms = ase.Atoms(numbers=np.loadtxt(frame / "atomic_numbers.dat").astype(int).reshape(-1),
                      positions=pos, cell=np.loadtxt(frame / "cell.dat").reshape(3, 3), pbc=True)
    return atoms.repeat((n, n, n))


def timed(fn, warm: int, reps: int, device: str = "cpu") -> tuple[float, float]:
    """Median wall and median process-CPU seconds of ``fn`` (CPU time summed over threads: on a
    loaded machine it moves less than wall time, so both are reported). On CUDA each call is timed to the
    end of its kernels, not to the end of their launch."""
    import torch

    def call():
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for _ in range(warm):
        call()
    wall, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        call()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def memory(device: str, base: float) -> dict:
    """Peak resident memory of the process, and on CUDA the peak memory torch allocated on the GPU."""
    out = {"peak_rss_mb": peak_rss_mb(), "base_rss_mb": base}
    if device.startswith("cuda"):
        import torch

        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


# ---------------------------------------------------------------- our side
def widths(text: str) -> list[int]:
    return [int(w) for w in text.split(",") if w]


def our_trainer(root: Path, knots: int = 24, latent_hidden: str = WIDTHS, radial_hidden: str = WIDTHS,
                device: str = "cpu"):
    """(model, graph, step, h_mae_mev) of our side on the Si64 frame: ``step()`` is one Adam step of H + S
    as ``slem train`` takes it and returns the loss; ``h_mae_mev()`` is the H MAE over all blocks."""
    import torch

    from slem.data.deeptb import read_deeptb
    from slem.data.graph import build_graph
    from slem.model import SlemConfig, build_model, fit_rescale
    from slem.train.dataset import graph_to
    from slem.train.loss import BlockLoss, block_errors

    torch.manual_seed(0)
    frame = read_deeptb(root)[0]
    config = SlemConfig(species=["Si"], basis={"Si": "1s1p"}, r_cut={"Si": R_MAX}, n_layers=3,
                        hidden_irreps=HIDDEN, latent_dim=64, n_radial=10, avg_num_neighbors=86.0,
                        bond_rescale_knots=knots, latent_hidden=widths(latent_hidden),
                        radial_hidden=widths(radial_hidden))
    model = build_model(config)
    graph = build_graph(frame, ["Si"], {"Si": R_MAX}, dtype=torch.float32)
    fit_rescale(model, [graph])
    model, graph = model.to(device), graph_to(graph, torch.device(device))
    loss_fn = BlockLoss(["H", "S"])
    opt = torch.optim.Adam(model.parameters(), lr=LR, foreach=True)  # as slem train builds it

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss, _ = loss_fn(model(graph), graph)
        loss.backward()
        opt.step()
        return float(loss.detach())

    def h_mae_mev() -> float:
        model.eval()
        with torch.no_grad():
            err = block_errors(model(graph), graph, ["H"])["H"]
        model.train()
        return 1e3 * err[0] / err[2]

    return model, graph, opt, step, h_mae_mev


def ours(task: str, root: Path, steps: int, timed_steps: int, atoms_n: int, knots: int = 24,
         edge_chunk: int = 0, latent_hidden: str = WIDTHS, radial_hidden: str = WIDTHS,
         device: str = "cpu") -> dict:
    import torch

    from slem.data.graph import build_graph
    from slem.train.dataset import graph_to

    model, graph, _, step, h_mae_mev = our_trainer(root, knots, latent_hidden, radial_hidden, device)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if task == "train":
        base = rss_mb()
        wall, cpu = timed(step, steps - timed_steps, timed_steps, device)
        return {"step_s": wall, "step_cpu_s": cpu, "steps": steps, "params": params,
                "edges": int(graph["edge_index"].shape[1]), "h_mae_mev": h_mae_mev(), **memory(device, base)}
    atoms = supercell(root, atoms_n)
    big = build_graph(atoms, ["Si"], {"Si": R_MAX}, dtype=torch.float32, basis={"Si": "1s1p"})
    big = graph_to(big, torch.device(device))
    model.eval()
    base = rss_mb()
    warm, reps = REPEATS.get(atoms_n, (0, 1))
    with torch.no_grad():
        wall, cpu = timed(lambda: model(big, edge_chunk=edge_chunk or None), warm, reps, device)
    return {"time_s": wall, "cpu_s": cpu, "edges": int(big["edge_index"].shape[1]), **memory(device, base)}


# ---------------------------------------------------------------- DeePTB's side
def deeptb_options(device: str = "cpu") -> tuple[dict, dict]:
    """The model options of DeePTB's own Si e3 example (its reference checkpoint's config)."""
    embedding = {"method": "slem", "r_max": {"Si": R_MAX}, "irreps_hidden": HIDDEN, "n_layers": 3,
                 "avg_num_neighbors": 86, "tp_radial_emb": True, "n_radial_basis": 10,
                 "PolynomialCutoff_p": 6, "cutoff_type": "polynomial", "env_embed_multiplicity": 10,
                 "tp_radial_channels": [32], "latent_channels": [32], "latent_dim": 64, "res_update": True,
                 "res_update_ratios": 0.5, "res_update_ratios_learnable": False, "universal": False}
    prediction = {"method": "e3tb", "neurons": [64, 64], "scales_trainable": False,
                  "shifts_trainable": False, "activation": "tanh", "if_batch_normalized": False}
    common = {"basis": {"Si": "1s1p"}, "device": device, "overlap": True, "dtype": "float32", "seed": 0}
    return {"embedding": embedding, "prediction": prediction}, common


def deeptb_trainer(root: Path, device: str = "cpu"):
    """(model, data, opt, step, h_mae_mev) of DeePTB's side, as its trainer does one step (``hamil_abs``
    loss with the overlap, Adam); the H MAE is over its node and edge features, the same block elements."""
    import torch
    from dptb.data import AtomicData, AtomicDataDict, build_dataset
    from dptb.data.dataloader import DataLoader
    from dptb.nn.build import build_model
    from dptb.nnops.loss import HamilLossAbs

    torch.manual_seed(0)
    model_options, common = deeptb_options(device)
    model = build_model(model_options=model_options, common_options=common)
    dataset = build_dataset(root=str(root), r_max={"Si": R_MAX}, type="DefaultDataset", prefix="Si64",
                            get_Hamiltonian=True, get_overlap=True, basis=common["basis"])
    dataset.E3statistics(model=model)
    batch = next(iter(DataLoader(dataset, batch_size=1, shuffle=False)))
    info = {k: getattr(batch, k) for k in ("__slices__", "__cumsum__", "__cat_dims__",
                                            "__num_nodes_list__", "__data_class__")}
    data = AtomicData.to_AtomicDataDict(batch.to(device))
    loss_fn = HamilLossAbs(idp=model.idp, overlap=True)
    opt = torch.optim.Adam(model.parameters(), lr=LR)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        ref = dict(data)  # the trainer's shallow copies: the model writes its output into the dict
        out = model(dict(data))
        out.update(info)
        ref.update(info)
        loss = loss_fn(out, ref)
        loss.backward()
        opt.step()
        return float(loss.detach())

    def h_mae_mev() -> float:
        model.eval()
        with torch.no_grad():
            out = model(dict(data))
        model.train()
        nmask = model.idp.mask_to_nrme[data[AtomicDataDict.ATOM_TYPE_KEY].flatten()]
        emask = model.idp.mask_to_erme[out[AtomicDataDict.EDGE_TYPE_KEY].flatten()]
        node, edge = AtomicDataDict.NODE_FEATURES_KEY, AtomicDataDict.EDGE_FEATURES_KEY
        diff = torch.cat([(out[node] - data[node])[nmask], (out[edge] - data[edge])[emask]])
        return 1e3 * float(diff.abs().mean())

    model.train()
    return model, data, opt, step, h_mae_mev


def deeptb(task: str, root: Path, steps: int, timed_steps: int, atoms_n: int, device: str = "cpu") -> dict:
    import torch
    from dptb.data import AtomicData, AtomicDataDict

    model, data, _, step, h_mae_mev = deeptb_trainer(root, device)
    params = sum(p.numel() for p in model.parameters())
    if task == "train":
        base = rss_mb()
        wall, cpu = timed(step, steps - timed_steps, timed_steps, device)
        return {"step_s": wall, "step_cpu_s": cpu, "steps": steps, "params": params,
                "edges": int(data[AtomicDataDict.EDGE_INDEX_KEY].shape[1]),
                "h_mae_mev": h_mae_mev(), **memory(device, base)}
    atoms = supercell(root, atoms_n)
    data = AtomicData.to_AtomicDataDict(AtomicData.from_ase(atoms, r_max={"Si": R_MAX}).to(device))
    model.eval()
    base = rss_mb()
    warm, reps = REPEATS.get(atoms_n, (0, 1))
    with torch.no_grad():
        wall, cpu = timed(lambda: model(dict(data)), warm, reps, device)
    return {"time_s": wall, "cpu_s": cpu, "edges": int(data[AtomicDataDict.EDGE_INDEX_KEY].shape[1]),
            **memory(device, base)}


# ---------------------------------------------------------------- orchestration
def build_venv(log) -> Path:
    py = VENV / "bin" / "python"
    check = "import dptb, torch_scatter, torch; assert torch.__version__.startswith('2.13.0')"
    probe = [str(py), "-c", check]
    if py.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return py
    print(f"building DeePTB 2.2.1 in {VENV} (torch_scatter compiles from source: ~10 min)", file=log)
    pip = [str(py), "-m", "pip", "install", "-q"]
    for cmd in ([sys.executable, "-m", "venv", str(VENV)], pip + ["torch==2.13.0"],
                pip + ["--no-deps", "dptb==2.2.1"], pip + DEEPTB_DEPS,
                pip + ["--no-build-isolation", "torch_scatter==2.1.2"]):
        subprocess.run(cmd, check=True, env={**os.environ, "MAX_JOBS": "2"})
    return py


def run_worker(python: str, side: str, task: str, args, atoms_n: int = 64) -> dict:
    cmd = [python, str(Path(__file__).resolve()), "--worker", side, "--task", task, "--atoms", str(atoms_n),
           "--steps", str(args.steps), "--timed-steps", str(args.timed_steps), "--threads", str(args.threads),
           "--data", str(args.data), "--bond-rescale-knots", str(args.bond_rescale_knots),
           "--edge-chunk", str(args.edge_chunk), "--latent-hidden", args.latent_hidden,
           "--radial-hidden", args.radial_hidden, "--device", args.device]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    # both sides wait as `slem train` does, unless the caller's environment says otherwise
    from slem.threads import WAIT_POLICY, WAIT_POLICY_ENV  # not in DeePTB's venv

    env.setdefault(WAIT_POLICY_ENV, WAIT_POLICY)
    if side == "ours" and args.system_malloc:
        env["SLEM_SYSTEM_MALLOC"] = "1"
    if side == "deeptb" and args.peer_kept_memory:
        # the same glibc thresholds that slem.allocator sets for our side, through glibc's variables
        from slem.allocator import MMAP_THRESHOLD_BYTES, TRIM_THRESHOLD_BYTES  # not in DeePTB's venv

        env["MALLOC_MMAP_THRESHOLD_"] = str(MMAP_THRESHOLD_BYTES)
        env["MALLOC_TRIM_THRESHOLD_"] = str(TRIM_THRESHOLD_BYTES)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} {task} {atoms_n} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def table(res: dict, peer_label: str, threads: int = 2) -> str:
    rows = [("", "ours", peer_label, "ours/theirs")]
    tr, tt = res["ours"]["train"], res["peer"]["train"]
    rows.append(("train step (s, 64 atoms)", f"{tr['step_s']:.3f}", f"{tt['step_s']:.3f}",
                 ratio(tr["step_s"], tt["step_s"])))
    if "step_cpu_s" in tr and "step_cpu_s" in tt:
        rows.append((f"  CPU s per step ({threads} threads)", f"{tr['step_cpu_s']:.3f}",
                     f"{tt['step_cpu_s']:.3f}", ratio(tr["step_cpu_s"], tt["step_cpu_s"])))
    rows.append(("train peak RSS (MB)", f"{tr['peak_rss_mb']:.0f}", f"{tt['peak_rss_mb']:.0f}",
                 ratio(tr["peak_rss_mb"], tt["peak_rss_mb"])))
    if "peak_gpu_mb" in tr:
        peer_gpu = tt.get("peak_gpu_mb")
        rows.append(("train peak GPU memory (MB)", f"{tr['peak_gpu_mb']:.0f}",
                     f"{peer_gpu:.0f}" if peer_gpu else "-", ratio(tr["peak_gpu_mb"], peer_gpu)))
    rows.append((f"H MAE after {tr['steps']} steps (meV)", f"{tr['h_mae_mev']:.2f}",
                 f"{tt['h_mae_mev']:.2f} ({tt['steps']} steps)", ratio(tr["h_mae_mev"], tt["h_mae_mev"])))
    for n in sorted(res["ours"]["forward"]):
        o, t = res["ours"]["forward"][n], res["peer"]["forward"].get(n)
        t = t or {"time_s": None, "peak_rss_mb": None, "edges": None}
        us = lambda r: 1e6 * r["time_s"] / r["edges"] if r["time_s"] else None  # noqa: E731
        kb = lambda r: 1024 * r["peak_rss_mb"] / r["edges"] if r["peak_rss_mb"] else None  # noqa: E731
        fmt = lambda v, f: format(v, f) if v is not None else "-"  # noqa: E731
        rows.append((f"forward {n} atoms (s)", f"{o['time_s']:.3f}", fmt(t["time_s"], ".3f"),
                     ratio(o["time_s"], t["time_s"])))
        if "cpu_s" in o and "cpu_s" in t:
            rows.append((f"  CPU s ({threads} threads)", f"{o['cpu_s']:.3f}", f"{t['cpu_s']:.3f}",
                         ratio(o["cpu_s"], t["cpu_s"])))
        rows.append(("  edges ours / theirs", str(o["edges"]), fmt(t["edges"], "d"), ""))
        rows.append(("  time per edge (us)", f"{us(o):.2f}", fmt(us(t), ".2f"), ratio(us(o), us(t))))
        rows.append(("  peak RSS (MB)", f"{o['peak_rss_mb']:.0f}", fmt(t["peak_rss_mb"], ".0f"),
                     ratio(o["peak_rss_mb"], t["peak_rss_mb"])))
        rows.append(("  peak RSS per edge (KB)", f"{kb(o):.2f}", fmt(kb(t), ".2f"), ratio(kb(o), kb(t))))
        if "base_rss_mb" in o and "base_rss_mb" in t:
            inc = lambda r: 1024 * (r["peak_rss_mb"] - r["base_rss_mb"]) / r["edges"]  # noqa: E731
            rows.append(("  RSS growth per edge (KB)", f"{inc(o):.2f}", f"{inc(t):.2f}",
                         ratio(inc(o), inc(t))))
        if "peak_gpu_mb" in o:
            gpu = t.get("peak_gpu_mb")
            rows.append(("  peak GPU memory (MB)", f"{o['peak_gpu_mb']:.0f}", fmt(gpu, ".0f"),
                         ratio(o["peak_gpu_mb"], gpu)))
    return text_table(rows)


def ours_table(res: dict) -> str:
    """Our side alone: on a GPU there is no recorded peer to fall back on (those numbers are the CPU's)."""
    tr = res["ours"]["train"]
    rows = [("", "ours"), ("train step (s, 64 atoms)", f"{tr['step_s']:.4f}"),
            (f"H MAE after {tr['steps']} steps (meV)", f"{tr['h_mae_mev']:.2f}")]
    for n, o in sorted(res["ours"]["forward"].items()):
        rows.append((f"forward {n} atoms (s)", f"{o['time_s']:.4f}"))
        rows.append(("  time per edge (us)", f"{1e6 * o['time_s'] / o['edges']:.3f}"))
        if "peak_gpu_mb" in o:
            rows.append(("  peak GPU memory (MB)", f"{o['peak_gpu_mb']:.0f}"))
    return text_table(rows)


def text_table(rows: list[tuple[str, ...]]) -> str:
    """Rows of strings as left-aligned columns, two spaces apart."""
    width = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, width, strict=True)) for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100, help="training steps on Si64 for both sides")
    parser.add_argument("--timed-steps", type=int, default=10, help="median over the last N steps")
    parser.add_argument("--sizes", default="64,512,4096", help="forward-pass sizes in atoms (64 * n^3)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads on both sides")
    parser.add_argument("--skip-deeptb", action="store_true", help="compare with the recorded DeePTB numbers")
    parser.add_argument("--bond-rescale-knots", type=int, default=24,
                        help="our model's distance-dependent hopping rescale (SlemConfig.bond_rescale_knots)")
    parser.add_argument("--edge-chunk", type=int, default=8192,
                        help="our forward passes run each layer in slices of this many edges (same result, "
                        "bounded temporaries); 0 = one slice")
    parser.add_argument("--latent-hidden", default=WIDTHS,
                        help="our latent MLP's hidden widths, comma-separated (DeePTB's latent_channels; "
                        "the library default is 128)")
    parser.add_argument("--radial-hidden", default=WIDTHS,
                        help="hidden widths of our latent -> SO(2) weight function (DeePTB's "
                        "tp_radial_channels); '' = one linear map, the library default")
    parser.add_argument("--system-malloc", action="store_true",
                        help="run our side with glibc's malloc defaults instead of what the slem command "
                        "sets (slem/allocator.py)")
    parser.add_argument("--peer-kept-memory", action="store_true",
                        help="give DeePTB the same malloc thresholds as our side (glibc's environment "
                        "variables)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (both sides; times wait for the GPU)")
    parser.add_argument("--peer-python", default=None,
                        help="a python that imports dptb and torch_scatter (default: build the venv "
                             "benchmarks/_deeptb_venv here; on a machine without network, pass one)")
    parser.add_argument("--worker", choices=["ours", "deeptb"], help=argparse.SUPPRESS)
    parser.add_argument("--task", choices=["train", "forward"], help=argparse.SUPPRESS)
    parser.add_argument("--atoms", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps < 1 or args.timed_steps < 1:
        parser.error("--steps and --timed-steps must be positive")
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        if args.worker == "ours":
            from slem.allocator import keep_freed_memory

            keep_freed_memory()  # as the slem command does; SLEM_SYSTEM_MALLOC=1 (--system-malloc) skips it
        common = (args.task, args.data, args.steps, min(args.timed_steps, args.steps), args.atoms)
        out = (ours(*common, args.bond_rescale_knots, args.edge_chunk, args.latent_hidden, args.radial_hidden,
                    args.device)
               if args.worker == "ours"
               else deeptb(*common, args.device))
        print(json.dumps(out))
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    bad = [n for n in sizes if n < 64 or 64 * round((n / 64) ** (1 / 3)) ** 3 != n]
    if bad:
        parser.error(f"--sizes must be 64 * n^3 atoms (64, 512, 4096, ...), got {bad}")
    with tempfile.TemporaryDirectory() as tmp:
        args.data = unpack(Path(tmp))
        sides = {"ours": sys.executable}
        if not args.skip_deeptb:
            sides["peer"] = args.peer_python or str(build_venv(sys.stderr))
        # Interleaved (ours, theirs) per measurement, so both see similar load on a shared machine.
        res = {side: {"train": None, "forward": {}} for side in sides}
        loads = []
        for task, n in [("train", 64)] + [("forward", n) for n in sizes]:
            for side, python in sides.items():
                worker = "ours" if side == "ours" else "deeptb"
                print(f"[{side}] {task} {n} atoms ...", file=sys.stderr, flush=True)
                out = run_worker(python, worker, task, args, n)
                out["load"] = os.getloadavg()[0]
                loads.append(out["load"])
                print(json.dumps(out), file=sys.stderr, flush=True)
                if task == "train":
                    res[side]["train"] = out
                else:
                    res[side]["forward"][n] = out
    label = "DeePTB 2.2.1"
    if args.skip_deeptb and args.device != "cpu":
        print(f"device: {args.device}; DeePTB skipped, and its recorded numbers are the CPU's: ours alone")
        print(ours_table(res))
        print(json.dumps(res, default=str))
        return
    if args.skip_deeptb:
        res["peer"], label = PEER, "DeePTB 2.2.1 (recorded)"
    print(f"device: {args.device}   threads: {args.threads}   our edge_chunk: {args.edge_chunk or 'off'}   "
          "1-min load average after each run: "
          f"{' '.join(f'{x:.1f}' for x in loads)} (2 cores)   "
          f"params ours/theirs: {res['ours']['train']['params']}/{res['peer']['train'].get('params', '-')}")
    print(f"our widths: latent_hidden [{args.latent_hidden}], radial_hidden [{args.radial_hidden}]   malloc: "
          f"ours {'glibc defaults' if args.system_malloc else 'freed memory kept (slem.allocator)'}, "
          f"DeePTB {'same thresholds as ours' if args.peer_kept_memory else 'glibc defaults'}")
    print(table(res, label, args.threads))
    print(json.dumps(res, default=str))


if __name__ == "__main__":
    main()
