"""Parser of ``slem.basis``: the basis file becomes a ``BasisData`` checked against the input UPFs."""

from __future__ import annotations

import pathlib

from aiida import orm
from aiida.parsers import Parser

from aiida_slem.data.basis import BasisData

from .common import command_error, read_summary


class SlemBasisParser(Parser):
    def parse(self, **kwargs):
        calc = self.node.process_class
        temporary = kwargs.get("retrieved_temporary_folder")
        if temporary is None:
            return self.exit_codes.ERROR_NO_RETRIEVED_TEMPORARY_FOLDER
        path = pathlib.Path(temporary) / calc._BASIS_FILE
        if not path.is_file():
            message = command_error(self)
            if message:
                return self.exit_codes.ERROR_COMMAND_FAILED.format(message=message)
            return self.exit_codes.ERROR_OUTPUT_BASIS_MISSING
        try:
            summary = read_summary(self, calc._SUMMARY_FILE)
        except (FileNotFoundError, ValueError):
            return self.exit_codes.ERROR_OUTPUT_SUMMARY_MISSING
        try:
            basis = BasisData(path)
        except ValueError as exc:
            return self.exit_codes.ERROR_OUTPUT_BASIS_INVALID.format(message=str(exc))
        try:
            basis.check_pseudos(dict(self.node.inputs.pseudos))
        except ValueError as exc:
            return self.exit_codes.ERROR_BASIS_PSEUDO_MISMATCH.format(message=str(exc))
        self.out("basis", basis)
        self.out("output_parameters", orm.Dict(summary))
        return None
