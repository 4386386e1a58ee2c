"""The Si8 DZP mode of ``benchmarks/time_to_accuracy.py``: both trainers on the project's own pw.x frames.

The frames (``benchmarks/efficiency_frames.py``: strained, rattled 8-atom Si cells, basis 2s2p1d from the
PseudoDojo files, H, S and D each) are read here on our side and exported to DeePTB folders with the
project's lossless exporter (``slem.data.deeptb.write_deeptb``: same orbital order and real-harmonic signs, so
blocks are copied unchanged; DeePTB evaluates e3nn's harmonics at the bond's (y, z, x), which is how the
project's convention is defined, so this holds for d as for p). Everything that needs ``slem`` runs in
:func:`prepare`, in our venv; the trainers read what it wrote (``settings.json``, the HDF5 frames, the DeePTB
folders), so this module is stdlib-only at import and loads in DeePTB's venv too.

Model: the Si64 benchmark's (``slem_vs_deeptb.py``: 3 layers, latent 64, 32-wide latent and radial MLPs,
10 radial functions) with two changes the data force on both sides alike:

* hidden irreps 32x0e+32x1o+16x2e+8x3o+8x4e: a d-d block has components up to l = 4, so the Si64 model's
  32x0e+32x1o+16x2e is extended by the library's default 8 channels for l = 3 and 4;
* cutoff: our ``r_cut`` and DeePTB's ``r_max`` are both the cutoff ``slem train`` infers from the training
  frames (the longest bond with a nonzero S block, plus 1e-3 A: 8.53 A for 6 DZP frames, just under twice
  the 4.28 A orbital radius), so every pair whose orbitals overlap is an edge and both sides see the same
  edges; ``avg_num_neighbors`` is the training graphs' mean edges per atom at that cutoff, given to both.
  H blocks the projection keeps beyond it (non-local tails, up to r_i + r_j + 1 A; ``test_h_beyond_cutoff``
  in the settings printed) are in neither model and in neither error.

Error: the H MAE over every element of every onsite block and of every directed hopping block (i, j, R) of
the graph, in eV, pooled over the frames. Ours is ``block_errors``. DeePTB's model predicts only the
upper-triangle orbital pairs of each node and directed edge, so its features are turned into the blocks it
uses with its own ``feature_to_block`` (lower onsite pairs mirrored, the two directions of a bond combined),
block (j, i, -R) being the transpose of (i, j, R), and compared with the exported blocks: the same elements,
counted the same way (``h_elements`` in the output, which must agree between sides).

DeePTB trains one model for H and S; D (the density matrix) it learns only in a separate model (its
``get_DM`` and ``get_Hamiltonian`` exclude each other in one dataset), so only our side has an H + S + D
run (``ours-hsd``), to show what the third head costs in time to the same H accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

HIDDEN = "32x0e+32x1o+16x2e+8x3o+8x4e"
PREFIX = "frame"
SIDES = {"ours": ["H", "S"], "ours-hsd": ["H", "S", "D"]}


def settings(data: Path) -> dict:
    return json.loads((data / "settings.json").read_text())


def prepare(frames: Path, data: Path) -> dict:
    """Check the frames, choose the cutoff, export the DeePTB folders; ``data/settings.json``."""
    import numpy as np

    from slem.data.deeptb import write_deeptb
    from slem.data.frame import read_frames
    from slem.data.graph import build_graph
    from slem.train.data_checks import infer_cutoffs

    sets = {name: read_frames(frames / f"{name}.h5") for name in ("train", "test")}
    every = [f for fs in sets.values() for f in fs]
    lacking = [f.metadata.get("label", "?") for f in every if {"H", "S"} - set(f.operators)]
    if lacking:
        raise SystemExit(f"frames without H or S: {lacking}")
    species = sorted({s for f in every for s in f.symbols})
    basis = {s: b for f in every for s, b in f.basis.items()}
    r_cut = infer_cutoffs(sets["train"], species)
    edges = atoms = 0
    beyond = {"elements": 0, "max_abs_ev": 0.0}
    for frame in sets["train"]:
        graph = build_graph(frame, species, r_cut, operators=())
        edges, atoms = edges + int(graph["edge_index"].shape[1]), atoms + frame.n_atoms
    for frame in sets["test"]:
        # the test frames' H elements that no graph holds: what neither side is asked for
        lengths = np.linalg.norm(frame.bond_vectors, axis=1)
        far = np.repeat(lengths >= max(r_cut.values()), frame.block_sizes)
        h = frame.operators["H"][far]
        beyond["elements"] += int(h.size)
        beyond["max_abs_ev"] = max(beyond["max_abs_ev"], float(np.abs(h).max(initial=0.0)))
    for name, fs in sets.items():
        write_deeptb(fs, data / f"deeptb_{name}", prefix=PREFIX)
    out = {
        "frames": str(frames.resolve()),
        "species": species,
        "basis": basis,
        "r_cut": r_cut,
        "avg_num_neighbors": round(edges / atoms, 1),
        "n_train": len(sets["train"]),
        "n_test": len(sets["test"]),
        "test_h_beyond_cutoff": beyond,
    }
    (data / "settings.json").write_text(json.dumps(out, indent=1))
    return out


def mae(sums: list[tuple[float, float, int]]) -> tuple[float, int]:
    total, count = sum(s[0] for s in sums), sum(s[2] for s in sums)
    return total / count, count


# ---------------------------------------------------------------- our side
def our_trainer(data: Path, side: str, lr: float, widths: list[int]):
    """(model, None, opt, step, evaluate): ``step()`` is one Adam step on the next training frame (in file
    order, cycling); ``evaluate()`` the H MAE (meV) of the test and the training frames, eval mode."""
    import torch

    from slem.data.frame import read_frames
    from slem.data.graph import build_graph
    from slem.model import SlemConfig, build_model, fit_rescale
    from slem.train.loss import BlockLoss, block_errors

    torch.manual_seed(0)
    cfg = settings(data)
    heads, species = SIDES[side], cfg["species"]
    frames = Path(cfg["frames"])
    config = SlemConfig(
        species=species,
        basis=cfg["basis"],
        r_cut=cfg["r_cut"],
        n_layers=3,
        hidden_irreps=HIDDEN,
        latent_dim=64,
        n_radial=10,
        avg_num_neighbors=cfg["avg_num_neighbors"],
        bond_rescale_knots=24,
        latent_hidden=widths,
        radial_hidden=widths,
        heads=heads,
    )
    model = build_model(config)
    graphs = {
        name: [
            build_graph(f, species, cfg["r_cut"], dtype=torch.float32, operators=heads)
            for f in read_frames(frames / f"{name}.h5")
        ]
        for name in ("train", "test")
    }
    if any(f"{op}_onsite" not in g for gs in graphs.values() for g in gs for op in heads):
        raise SystemExit(f"{side} trains {'+'.join(heads)}, which not every frame holds")
    fit_rescale(model, graphs["train"])
    loss_fn = BlockLoss(heads)
    opt = torch.optim.Adam(model.parameters(), lr=lr, foreach=True)
    count = [0]

    def step() -> float:
        graph = graphs["train"][count[0] % len(graphs["train"])]
        count[0] += 1
        opt.zero_grad(set_to_none=True)
        loss, _ = loss_fn(model(graph), graph)
        loss.backward()
        opt.step()
        return float(loss.detach())

    def evaluate() -> dict:
        model.eval()
        ops = ["H", "D"] if "D" in heads else ["H"]
        with torch.no_grad():
            errs = {name: [block_errors(model(g), g, ops) for g in gs] for name, gs in graphs.items()}
        model.train()
        test, n = mae([e["H"] for e in errs["test"]])
        out = {
            "h_mae_mev": 1e3 * test,
            "train_h_mae_mev": 1e3 * mae([e["H"] for e in errs["train"]])[0],
            "h_elements": n,
            "test_edges": [int(g["edge_index"].shape[1]) for g in graphs["test"]],
        }
        if "D" in heads:
            out["d_mae"] = mae([e["D"] for e in errs["test"]])[0]
        return out

    return model, None, opt, step, evaluate


# ---------------------------------------------------------------- DeePTB's side
class DeepTBFrames:
    """One DeePTB dataset (an exported folder): each frame's input dict, batch info and reference blocks."""

    def __init__(self, root: Path, model, r_cut: dict, basis: dict, statistics: bool = False):
        import h5py
        import numpy as np
        import torch
        from dptb.data import AtomicData, build_dataset
        from dptb.data.dataloader import DataLoader
        from dptb.data.interfaces.ham_to_feature import feature_to_block

        dataset = build_dataset(
            root=str(root),
            r_max=r_cut,
            type="DefaultDataset",
            prefix=PREFIX,
            get_Hamiltonian=True,
            get_overlap=True,
            basis=basis,
        )
        if statistics:
            dataset.E3statistics(model=model)
        # DeePTB orders the folders by name ("frame.10" before "frame.2"); put them back in file order
        names = sorted(p.name for p in root.glob(f"{PREFIX}.*") if p.is_dir())
        items = []
        for name, batch in zip(names, DataLoader(dataset, batch_size=1, shuffle=False), strict=True):
            data = AtomicData.to_AtomicDataDict(batch)
            pos = np.loadtxt(root / name / "positions.dat").reshape(-1, 3)
            if not np.allclose(data["pos"].numpy(), pos, atol=1e-4):
                raise RuntimeError(f"DeePTB's frame order is not the folders' sorted order at {name}")
            info = {
                k: getattr(batch, k)
                for k in ("__slices__", "__cumsum__", "__cat_dims__", "__num_nodes_list__", "__data_class__")
            }
            items.append((int(name.split(".")[1]), data, info, root / name / "hamiltonians.h5"))
        self.frames = []
        for _, data, info, h5 in sorted(items, key=lambda item: item[0]):
            # DeePTB's own blocks of its reference features give the keys (and their order) it produces
            keys = list(feature_to_block(data, model.idp))
            ijr = [[int(x) for x in k.split("_")] for k in keys]
            hop = torch.tensor([i != j or any(r) for i, j, *r in ijr])
            with h5py.File(h5, "r") as handle:
                group = handle["0"]
                direct = [torch.as_tensor(group[k][()]) for k in keys]
                # block (j, i, -R) as stored, transposed onto (i, j, R)'s rows and columns
                rev = [
                    torch.as_tensor(group["_".join(map(str, [j, i, *(-x for x in r)]))][()]).T
                    for (i, j, *r), h in zip(ijr, hop.tolist(), strict=True)
                    if h
                ]
            self.frames.append(
                {
                    "data": data,
                    "info": info,
                    "keys": keys,
                    "hop": hop,
                    "direct": torch.stack(direct).to(torch.float64),
                    "rev": torch.stack(rev).to(torch.float64),
                }
            )

    def h_sums(self, model) -> list[tuple[float, float, int]]:
        """(sum |dH|, 0, elements) per frame over every onsite and directed hopping block, in eV."""
        import torch
        from dptb.data.interfaces.ham_to_feature import feature_to_block

        sums = []
        for frame in self.frames:
            with torch.no_grad():
                blocks = feature_to_block(model(dict(frame["data"])), model.idp)
            pred = torch.stack([blocks[k] for k in frame["keys"]]).to(torch.float64)
            # a hopping key stands for (i, j, R) and its transpose (j, i, -R): both directed blocks count
            hop = pred[frame["hop"]]
            total = (pred - frame["direct"]).abs().sum() + (hop - frame["rev"]).abs().sum()
            sums.append((float(total), 0.0, pred.numel() + hop.numel()))
        return sums


def deeptb_trainer(data: Path, options: tuple[dict, dict], lr: float):
    """(model, None, opt, step, evaluate) of DeePTB's side, its trainer's step (``hamil_abs`` with the
    overlap, Adam) on the next training frame in file order; ``evaluate()`` as :func:`our_trainer`'s."""
    import torch
    from dptb.nn.build import build_model
    from dptb.nnops.loss import HamilLossAbs

    torch.manual_seed(0)
    cfg = settings(data)
    model_options, common = options
    r_cut = cfg["r_cut"]
    model_options["embedding"].update(
        r_max=r_cut, irreps_hidden=HIDDEN, avg_num_neighbors=cfg["avg_num_neighbors"]
    )
    common["basis"] = cfg["basis"]
    model = build_model(model_options=model_options, common_options=common)
    train = DeepTBFrames(data / "deeptb_train", model, r_cut, cfg["basis"], statistics=True)
    test = DeepTBFrames(data / "deeptb_test", model, r_cut, cfg["basis"])
    loss_fn = HamilLossAbs(idp=model.idp, overlap=True)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    count = [0]

    def step() -> float:
        frame = train.frames[count[0] % len(train.frames)]
        count[0] += 1
        opt.zero_grad(set_to_none=True)
        ref = dict(frame["data"])  # the trainer's shallow copies: the model writes its output into the dict
        out = model(dict(frame["data"]))
        out.update(frame["info"])
        ref.update(frame["info"])
        loss = loss_fn(out, ref)
        loss.backward()
        opt.step()
        return float(loss.detach())

    def evaluate() -> dict:
        model.eval()
        test_mae, n = mae(test.h_sums(model))
        train_mae = mae(train.h_sums(model))[0]
        model.train()
        return {
            "h_mae_mev": 1e3 * test_mae,
            "train_h_mae_mev": 1e3 * train_mae,
            "h_elements": n,
            "test_edges": [int(f["data"]["edge_index"].shape[1]) for f in test.frames],
        }

    model.train()
    return model, None, opt, step, evaluate
