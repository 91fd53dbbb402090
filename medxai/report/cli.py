"""Command line that rebuilds ``report.html`` of an existing run."""

from __future__ import annotations

import argparse
import logging
import sys

from medxai.report.builder import DEFAULT_MAX_GRID_SAMPLES, build_report
from medxai.report.run_files import RunDirectoryError

EXIT_INVALID_INPUT = 2
EXIT_WRITE_FAILED = 1


def build_parser(prog: str = "python -m medxai.report") -> argparse.ArgumentParser:
    """Return the argument parser of the report command."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Rebuild report.html of a finished run from the files in its log dir.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory, such as lightning_logs/version_0")
    parser.add_argument(
        "--device",
        default=None,
        help="device the run used, shown in the Environment section "
        "(default: the device requested in config.yaml)",
    )
    parser.add_argument(
        "--max-grid-samples",
        type=int,
        default=DEFAULT_MAX_GRID_SAMPLES,
        help=f"most samples shown as rows of the attribution grid (default: {DEFAULT_MAX_GRID_SAMPLES})",
    )
    return parser


def main(argv: list[str] | None = None, *, prog: str = "python -m medxai.report") -> int:
    """Rebuild the report of one run and print the path of report.html.

    Args:
        argv: Command-line arguments without the program name; None reads ``sys.argv``.
        prog: Program name shown in usage and help, e.g. ``"medxai report"``.

    Returns:
        0 on success, 2 when RUN_DIR is missing or is not a run directory or an option is invalid,
        1 when writing fails.
        Errors are printed to stderr as one line. Usage errors (a missing RUN_DIR, an unknown
        option) exit through argparse with status 2.
    """
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        path = build_report(args.run_dir, device=args.device, max_grid_samples=args.max_grid_samples)
    except (RunDirectoryError, ValueError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    except OSError as err:
        print(f"{prog}: error: cannot write the report: {err}", file=sys.stderr)
        return EXIT_WRITE_FAILED
    print(path)
    return 0
