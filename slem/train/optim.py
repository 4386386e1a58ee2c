"""Optimiser and learning-rate schedule from the ``training`` section."""

from __future__ import annotations

import math

import torch

from .config import TrainingSection


def make_optimizer(model: torch.nn.Module, t: TrainingSection) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    # foreach: one multi-tensor update for the model's ~250 parameter tensors instead of ~10 small ops
    # each; PyTorch chooses it by default on CUDA only
    cls = torch.optim.AdamW if t.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=t.lr, weight_decay=t.weight_decay, foreach=True)


def make_scheduler(optimizer: torch.optim.Optimizer, t: TrainingSection, max_steps: int):
    p = dict(t.scheduler_params)
    if t.scheduler == "plateau":
        # patience counts validations, since the scheduler is stepped on the validation loss
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="min",
            factor=float(p.get("factor", 0.8)),
            patience=int(p.get("patience", 10)),
            threshold=float(p.get("threshold", 1e-4)),
            min_lr=float(p.get("min_lr", 0.0)),
        )
    if t.scheduler == "cosine":
        warmup = int(p.get("warmup_steps", 0))
        floor = float(p.get("min_lr", 0.0)) / t.lr

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return None


def scheduler_step(scheduler, t: TrainingSection, validation_loss: float | None) -> None:
    """Cosine steps every optimisation step (validation_loss None); plateau on each validation."""
    if scheduler is None:
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        if validation_loss is not None:
            scheduler.step(validation_loss)
    elif validation_loss is None:
        scheduler.step()
