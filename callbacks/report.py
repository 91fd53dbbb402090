"""Lightning callback that writes the run report ``report.html`` after fit and after test."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn

from medxai.report import build_report
from medxai.report.builder import DEFAULT_MAX_GRID_SAMPLES, validate_max_grid_samples
from medxai.report.run_files import REPORT

log = logging.getLogger(__name__)

# (relative path, modification time in ns, size in bytes) of every file in a run directory.
Snapshot = frozenset[tuple[str, int, int]]


class ReportCallback(Callback):
    """Write ``<trainer.log_dir>/report.html``, a self-contained page that summarises the run.

    The page shows the dataset, config and environment, the training curves, the test metrics,
    the attribution grid, the Quantus tables and every recorded failure (see
    :mod:`medxai.report`). The same page can be rebuilt later with ``python -m medxai.report RUN_DIR``.

    When it writes:

    * after fit (``teardown`` of the fit stage), so a run that stops before test still gets a
      page with its curves;
    * after test, at ``on_test_end``, and again at the test stage's ``teardown`` if any file in
      the log dir changed since.

    Order matters: Lightning calls ``on_test_end`` of the callbacks in the order of
    ``trainer.callbacks``, and the explanation and Quantus callbacks write their files in their
    own ``on_test_end``. List this callback after them. If it comes first, its ``on_test_end``
    page lacks their results, but ``teardown`` runs after every callback's ``on_test_end`` and
    rebuilds the page with them, so the final page is complete either way.

    Only global rank zero writes. TensorBoard events are flushed first so the curves are
    current. A failure to write is logged as a warning and never stops the run.

    Args:
        after_fit: Write the page when fit ends.
        after_test: Write the page when test ends.
        max_grid_samples: Most samples shown as rows of the attribution grid (at least 1).
        enabled: Switch the callback off without removing it from the config; the same as
            setting both ``after_fit`` and ``after_test`` to false.

    Raises:
        ValueError: If ``max_grid_samples`` is not a positive integer or a flag is not a bool.

    Example (YAML for LightningCLI)::

        trainer:
          callbacks:
            - class_path: callbacks.ExplanationCallback
            - class_path: callbacks.QuantusCallback
            - class_path: callbacks.ReportCallback
              init_args:
                max_grid_samples: 32
    """

    def __init__(
        self,
        after_fit: bool = True,
        after_test: bool = True,
        max_grid_samples: int = DEFAULT_MAX_GRID_SAMPLES,
        enabled: bool = True,
    ) -> None:
        for name, value in (("after_fit", after_fit), ("after_test", after_test)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {value!r}")
        validate_max_grid_samples(max_grid_samples)
        self.after_fit = after_fit and enabled
        self.after_test = after_test and enabled
        self.max_grid_samples = max_grid_samples
        self._last_snapshot: Snapshot | None = None

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Write the page once testing ends."""
        # trainer.log_dir broadcasts from rank 0 under DDP, so every rank must read it.
        log_dir = _log_dir(trainer)
        if not self.after_test or not trainer.is_global_zero:
            return
        self._write(trainer, log_dir)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Write the page after fit, and rewrite it after test if the log dir changed since."""
        # trainer.log_dir broadcasts from rank 0 under DDP, so every rank must read it.
        log_dir = _log_dir(trainer)
        if not trainer.is_global_zero:
            return
        if stage == "fit" and self.after_fit:
            self._write(trainer, log_dir)
        elif stage == "test" and self.after_test:
            if log_dir is not None and _snapshot(log_dir) != self._last_snapshot:
                self._write(trainer, log_dir)

    def _write(self, trainer: pl.Trainer, log_dir: Path | None) -> None:
        if log_dir is None:
            rank_zero_warn("ReportCallback: the trainer has no log dir, so no report.html is written.")
            return
        for logger in trainer.loggers:
            # Flush buffered TensorBoard events so the curves include the latest epoch.
            logger.save()
        try:
            build_report(
                log_dir,
                device=_describe_device(trainer),
                max_grid_samples=self.max_grid_samples,
                check_run_dir=False,
                seed=_global_seed(),
            )
        except OSError as err:
            rank_zero_warn(f"ReportCallback: could not write {log_dir / REPORT}: {err}")
            return
        self._last_snapshot = _snapshot(log_dir)


def _log_dir(trainer: pl.Trainer) -> Path | None:
    log_dir = trainer.log_dir
    return Path(log_dir) if log_dir else None


def _snapshot(log_dir: Path) -> Snapshot:
    """List every file under ``log_dir`` except the report itself and temporary files."""
    entries = set()
    for path in log_dir.rglob("*"):
        if path.name == REPORT or path.name.endswith(".tmp") or not path.is_file():
            continue
        try:
            stat = path.stat()
        except FileNotFoundError:
            # Another callback may replace a file (atomic rename) while the folder is listed.
            continue
        entries.add((str(path.relative_to(log_dir)), stat.st_mtime_ns, stat.st_size))
    return frozenset(entries)


def _global_seed() -> int | None:
    """Return the seed set by ``lightning.seed_everything`` in this process, or None."""
    value = os.environ.get("PL_GLOBAL_SEED")
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


def _describe_device(trainer: pl.Trainer) -> str:
    device = trainer.strategy.root_device
    name = str(device)
    if device.type == "cuda" and torch.cuda.is_available():
        name += f" ({torch.cuda.get_device_name(device)})"
    return (
        f"{name}; {type(trainer.accelerator).__name__}, {trainer.num_devices} device(s) "
        f"x {trainer.num_nodes} node(s), strategy {type(trainer.strategy).__name__}, "
        f"precision {trainer.precision}"
    )
