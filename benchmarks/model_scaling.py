"""Forward time and peak memory of the SLEM model on diamond Si supercells up to 32,768 atoms (CPU).

Usage: python benchmarks/model_scaling.py [--sizes 64,512,4096,32768] [--threads 2]
                                          [--edge-chunk 8192] [--halo-chunk 2000000]

Si 1s1p, r_cut 7.4 A, the DeePTB example's hyperparameters (3 layers, 32x0e+32x1o+16x2e, latent
64), float32, untrained weights (speed does not depend on them). Each size runs in its own
subprocess so its peak RSS is its own. Per size: neighbour list + graph build time and the RSS it
adds, then one inference pass with the per-layer edge work in slices of ``--edge-chunk`` edges and,
for graphs with more than ``--halo-chunk`` edges, spatial chunks with a one-cutoff halo (exact by
strict locality), so the network's memory stays bounded as the system grows; what still grows is
the graph and the output blocks. Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

R_CUT = 7.4
A_SI = 5.43


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def diamond(n_atoms: int):
    from ase.build import bulk

    n = round((n_atoms / 8) ** (1 / 3))
    if 8 * n**3 != n_atoms:
        raise ValueError(f"sizes must be 8 * n^3 atoms (64, 512, 4096, 32768, ...), got {n_atoms}")
    return bulk("Si", "diamond", a=A_SI, cubic=True).repeat((n, n, n))


def measure(n_atoms: int, edge_chunk: int, halo_chunk: int) -> dict:
    import torch

    from slem.data.graph import build_graph
    from slem.model import SlemConfig, build_model

    torch.manual_seed(0)
    config = SlemConfig(species=["Si"], basis={"Si": "1s1p"}, r_cut={"Si": R_CUT}, avg_num_neighbors=86.0)
    model = build_model(config).eval()
    atoms = diamond(n_atoms)
    start = rss_mb()
    t0 = time.perf_counter()
    graph = build_graph(atoms, ["Si"], {"Si": R_CUT}, dtype=torch.float32, basis={"Si": "1s1p"})
    t_graph = time.perf_counter() - t0
    graph_mb = peak_rss_mb() - start  # neighbour list temporaries included: peak, not what stays
    with torch.no_grad():  # first-call set-up (caches, allocator) is not part of the timing
        model(build_graph(diamond(64), ["Si"], {"Si": R_CUT}, dtype=torch.float32, basis={"Si": "1s1p"}))
    n_edges = int(graph["edge_index"].shape[1])
    graph_tensors_mb = sum(t.numel() * t.element_size() for t in graph.values()) / 2**20
    base = rss_mb()
    with torch.no_grad():
        t0 = time.perf_counter()
        out = model(graph, edge_chunk=edge_chunk, halo_chunk=halo_chunk)
        t_fwd = time.perf_counter() - t0
    out_mb = sum(t.numel() * t.element_size() for t in out.values()) / 2**20
    return {"atoms": n_atoms, "edges": n_edges, "graph_s": t_graph, "graph_peak_mb": graph_mb,
            "graph_tensors_mb": graph_tensors_mb, "forward_s": t_fwd, "us_per_edge": 1e6 * t_fwd / n_edges,
            "output_mb": out_mb, "base_rss_mb": base, "peak_rss_mb": peak_rss_mb(),
            "forward_growth_mb": peak_rss_mb() - base, "chunked": n_edges > halo_chunk}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="64,512,4096,32768", help="atoms per supercell (8 * n^3)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--edge-chunk", type=int, default=8192, help="per-layer edge slice")
    # a chunk's halo is one cutoff thick, so small chunks recompute most of their edges: measured at 4096
    # atoms, 200k-edge chunks took 98 us/edge against 34 us/edge without halos
    parser.add_argument("--halo-chunk", type=int, default=2000000, help="edges owned per spatial chunk")
    parser.add_argument("--system-malloc", action="store_true",
                        help="glibc's malloc defaults, not what the slem command sets (slem/allocator.py)")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.edge_chunk < 1 or args.halo_chunk < 1:
        parser.error("--edge-chunk and --halo-chunk must be positive")
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        if not args.system_malloc:
            from slem.allocator import keep_freed_memory

            keep_freed_memory()  # as `slem predict` does
        print(json.dumps(measure(args.worker, args.edge_chunk, args.halo_chunk)))
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    bad = [n for n in sizes if n < 8 or 8 * round((n / 8) ** (1 / 3)) ** 3 != n]
    if bad:
        parser.error(f"--sizes must be 8 * n^3 atoms (64, 512, 4096, 32768, ...), got {bad}")
    rows = []
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    for n in sizes:
        print(f"{n} atoms ...", file=sys.stderr, flush=True)
        cmd = [sys.executable, __file__, "--worker", str(n), "--threads", str(args.threads),
               "--edge-chunk", str(args.edge_chunk), "--halo-chunk", str(args.halo_chunk)]
        cmd += ["--system-malloc"] if args.system_malloc else []
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            sys.exit(f"{n} atoms failed:\n{proc.stderr[-3000:]}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(f"threads: {args.threads}   edge_chunk: {args.edge_chunk}   halo_chunk: {args.halo_chunk}   "
          f"malloc: {'glibc defaults' if args.system_malloc else 'freed memory kept'}   "
          f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    head = ("atoms", "edges", "graph s", "graph MB (peak/kept)", "forward s", "us/edge", "forward +MB",
            "KB/edge", "peak RSS MB", "halo chunks")
    lines = [head]
    for r in rows:
        lines.append((str(r["atoms"]), str(r["edges"]), f"{r['graph_s']:.2f}",
                      f"{r['graph_peak_mb']:.0f}/{r['graph_tensors_mb']:.0f}", f"{r['forward_s']:.2f}",
                      f"{r['us_per_edge']:.1f}", f"{r['forward_growth_mb']:.0f}",
                      f"{1024 * r['forward_growth_mb'] / r['edges']:.2f}", f"{r['peak_rss_mb']:.0f}",
                      "yes" if r["chunked"] else "no"))
    width = [max(len(line[k]) for line in lines) for k in range(len(head))]
    print("\n".join("  ".join(c.rjust(w) for c, w in zip(line, width, strict=True)) for line in lines))


if __name__ == "__main__":
    main()
