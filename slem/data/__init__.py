"""Dataset format, interop with DeePTB and DeepH, neighbour lists and graphs.

``slem.data.graph`` (torch) is not imported here so that reading frames stays light.
"""

from .deeph import read_deeph, write_deeph
from .deeptb import read_deeptb, write_deeptb
from .frame import Frame, FrameFormatError, frame_from_blocks, read_file_info, read_frames, write_frames
from .neighbors import NeighborList, neighbor_list
from .orbitals import n_orbitals, parse_basis_spec, parse_shells

__all__ = [
    "Frame",
    "FrameFormatError",
    "NeighborList",
    "frame_from_blocks",
    "n_orbitals",
    "neighbor_list",
    "parse_basis_spec",
    "parse_shells",
    "read_deeph",
    "read_deeptb",
    "read_file_info",
    "read_frames",
    "write_deeph",
    "write_deeptb",
    "write_frames",
]
