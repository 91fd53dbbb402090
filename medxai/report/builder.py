"""Build ``report.html`` from a run directory."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from medxai.io import write_text
from medxai.report import run_files
from medxai.report.context import ReportContext
from medxai.report.html import Section, notice, page
from medxai.report.sections import curves, explanations, failures, overview, quantus_scores, test_metrics

log = logging.getLogger(__name__)

# (anchor, title, renderer) in page order. The anchor and title are used when a renderer fails.
_SECTIONS: tuple[tuple[str, str, Callable[[ReportContext], Section]], ...] = (
    ("dataset", "Dataset", overview.render_dataset),
    ("environment", "Environment", overview.render_environment),
    ("curves", "Training curves", curves.render),
    ("test-metrics", "Test metrics", test_metrics.render),
    ("explanations", "Explanations", explanations.render),
    ("quantus", "Quantus evaluation", quantus_scores.render),
    ("failures", "Failures", failures.render),
    ("config", "Config", overview.render_config),
)


# Rows of the attribution grid embedded by default. Each cell is an embedded PNG, so the page grows
# with every row. Samples beyond the limit stay in explanations/ and the page gives their count.
DEFAULT_MAX_GRID_SAMPLES = 32


def render_report(
    run_dir: str | os.PathLike[str],
    *,
    device: str | None = None,
    max_grid_samples: int = DEFAULT_MAX_GRID_SAMPLES,
    check_run_dir: bool = True,
    seed: int | None = None,
) -> str:
    """Render the report of a run as one self-contained HTML document.

    Args:
        run_dir: A Lightning log dir such as ``lightning_logs/version_0``.
        device: Description of the device the run used. When None, the device requested in
            config.yaml is shown instead.
        max_grid_samples: Most samples shown as rows of the attribution grid (at least 1).
        check_run_dir: Raise unless ``run_dir`` exists and contains a run file. The callback
            turns this off because its log dir belongs to a run even while it is still empty.
        seed: Global seed of the run, shown when config.yaml sets none.

    Returns:
        The HTML text. Images are embedded as base64 data URIs; the page needs no JavaScript.

    Raises:
        RunDirectoryError: If ``check_run_dir`` is true and ``run_dir`` does not exist or is not a
            run directory.
        ValueError: If ``max_grid_samples`` is not a positive integer.
    """
    validate_max_grid_samples(max_grid_samples)
    path = run_files.resolve_run_dir(run_dir) if check_run_dir else Path(run_dir).resolve()
    context = ReportContext.load(path, device=device, max_grid_samples=max_grid_samples, seed=seed)
    sections = [_render_section(context, anchor, title, renderer) for anchor, title, renderer in _SECTIONS]

    dataset = context.dataset_name()
    title = f"medxai run report: {dataset}, {path.name}" if dataset else f"medxai run report: {path.name}"
    built_at = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return page(title, f"Run directory {path}. Page built {built_at}.", sections)


def build_report(
    run_dir: str | os.PathLike[str],
    *,
    device: str | None = None,
    max_grid_samples: int = DEFAULT_MAX_GRID_SAMPLES,
    check_run_dir: bool = True,
    seed: int | None = None,
) -> Path:
    """Write ``report.html`` into ``run_dir`` atomically and return its path.

    Every section degrades on its own: a missing input file is named in its place, with the
    component that writes it, and an unreadable one shows the error while the rest of the page
    still renders.

    Args:
        run_dir: A Lightning log dir such as ``lightning_logs/version_0``.
        device: Description of the device the run used, or None to show the one requested in
            config.yaml.
        max_grid_samples: Most samples shown as rows of the attribution grid (at least 1).
        check_run_dir: Raise unless ``run_dir`` exists and contains a run file.
        seed: Global seed of the run, shown when config.yaml sets none.

    Returns:
        Path of the written ``report.html``.

    Raises:
        RunDirectoryError: If ``check_run_dir`` is true and ``run_dir`` does not exist or is not a
            run directory.
        ValueError: If ``max_grid_samples`` is not a positive integer.
        OSError: If the report cannot be written.
    """
    html_text = render_report(
        run_dir, device=device, max_grid_samples=max_grid_samples, check_run_dir=check_run_dir, seed=seed
    )
    target = Path(run_dir).resolve() / run_files.REPORT
    write_text(target, html_text)
    log.info("Wrote run report %s", target)
    return target


def validate_max_grid_samples(max_grid_samples: int) -> None:
    """Raise ValueError unless ``max_grid_samples`` is an integer of at least 1."""
    if isinstance(max_grid_samples, bool) or not isinstance(max_grid_samples, int) or max_grid_samples < 1:
        raise ValueError(
            "max_grid_samples must be an integer >= 1 (rows of the attribution grid), "
            f"got {max_grid_samples!r}"
        )


def _render_section(
    context: ReportContext, anchor: str, title: str, renderer: Callable[[ReportContext], Section]
) -> Section:
    # A broken or unexpected input file must cost one section, not the whole report, so any
    # exception from a renderer is caught here, logged and shown in place of the section.
    try:
        return renderer(context)
    except Exception as err:  # noqa: BLE001
        log.warning("Report section '%s' failed: %s", title, err, exc_info=True)
        message = f"This section failed to render: {type(err).__name__}: {err}"
        return Section(anchor, title, notice(message, error=True))
