"""Helpers shared by the parsers of the ``slem`` command's CalcJobs."""

from __future__ import annotations

import json

from aiida.parsers import Parser


def command_error(parser: Parser) -> str | None:
    """The last ``Error:`` line click printed to the job's stderr (or stdout), if the command failed."""
    names = parser.retrieved.base.repository.list_object_names()
    for option in ("scheduler_stderr", "output_filename"):
        name = parser.node.get_option(option)
        if not name or name not in names:
            continue
        text = parser.retrieved.base.repository.get_object_content(name)
        errors = [
            line.strip() for line in text.splitlines() if line.strip().startswith(("Error:", "Traceback"))
        ]
        if errors:
            tail = [line.strip() for line in text.splitlines() if line.strip()][-1]
            return errors[-1] if errors[-1].startswith("Error:") else tail
    return None


def read_summary(parser: Parser, filename: str) -> dict:
    """The JSON summary from the retrieved folder; raises ``FileNotFoundError`` or ``ValueError``."""
    if filename not in parser.retrieved.base.repository.list_object_names():
        raise FileNotFoundError(filename)
    data = json.loads(parser.retrieved.base.repository.get_object_content(filename))
    if not isinstance(data, dict):
        raise ValueError(f"{filename} holds a {type(data).__name__}, not an object")
    return data


def read_report(parser: Parser, filename: str, stderr: str):
    """(report, None), or (None, the exit code): ERROR_MISSING_OUTPUT with the job's stderr when the command
    wrote no ``filename``, ERROR_INVALID_OUTPUT when it is not a JSON object."""
    try:
        return read_summary(parser, filename), None
    except FileNotFoundError:
        return None, parser.exit_codes.ERROR_MISSING_OUTPUT.format(message=stderr_tail(parser, stderr))
    except ValueError as exc:
        return None, parser.exit_codes.ERROR_INVALID_OUTPUT.format(message=str(exc))


def last_lines(text: str, lines: int = 5) -> str:
    """The end of a job's stderr for an exit message."""
    return "\n".join(text.strip().splitlines()[-lines:]) or "(stderr is empty)"


def stderr_tail(parser: Parser, filename: str) -> str:
    """``last_lines`` of the retrieved file ``filename`` ('' when the job wrote none)."""
    repository = parser.retrieved.base.repository
    found = filename in repository.list_object_names()
    return last_lines(repository.get_object_content(filename, mode="r") if found else "")
