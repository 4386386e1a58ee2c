"""``SlemModelData``: a trained SLEM model file with its configuration and metrics as attributes."""

from __future__ import annotations

import pathlib
import zipfile

from ._file import SlemFileData

REQUIRED_CONFIG = ("species", "basis", "r_cut", "n_params")


class SlemModelData(SlemFileData):
    """The model file (TorchScript or ``torch.save`` archive; both are zip files) plus ``config``.

    Attributes: ``species``, ``basis`` (``{"Si": "2s2p1d"}``), ``r_cut`` (Angstrom, a number or one per
    species), ``n_params``, ``sha256``, ``metrics`` and the full ``config``. The file is not unpickled here,
    so the daemon need not import torch.
    """

    DEFAULT_FILENAME = "model.pt"

    def __init__(
        self,
        file=None,
        filename: str | None = None,
        config: dict | None = None,
        metrics: dict | None = None,
        **kwargs,
    ) -> None:
        super().__init__(file, filename=filename, **kwargs)
        if file is not None:
            if config is None:
                raise ValueError(f"SlemModelData needs config= with at least {REQUIRED_CONFIG}")
            self.set_config(config)
        if metrics:
            self.set_metrics(metrics)

    def _inspect(self, path: pathlib.Path) -> dict:
        if path.stat().st_size == 0:
            raise ValueError(f"model file {path.name} is empty; the training job did not finish writing it")
        if not zipfile.is_zipfile(path):
            raise ValueError(
                f"model file {path.name} is not a torch archive (TorchScript or torch.save zip); it may be "
                "truncated: take the last complete checkpoint"
            )
        return {"file_size": path.stat().st_size}

    def set_config(self, config: dict) -> None:
        missing = [key for key in REQUIRED_CONFIG if key not in config]
        if missing:
            raise ValueError(f"model config lacks {missing}; a SlemModelData needs {REQUIRED_CONFIG}")
        species = sorted(config["species"])
        lacking = sorted(set(species) - set(config["basis"]))
        if lacking:
            raise ValueError(f"model config has no basis for species {lacking}")
        self.base.attributes.set("species", species)
        self.base.attributes.set("basis", dict(config["basis"]))
        self.base.attributes.set("r_cut", config["r_cut"])
        self.base.attributes.set("n_params", int(config["n_params"]))
        self.base.attributes.set("config", dict(config))

    def set_metrics(self, metrics: dict) -> None:
        """Record validation metrics (e.g. ``{"H_mae_meV": 3.1}``); allowed before storing only."""
        self.base.attributes.set("metrics", dict(metrics))

    @property
    def species(self) -> list[str]:
        return self.base.attributes.get("species")

    @property
    def r_cut(self):
        return self.base.attributes.get("r_cut")

    @property
    def n_params(self) -> int:
        return self.base.attributes.get("n_params")

    @property
    def metrics(self) -> dict:
        return self.base.attributes.get("metrics", {})
