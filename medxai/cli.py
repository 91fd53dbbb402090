"""The ``medxai`` console script: a LightningCLI with fit, validate, test and predict.

``medxai fit`` trains, then tests the best checkpoint, which runs the explanation, Quantus
and report callbacks on it. ``medxai test --ckpt_path PATH`` reruns all of that from a
checkpoint alone. ``medxai report RUN_DIR`` rebuilds a run's HTML report.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from medxai.checkpoints import check_checkpoint_matches
from medxai.data import MedMNISTDataModule
from medxai.module import MedMNISTClassifier

log = logging.getLogger(__name__)

DEBUG_ENV = "MEDXAI_DEBUG"

# Values the model takes from the datamodule, so they are never typed twice.
LINKED_FROM_DATA: tuple[tuple[str, str], ...] = (
    ("num_classes", "num_classes"),
    ("in_channels", "in_channels"),
    ("image_size", "image_size"),
    ("task", "task"),
    ("class_names", "class_names"),
    ("dataset_name", "dataset"),
)


class MedXAICLI(LightningCLI):
    """LightningCLI with data-to-model links, best-checkpoint selection on ``val/auc`` and
    the explanation, Quantus and report callbacks as configurable groups."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Add links, the checkpoint group, the callback groups and ``--test_after_fit``."""
        for source, target in LINKED_FROM_DATA:
            parser.link_arguments(f"data.{source}", f"model.{target}", apply_on="instantiate")

        # Two checkpoints: the best on val/auc, and last.ckpt rewritten after every epoch for
        # resuming. ModelCheckpoint(save_last=True) alone rewrites last.ckpt only when the best
        # one changes (Lightning 2.6).
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(ModelCheckpoint, "last_checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/auc",
                "checkpoint.mode": "max",
                "checkpoint.filename": "best-epoch{epoch:02d}-val_auc{val/auc:.4f}",
                "checkpoint.auto_insert_metric_name": False,
                "last_checkpoint.filename": "last",
                "last_checkpoint.enable_version_counter": False,
            }
        )
        for name, callback_class in _explain_callbacks():
            parser.add_lightning_class_args(callback_class, name)
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=True,
            help="After fit, test the best checkpoint (this runs the explain, quantus and report callbacks).",
        )

    def before_test(self) -> None:
        """Reject a checkpoint trained on other data before Lightning fails with a size mismatch."""
        ckpt_path = self.config_init[self.subcommand].get("ckpt_path")
        check_checkpoint_matches(ckpt_path, self.datamodule)

    before_validate = before_test
    before_predict = before_test

    def after_fit(self) -> None:
        """Test the best checkpoint (or the last weights when none was saved)."""
        if not self.config_init["fit"].get("test_after_fit", True):
            return
        checkpoint = self.trainer.checkpoint_callback
        best = getattr(checkpoint, "best_model_path", "") if checkpoint else ""
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None)


def _explain_callbacks() -> list[tuple[str, type]]:
    """Return the CLI group names and classes of the explanation, Quantus and report callbacks."""
    from callbacks import ExplanationCallback, QuantusCallback, ReportCallback

    return [("explain", ExplanationCallback), ("quantus", QuantusCallback), ("report", ReportCallback)]


def _configure_logging() -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for name in ("medxai", "callbacks"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def build_cli(args: Any = None, run: bool = True) -> MedXAICLI:
    """Build (and by default run) the CLI; ``args`` as for :class:`LightningCLI`."""
    return MedXAICLI(
        MedMNISTClassifier,
        MedMNISTDataModule,
        seed_everything_default=42,
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the console script and return its exit status.

    Invalid settings and data end with a one-line ``medxai: error: ...`` on stderr and exit
    status 2. Set ``MEDXAI_DEBUG=1`` to see the full traceback instead.
    """
    argv = sys.argv[1:] if argv is None else argv
    _configure_logging()
    if argv and argv[0] == "report":
        from medxai.report import main as report_main

        return report_main(argv[1:], prog="medxai report")
    try:
        build_cli(argv)
    except (ValueError, OSError, MisconfigurationException) as err:
        if os.environ.get(DEBUG_ENV):
            raise
        message = " ".join(str(err).split())
        sys.stderr.write(f"medxai: error: {message}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("medxai: interrupted\n")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
