"""Parser of ``slem.predict``: the predicted frames file becomes an ``OperatorData`` or a ``DatasetData``."""

from __future__ import annotations

import pathlib

from aiida.engine import ExitCode
from aiida.parsers import Parser
from aiida_slem.calcjobs.predict import PREDICTION_FILE, STDERR

from aiida_slem.data.dataset import DatasetData
from aiida_slem.data.operator import OperatorData
from slem.data.frame import FrameFormatError

from .common import stderr_tail


class SlemPredictParser(Parser):
    def parse(self, **kwargs) -> ExitCode | None:
        temporary = kwargs.get("retrieved_temporary_folder")
        if temporary is None:
            return self.exit_codes.ERROR_NO_RETRIEVED_TEMPORARY_FOLDER
        path = pathlib.Path(temporary) / PREDICTION_FILE
        if not path.is_file():
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(message=stderr_tail(self, STDERR))
        inputs = self.node.inputs
        try:
            if "structure" in inputs:
                node = OperatorData(file=path, filename="prediction.h5")
            else:
                node = DatasetData(file=path, filename="prediction.h5")
        except (FrameFormatError, ValueError) as exc:
            return self.exit_codes.ERROR_INVALID_OUTPUT.format(message=str(exc))
        if "structure" in inputs:
            self.out("operators", node)
            return None
        expected = (
            len(inputs.structures)
            if "structures" in inputs
            else inputs.dataset.base.attributes.get("n_frames")
        )
        if node.n_frames != expected:
            return self.exit_codes.ERROR_WRONG_FRAME_COUNT.format(expected=expected, found=node.n_frames)
        if "structures" in inputs:
            node.base.attributes.set("structure_labels", sorted(inputs.structures))
        self.out("predictions", node)
        return None
