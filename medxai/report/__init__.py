"""Self-contained HTML report of a run: dataset, environment, curves, metrics, explanations, Quantus.

Build it from a run directory with ``python -m medxai.report RUN_DIR`` or :func:`build_report`;
``callbacks.report.ReportCallback`` writes it at the end of fit and test.
"""

from medxai.report.builder import DEFAULT_MAX_GRID_SAMPLES, build_report, render_report
from medxai.report.cli import main
from medxai.report.run_files import RunDirectoryError

__all__ = ["DEFAULT_MAX_GRID_SAMPLES", "RunDirectoryError", "build_report", "main", "render_report"]
