"""Data-parallel training over torch.distributed (gloo on CPU, nccl on CUDA), and the
deterministic data order that makes both resume and multi-rank runs reproducible."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group set up by torchrun; a plain launch is a world of one."""
    if not launched_by_torchrun():
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_parameters(model: torch.nn.Module, info: DistInfo) -> None:
    if info.enabled:
        for tensor in model.state_dict().values():
            dist.broadcast(tensor.data if hasattr(tensor, "data") else tensor, src=0)


def average_gradients(model: torch.nn.Module, info: DistInfo) -> None:
    """Mean of gradients over ranks; parameters with no gradient on a rank count as zero there,
    so every rank issues the same collectives."""
    if not info.enabled:
        return
    for p in model.parameters():
        if not p.requires_grad:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad.div_(info.world_size)


def all_reduce_sums(values: dict[str, float], info: DistInfo, device: torch.device) -> dict[str, float]:
    """Sum a dict of floats over ranks (keys must match on every rank)."""
    if not info.enabled or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return dict(zip(keys, t.tolist(), strict=True))


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any (used for signals and NaN checks)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


class DataOrder:
    """Epoch permutations derived from (seed, epoch) only, so the position in the data is fully
    described by (epoch, batch) and a resumed run sees the same batches as an uninterrupted one.

    Each step consumes ``batch_size * world_size`` frames; rank r takes its contiguous share.
    A last incomplete global batch is dropped unless it is the only batch of the epoch."""

    def __init__(self, indices: list[int], batch_size: int, seed: int, info: DistInfo):
        if not indices:
            raise ValueError("no training frames")
        self.indices = list(indices)
        self.batch_size = batch_size
        self.seed = seed
        self.info = info
        self.epoch = 0
        self.batch = 0

    @property
    def global_batch(self) -> int:
        return min(self.batch_size * self.info.world_size, len(self.indices))

    @property
    def batches_per_epoch(self) -> int:
        return max(1, len(self.indices) // self.global_batch)

    def _permutation(self, epoch: int) -> list[int]:
        rng = np.random.default_rng([self.seed, epoch])
        return [self.indices[i] for i in rng.permutation(len(self.indices))]

    def next_batch(self) -> list[int]:
        if self.batch >= self.batches_per_epoch:
            self.epoch += 1
            self.batch = 0
        perm = self._permutation(self.epoch)
        chunk = perm[self.batch * self.global_batch : (self.batch + 1) * self.global_batch]
        self.batch += 1
        # with fewer frames than ranks, ranks share frames round-robin so none sits idle
        share = max(1, len(chunk) // self.info.world_size)
        start = (self.info.rank * share) % len(chunk)
        return [chunk[(start + k) % len(chunk)] for k in range(share)]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch, "seed": self.seed, "indices": self.indices}

    def load_state_dict(self, state: dict) -> None:
        if state["seed"] != self.seed or list(state["indices"]) != self.indices:
            raise RuntimeError(
                "the checkpoint was written for a different seed or training split; "
                "start a new output_dir or restore the original config"
            )
        self.epoch = state["epoch"]
        self.batch = state["batch"]


def weight_agreement(model: torch.nn.Module, info: DistInfo) -> dict:
    """Checksums of the live weights on every rank: data parallelism must keep them identical."""
    flat = torch.cat([p.detach().reshape(-1).to(torch.float64) for p in model.parameters()])
    index = torch.arange(len(flat), dtype=flat.dtype, device=flat.device)
    local = torch.stack([flat.sum(), flat.abs().sum(), (flat * index).sum()])
    gathered = [torch.zeros_like(local) for _ in range(info.world_size)]
    dist.all_gather(gathered, local)
    sums = [g.tolist() for g in gathered]
    return {
        "world_size": info.world_size,
        "weight_checksums": sums,
        "weights_agree": all(x == sums[0] for x in sums),
    }
