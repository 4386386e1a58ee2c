"""The training loop: fixed-step optimisation with validation, checkpoints, exact resume,
walltime signals and data-parallel ranks."""

from __future__ import annotations

import json
import math
import random
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from slem import __version__

from . import model_io
from .checkpoint import load_checkpoint, restore_training_state, save_checkpoint
from .config import ConfigError, TrainConfig, batch_size_for, check_config_against_dataset
from .dataset import GraphCache, batch_layout, file_sha256, graph_to, load_splits
from .distributed import (
    DataOrder,
    DistInfo,
    all_reduce_sums,
    any_rank,
    average_gradients,
    broadcast_parameters,
    weight_agreement,
)
from .duration import training_steps
from .eigen_loss import check_fermi_window, eigenvalue_loss, occupied_band_count, reference_eigenvalues
from .ema import EMA
from .evaluate import evaluate
from .loss import BlockLoss
from .memory import peak_memory_mb
from .metrics import MetricsLogger, plot_learning_curve
from .optim import make_optimizer, make_scheduler, scheduler_step
from .status import NanLossError, WalltimeStop

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was requested but torch sees no CUDA device; use --device cpu")
    return torch.device(name)


class Trainer:
    def __init__(
        self,
        config: TrainConfig,
        device: torch.device | str = "cpu",
        resume: str | None = None,
        dist_info: DistInfo | None = None,
        progress: bool | None = None,
    ):
        self.config = config
        self.t = config.training
        self.device = torch.device(device)
        self.dist = dist_info or DistInfo()
        self.out = Path(config.output_dir)
        self.ckpt_dir = self.out / "checkpoints"
        self.progress = (sys.stderr.isatty() if progress is None else progress) and self.dist.is_main
        self.resume = resume
        self.callbacks: list[Callable[[Trainer], None]] = []
        self._stop_requested = False
        self.step = 0
        self.best_metric = math.inf
        self.best_validation: dict = {}

    def request_stop(self) -> None:
        """Ask for a clean stop at the next step boundary (what SIGTERM/SIGUSR1 do)."""
        self._stop_requested = True

    # --- setup --------------------------------------------------------------------------
    def setup(self) -> None:
        info = check_config_against_dataset(self.config)
        self.species, self.basis = info["species"], info["basis"]
        self.data = load_splits(self.config, info["split"])
        torch.manual_seed(self.t.seed)
        np.random.seed(self.t.seed)  # noqa: NPY002 - the global state is what must be saved
        random.seed(self.t.seed)
        # fine-tuning: the parent file is read once; it supplies what the model section leaves out
        # (instead of inferring it from the data) and, on a fresh start, the weights
        parent = model_io.load_parent(Path(self.t.init_model)) if self.t.init_model else None
        self.init_model_sha256 = file_sha256(self.t.init_model) if parent is not None else None
        try:
            model_section = self.config.model
            if parent is not None:
                model_section = model_io.parent_model_section(parent, self.config.model)
            self.model_config = model_io.make_model_config(
                model_section, self.species, self.basis, info["r_cut"], self.config.operators
            )
            model = model_io.build(self.model_config)
        except (TypeError, ValueError, KeyError) as exc:
            raise ConfigError([f"model section: {exc}"]) from exc
        self.dtype = self.model_config.torch_dtype
        self.model = model.to(device=self.device, dtype=self.dtype)
        self.cutoffs = model_io.cutoffs(self.model_config)
        frames = {"train": self.data.train, "validation": self.data.validation, "test": self.data.test}
        self.graphs = GraphCache(self._graph, frames)
        self._reference_bands: dict[int, torch.Tensor] = {}
        self.n_occupied = self._fermi_window_counts() if self.t.eigenvalue_fermi_bands else None
        self.loss_fn = BlockLoss(
            self.config.operators, self.t.operator_weights, self.t.onsite_shift, self.t.block_weighting
        )
        self.optimizer = make_optimizer(self.model, self.t)
        self.batch_size = batch_size_for(self.t, [f.n_atoms for f in self.data.train])
        self.order = DataOrder(list(range(len(self.data.train))), self.batch_size, self.t.seed, self.dist)
        self.max_steps = training_steps(self.t.max_steps, self.t.epochs, self.t.epoch_step_bounds,
                                        self.order.batches_per_epoch)
        self.scheduler = make_scheduler(self.optimizer, self.t, self.max_steps)
        self.ema = EMA(self.model, self.t.ema) if self.t.ema else None
        resume_path = self._resume_path()
        if resume_path is None:
            if parent is not None:
                # fine-tuning keeps the parent's output statistics, which its weights were trained with,
                # unless another material's energy zero and bond lengths ask for them anew
                model_io.load_parent_weights(self.model, self.model_config, parent, self.t.init_model)
                if self.t.refit_statistics:
                    model_io.fit_rescale(self.model, self.graphs.all("train"), self.config.operators)
            else:
                model_io.fill_exact_overlap(self.model, self.config.dataset.basis_path)
                # rescale statistics come from the training data only, before any optimisation
                model_io.fit_rescale(self.model, self.graphs.all("train"), self.config.operators)
            broadcast_parameters(self.model, self.dist)
            if self.ema is not None:
                self.ema = EMA(self.model, self.t.ema)
        else:
            state = load_checkpoint(resume_path, map_location=self.device)
            restore_training_state(
                state, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler, ema=self.ema
            )
            self.order.load_state_dict(state["data_state"])
            self.step = state["step"]
            self.best_metric = state["best_metric"]
            self.best_validation = state["extra"].get("best_validation", {})
        self.n_params = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2))
        self.logger = MetricsLogger(
            self.out, enabled=self.dist.is_main, resume_step=self.step if resume_path else None
        )

    def _resume_path(self) -> Path | None:
        if self.resume in (None, "none", "no"):
            return None
        if self.resume == "auto":
            latest = self.ckpt_dir / "latest.pt"
            return latest if latest.is_file() else None
        path = Path(self.resume)
        if not path.is_file():
            raise FileNotFoundError(f"--resume {path}: no such checkpoint")
        return path

    # --- loop ---------------------------------------------------------------------------
    def run(self) -> dict:
        self.setup()
        old = self._install_signal_handlers()
        try:
            self._loop()
        finally:
            self._restore_signal_handlers(old)
            self.logger.close()
        return self.finish()

    def _loop(self) -> None:
        from tqdm.auto import tqdm

        bar = tqdm(total=self.max_steps, initial=self.step, disable=not self.progress, desc="train")
        if self.step == 0:  # the step count an epoch-based duration resolved to, for live progress
            plan = {"max_steps": self.max_steps, "training_frames": len(self.data.train),
                    "batch_size": self.batch_size}
            self.logger.log("run", 0, plan)
        if self.step == 0 and self.data.validation:  # the starting point of the learning curve
            self.logger.log("validation", 0, self._evaluate("validation"))
        self.model.train()
        while self.step < self.max_steps:
            if any_rank(self._stop_requested, self.dist, self.device):
                self.save("latest.pt")
                raise WalltimeStop(f"stopped by signal at step {self.step}; resume with --resume auto")
            values = self._train_step()
            self.step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{values['loss']:.4g}")
            scheduler_step(self.scheduler, self.t, None)
            if self.step % self.t.validate_every == 0 or self.step == self.max_steps:
                self._validate(values)
            if self.step % self.t.checkpoint_every == 0 or self.step == self.max_steps:
                self.save("latest.pt")
            for callback in self.callbacks:
                callback(self)
        bar.close()

    def _graph(self, frame) -> dict:
        return model_io.graph_from_frame(frame, self.model_config, self.dtype, self.config.operators)

    def _fermi_window_counts(self) -> list[int]:
        """Each training frame's occupied bands for the windowed eigenvalue loss, checked before the first
        step: an electron count must exist and the loss's reference bands must keep an empty band above it."""
        counts = []
        try:
            for i, frame in enumerate(self.data.train):
                occupied = occupied_band_count(frame)
                label = frame.metadata.get("label", f"training frame {i}")
                check_fermi_window(self._reference(i), occupied, self.t.eigenvalue_overlap_tolerance,
                                   self.t.eigenvalue_fermi_bands, label)
                counts.append(occupied)
        except ValueError as exc:
            raise ConfigError([f"dataset: {exc}"]) from exc
        return counts

    def _reference(self, i: int) -> torch.Tensor:
        """Training frame i's reference bands at the eigenvalue loss's k-points, solved once: the frame, the
        k-points (from the seed) and the overlap tolerance fix them, and solving them each step was half the
        loss's eigen work (docs/benchmarks.md)."""
        if i not in self._reference_bands:
            graph = graph_to(model_io.collate([self.graphs.get("train", i)]), self.device)
            (self._reference_bands[i],) = reference_eigenvalues(
                graph, self.t.eigenvalue_kpoints, self.t.seed, self.t.eigenvalue_overlap_tolerance
            )
        return self._reference_bands[i]

    def _train_step(self) -> dict:
        ids = self.order.next_batch()
        graph = graph_to(model_io.collate([self.graphs.get("train", i) for i in ids]), self.device)
        if self.n_occupied is not None:
            graph["n_occupied"] = torch.tensor([self.n_occupied[i] for i in ids], device=self.device)
        layout = batch_layout(graph, self.species, self.basis, self.device) if self.t.onsite_shift else None
        self.optimizer.zero_grad(set_to_none=True)
        # edge_chunk: the layers' per-edge work in slices recomputed in backward (lower peak memory)
        pred = model_io.forward(self.model, graph, self.t.edge_chunk)
        loss, parts = self.loss_fn(pred, graph, layout)
        if self.t.eigenvalue_loss > 0:
            eig = eigenvalue_loss(
                pred, graph, self.t.eigenvalue_kpoints, self.t.seed, self.t.eigenvalue_overlap_tolerance,
                self.t.eigenvalue_fermi_bands, reference=[self._reference(i) for i in ids],
            )
            parts["eigenvalue"] = float(eig.detach())
            loss = loss + self.t.eigenvalue_loss * eig
        bad = not torch.isfinite(loss).item()
        if any_rank(bad, self.dist, self.device):
            raise NanLossError(
                f"loss is {float(loss.detach())} at step {self.step + 1} (frames {ids}); lower "
                "training.lr or check the dataset for corrupt blocks"
            )
        loss.backward()
        average_gradients(self.model, self.dist)
        if self.t.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.t.grad_clip)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model)
        values = {"loss": float(loss.detach()), "lr": self.optimizer.param_groups[0]["lr"], **parts}
        if self.dist.enabled:
            summed = all_reduce_sums({"loss": values["loss"]}, self.dist, self.device)
            values["loss"] = summed["loss"] / self.dist.world_size
        self.logger.log("train", self.step + 1, values)
        return values

    def _evaluate(self, split: str, averaged: bool = True) -> dict:
        """Metrics of ``split``; with EMA, of the averaged weights unless ``averaged`` is False (the test
        metrics, taken after the best weights, already averaged, are loaded)."""
        graphs = self.graphs.all(split)[self.dist.rank :: self.dist.world_size]
        args = (graphs, self.loss_fn, self.config.operators, self.species, self.basis, self.device, self.dist,
                self.t.edge_chunk)
        if averaged and self.ema is not None:
            with self.ema.applied(self.model):
                return evaluate(self.model, *args)
        return evaluate(self.model, *args)

    def _validate(self, train_values: dict) -> None:
        if self.data.validation:
            metrics = self._evaluate("validation")
        else:  # no validation frames: select on the training loss
            metrics = {"loss": train_values["loss"]}
        self.logger.log("validation", self.step, metrics)
        scheduler_step(self.scheduler, self.t, metrics["loss"])
        if metrics["loss"] < self.best_metric:
            self.best_metric = metrics["loss"]
            self.best_validation = {**metrics, "step": self.step}
            self.save("best.pt")

    def save(self, name: str) -> None:
        if not self.dist.is_main:
            return
        save_checkpoint(
            self.ckpt_dir / name,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            ema=self.ema,
            step=self.step,
            data_state=self.order.state_dict(),
            best_metric=self.best_metric,
            extra={"best_validation": self.best_validation},
        )

    # --- outputs ------------------------------------------------------------------------
    def _load_best_weights(self) -> None:
        best = self.ckpt_dir / "best.pt"
        if not best.is_file():
            return
        state = load_checkpoint(best, map_location=self.device)
        self.model.load_state_dict(state["model"])
        if state["ema"] is not None:
            self.model.load_state_dict(state["ema"]["shadow"], strict=False)

    def finish(self) -> dict:
        """Best weights (averaged if EMA) -> model.pt, test metrics, summary.json, learning curve."""
        ddp = weight_agreement(self.model, self.dist) if self.dist.enabled else None
        self._load_best_weights()
        test = self._evaluate("test", averaged=False) if self.data.test else {}
        summary = {}
        if self.dist.is_main:
            model_path = self.out / "model.pt"
            model_io.save(
                model_path,
                self.model,
                {
                    "training_data_sha256": self.data.sha256,
                    "slem_version": __version__,
                    "species": self.species,
                    "basis": self.basis,
                    "cutoffs": self.cutoffs,
                    "operators": self.config.operators,
                    "steps": self.step,
                    # with the shift, H is learnt up to H + mu*S: its energy zero is arbitrary
                    "onsite_shift": self.t.onsite_shift,
                    "training_config": self.config.to_dict(),
                    "init_model_sha256": self.init_model_sha256,
                    "best_validation": self.best_validation,
                    "test": test,
                },
            )
            summary = {
                "steps": self.step,
                "batch_size": self.batch_size,
                "n_params": self.n_params,
                "model_sha256": file_sha256(model_path),
                "species": self.species,
                "basis": self.basis,
                "r_cut": self.cutoffs,
                "operators": self.config.operators,
                "best_validation": self.best_validation,
                "test": test,
                "training_data_sha256": self.data.sha256,
            }
            if self.init_model_sha256:
                summary["init_model_sha256"] = self.init_model_sha256
            if ddp is not None:
                summary["ddp"] = ddp
            summary["peak_memory_mb"] = peak_memory_mb(self.device)
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
            self._plot_learning_curve()
        return summary

    def _plot_learning_curve(self) -> None:
        """The model and summary are written by now: a plot that fails (no font cache, memory
        exhausted by the import) costs the picture, never the finished run."""
        try:
            plot_learning_curve(self.out / "metrics.jsonl", self.out / "learning_curve.png")
        except Exception as exc:  # noqa: BLE001
            print(f"warning: learning_curve.png not written: {type(exc).__name__}: {exc}", file=sys.stderr)

    # --- signals ------------------------------------------------------------------------
    def _install_signal_handlers(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}
        old = {}
        for sig in _STOP_SIGNALS:
            old[sig] = signal.signal(sig, lambda *_: self.request_stop())
        return old

    @staticmethod
    def _restore_signal_handlers(old: dict) -> None:
        for sig, handler in old.items():
            signal.signal(sig, handler)
