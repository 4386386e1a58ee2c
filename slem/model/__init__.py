"""SLEM: strictly localised equivariant model of LCAO operator blocks (H, S, D)."""

from slem.model.config import ModelConfigError, SlemConfig
from slem.model.fit import fit_rescale
from slem.model.io import ModelFileError, data_hash, load_model, save_model
from slem.model.overlap import check_overlap_positive
from slem.model.slem import SlemModel, build_model

__all__ = [
    "ModelConfigError", "ModelFileError", "SlemConfig", "SlemModel", "build_model", "check_overlap_positive",
    "data_hash", "fit_rescale", "load_model", "save_model",
]
