"""The machine's limit: floating-point operations of the benchmark model per edge, and how close each kernel
runs to the CPU's FP32 peak.

Usage: python benchmarks/flops.py [--threads 2] [--reps 5] [--top 12]

Model and frame: those of ``benchmarks/slem_vs_deeptb.py`` (DeePTB's Si64 frame, 3 layers,
32x0e+32x1o+16x2e, 5504 edges). FLOPs are counted by torch (``torch.utils.flop_counter``: matrix products,
one multiply-add = 2 FLOPs; elementwise work is not counted, so it shows up only as time) for one forward pass
and one training step (forward, backward, Adam), split by the model's modules. Achieved rates are counted
FLOPs over the median wall time of ``--reps`` passes. The peak is stated two ways: nominal (2 FMA units x 8
FP32 lanes x 2 per core per cycle x the TSC clock that the kernel reports, for the AVX2 cores of these
machines) and attained (a 2048^3 sgemm through torch, the best these threads reach in practice).

The kernel table (torch profiler, one training step) lists each op's self time, its share, its FLOPs and its
GFLOP/s: the ops with time and no FLOPs (copies, gathers, elementwise products) and the small GEMMs far below
the attained peak are where the remaining speed is.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import slem_vs_deeptb as pair  # noqa: E402  (same folder)

FLOPS_PER_CYCLE_CORE = 2 * 8 * 2  # two 256-bit FMA pipes, 8 FP32 lanes, multiply + add


def tsc_ghz() -> float | None:
    """The TSC clock the kernel measured at boot (a VM reports no cpu MHz); None when unreadable."""
    import subprocess

    try:
        text = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"tsc: Detected ([0-9.]+) MHz", text)
    return float(match.group(1)) / 1e3 if match else None


def median_time(fn, reps: int) -> float:
    """Median wall seconds of ``fn`` after two warm-up calls (``slem_vs_deeptb.timed``)."""
    return pair.timed(fn, 2, reps)[0]


def attained_peak(reps: int) -> float:
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    return 2 * 2048**3 / median_time(lambda: a @ b, reps) / 1e9


def count(fn):
    """(total FLOPs, {module: {op: FLOPs}}) of one call of ``fn``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops(), counter.get_flop_counts()


CATEGORIES = (  # first match on a module's dotted name; FLOPs counted where the module itself computes
    (r"\.radial(\.|$)", "radial MLPs (latent -> SO(2) weights)"),
    (r"heads\.S", "S head (an MLP of the bond's scalars)"),
    (r"_update$|\.so2$", "SO(2) maps (edge, node and hidden updates)"),
    (r"latent_mlp", "latent MLPs"),
    (r"env_weights|\.scale$|\.post$|_res$", "linear maps (post, scale, residual, environment)"),
)


def category_rows(counts: dict, total: float) -> list[tuple[str, str, str]]:
    """FLOPs by kind of kernel: each module's own FLOPs (its total less its children's), batched matrix
    products (the rotations into and out of the bond frame) apart."""
    own = defaultdict(float)
    for name, ops in counts.items():
        if name == "Global":  # the whole call, not a module
            continue
        below = [c for c in counts if c.startswith(name + ".")]
        # the nearest counted descendants (containers such as a ModuleDict compute nothing and are absent)
        children = [c for c in below if not any(c.startswith(b + ".") for b in below)]
        for op, flops in ops.items():
            rest = flops - sum(counts[c].get(op, 0) for c in children)
            if str(op).startswith("aten.bmm"):
                own["rotations (bmm)"] += rest
                continue
            label = next((label for pattern, label in CATEGORIES if re.search(pattern, name)), "other")
            own[label] += rest
    return [(label, f"{flops / 1e9:.3f}", f"{100 * flops / total:.1f} %")
            for label, flops in sorted(own.items(), key=lambda kv: -kv[1]) if flops > 0]


def kernel_rows(step, peak: float, top: int) -> list[tuple[str, ...]]:
    """Per-op self time and FLOPs of one training step, by self time."""
    from torch.profiler import ProfilerActivity, profile

    step()
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        step()
    ops = defaultdict(lambda: [0.0, 0.0, 0])
    for event in prof.key_averages():
        entry = ops[event.key]
        entry[0] += event.self_cpu_time_total / 1e6
        entry[1] += event.flops or 0
        entry[2] += event.count
    total = sum(v[0] for v in ops.values())
    rows = []
    for name, (seconds, flops, calls) in sorted(ops.items(), key=lambda kv: -kv[1][0])[:top]:
        rate = flops / seconds / 1e9 if flops and seconds else 0.0
        rows.append((name, str(calls), f"{1e3 * seconds:.1f}", f"{100 * seconds / total:.1f} %",
                     f"{flops / 1e9:.3f}" if flops else "-", f"{rate:.0f}" if rate else "-",
                     f"{100 * rate / peak:.0f} %" if rate else "-"))
    return rows


GEMMS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def gemm_rows(step, peak: float, top: int) -> list[tuple[str, ...]]:
    """The matrix products of one training step grouped by operand shapes, by self time."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], with_flops=True, record_shapes=True) as prof:
        step()
    rows = []
    events = [e for e in prof.key_averages(group_by_input_shape=True) if e.key in GEMMS]
    for event in sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]:
        seconds = event.self_cpu_time_total / 1e6
        shapes = " ".join("x".join(map(str, s)) for s in event.input_shapes if s)
        rate = event.flops / seconds / 1e9
        rows.append((event.key, shapes, str(event.count), f"{1e3 * seconds:.1f}", f"{rate:.0f}",
                     f"{100 * rate / peak:.0f} %"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--top", type=int, default=12, help="kernels listed, by self time")
    args = parser.parse_args()
    import os

    import torch

    from slem.allocator import keep_freed_memory

    torch.set_num_threads(args.threads)
    keep_freed_memory()
    with tempfile.TemporaryDirectory() as tmp:
        root = pair.unpack(Path(tmp))
        model, graph, _, step, _ = pair.our_trainer(root)
    edges = int(graph["edge_index"].shape[1])

    def forward():
        with torch.no_grad():
            model(graph)

    model.eval()
    fwd_flops, fwd_modules = count(forward)
    fwd_s = median_time(forward, args.reps)
    model.train()
    step_flops, _ = count(step)
    step_s = median_time(step, args.reps)
    ghz = tsc_ghz()
    nominal = FLOPS_PER_CYCLE_CORE * ghz * args.threads if ghz else None
    attained = attained_peak(args.reps)
    peak = attained

    print(f"threads {args.threads}, {edges} edges (Si64), load average {os.getloadavg()[0]:.1f}")
    print(f"peak FP32: nominal {f'{nominal:.0f}' if nominal else '-'} GFLOP/s "
          f"({FLOPS_PER_CYCLE_CORE} FLOP/cycle/core x {ghz or float('nan'):.3f} GHz TSC x {args.threads}), "
          f"attained by a 2048^3 sgemm {attained:.0f} GFLOP/s")
    print(pair.text_table([
        ("", "GFLOP", "FLOP per edge", "wall (s)", "GFLOP/s", "of attained peak"),
        ("forward pass", f"{fwd_flops / 1e9:.3f}", f"{fwd_flops / edges / 1e3:.0f} k", f"{fwd_s:.3f}",
         f"{fwd_flops / fwd_s / 1e9:.1f}", f"{100 * fwd_flops / fwd_s / 1e9 / peak:.0f} %"),
        ("training step", f"{step_flops / 1e9:.3f}", f"{step_flops / edges / 1e3:.0f} k", f"{step_s:.3f}",
         f"{step_flops / step_s / 1e9:.1f}", f"{100 * step_flops / step_s / 1e9 / peak:.0f} %"),
    ]))
    print("\nforward pass: FLOPs by kind")
    print(pair.text_table([("kind", "GFLOP", "share"), *category_rows(fwd_modules, fwd_flops)]))
    print("\ntraining step: kernels by self time")
    print(pair.text_table([("op", "calls", "ms", "share", "GFLOP", "GFLOP/s", "of peak"),
                 *kernel_rows(step, peak, args.top)]))
    print("\ntraining step: matrix products by operand shapes")
    print(pair.text_table([("op", "shapes", "calls", "ms", "GFLOP/s", "of peak"),
                           *gemm_rows(step, peak, args.top)]))


if __name__ == "__main__":
    main()
