"""Dataset format, interop with DeePTB and DeepH, neighbour lists and graphs."""

from .frame import Frame, FrameFormatError, frame_from_blocks, read_file_info, read_frames, write_frames
from .orbitals import n_orbitals, parse_shells

__all__ = [
    "Frame",
    "FrameFormatError",
    "frame_from_blocks",
    "n_orbitals",
    "parse_shells",
    "read_file_info",
    "read_frames",
    "write_frames",
]
