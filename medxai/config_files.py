"""Check the YAML files given with ``--config`` before the CLI parses them.

jsonargparse reports a YAML syntax error in a config file as an error in ``"<unicode
string>"``, without the file's name. Reading each file first gives a message that names it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

CONFIG_FLAG = "--config"


def config_paths(argv: Sequence[str]) -> list[Path]:
    """Return the files given with ``--config PATH`` or ``--config=PATH``, in order.

    Values that name no existing file (inline YAML, or a path the CLI reports as missing) are
    left to the CLI.
    """
    values: list[str] = []
    for position, argument in enumerate(argv):
        if argument == CONFIG_FLAG and position + 1 < len(argv):
            values.append(argv[position + 1])
        elif argument.startswith(CONFIG_FLAG + "="):
            values.append(argument.split("=", 1)[1])
    return [Path(value) for value in values if Path(value).is_file()]


def _describe(error: yaml.YAMLError) -> str:
    """Return one line saying where and why ``error`` occurred (lines and columns from 1)."""
    if not isinstance(error, yaml.MarkedYAMLError) or error.problem_mark is None:
        return " ".join(str(error).split())
    mark = error.problem_mark
    text = f"line {mark.line + 1}, column {mark.column + 1}: {error.problem}"
    if error.context and error.context_mark is not None:
        context = error.context_mark
        text += f" ({error.context} at line {context.line + 1}, column {context.column + 1})"
    return text


def check_config_files(argv: Sequence[str]) -> None:
    """Raise ``ValueError`` naming the first ``--config`` file that is not valid YAML.

    Args:
        argv: The command-line arguments after the program name.

    Raises:
        ValueError: If a config file cannot be read as YAML.
    """
    for path in config_paths(argv):
        try:
            yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise ValueError(
                f"Config file '{path}' is not valid YAML: {_describe(error)}. Fix the file and run again"
            ) from error
        except UnicodeDecodeError as error:
            raise ValueError(
                f"Config file '{path}' is not UTF-8 text ({error.reason} at byte {error.start}). "
                "Save it as UTF-8 YAML and run again"
            ) from error
