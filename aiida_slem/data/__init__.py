"""AiiDA data nodes of aiida-slem: file-backed, with summary numbers as queryable attributes."""

from .basis import BasisData
from .dataset import DatasetData
from .merge import merge_operator_frames
from .model import SlemModelData
from .operator import OperatorData

__all__ = ["BasisData", "DatasetData", "OperatorData", "SlemModelData", "merge_operator_frames"]
