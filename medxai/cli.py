"""The ``medxai`` console script: a LightningCLI with fit, validate, test and predict.

``medxai fit`` trains, then tests the best checkpoint, which runs the explanation, Quantus
and report callbacks on it. ``medxai test --ckpt_path PATH`` reruns all of that from a
checkpoint alone. ``medxai report RUN_DIR`` rebuilds a run's HTML report.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from argparse import ArgumentError
from pathlib import Path
from typing import Any

import yaml
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from medxai.checkpoints import (
    check_checkpoint_matches,
    continue_run_folder,
    find_newest_checkpoint,
    read_hyperparameters,
)
from medxai.config_files import check_config_files
from medxai.console_logging import configure_logging
from medxai.data import DataError, MedMNISTDataModule
from medxai.module import MedMNISTClassifier
from medxai.parse_errors import describe_parse_error
from medxai.resume_settings import config_changes, resume_config_name
from medxai.run_checks import check_epochs_left, check_target_layers, check_writable

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


# Lightning's whole message when a config requests GPUs that the machine does not have.
NO_GPU_MESSAGE = "No supported gpu backend found!"
NO_GPU_HINT = (
    "The run asks for --trainer.accelerator gpu (configs/ddp.yaml sets it), but PyTorch finds no GPU"
    " on this machine. Run on a GPU machine, or pass --trainer.accelerator cpu and leave out"
    " configs/ddp.yaml."
)

SUBCOMMAND_DESCRIPTIONS: dict[str, str] = {
    "fit": "Train, then test the best checkpoint, explain it and score the explanations.",
    "validate": "Evaluate a checkpoint on the validation split.",
    "test": "Test a checkpoint, explain it and score the explanations, in a new run folder.",
    "predict": "Predict the test split with a checkpoint.",
}
SUBCOMMANDS: tuple[str, ...] = tuple(SUBCOMMAND_DESCRIPTIONS)

# medxai's help for Trainer method options whose meaning it extends.
SUBCOMMAND_HELP: dict[str, str] = {
    "ckpt_path": (
        "Checkpoint to load: a .ckpt file, 'last' (the newest last.ckpt of this dataset under "
        "--trainer.default_root_dir, which fit resumes in that run's folder) or 'best' (the newest "
        "best-*.ckpt of this dataset). Required for test, validate and predict."
    ),
    "weights_only": (
        "Load checkpoints with torch.load(weights_only=True), which cannot run code. Unset (null) "
        "means true. Set false only for a checkpoint from a source you trust that stores other "
        "Python objects."
    ),
}

# Settings whose change on resume is expected, so it is not reported.
RESUME_IGNORED_SETTINGS: tuple[str, ...] = ("ckpt_path",)

# The checkpoint callback group that writes the file behind each --ckpt_path name.
NAMED_CHECKPOINT_GROUPS = {"last": "last_checkpoint", "best": "checkpoint"}


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

    def _add_subcommands(self, parser: LightningArgumentParser, **kwargs: Any) -> None:
        """Add the subcommands with medxai's descriptions instead of the Trainer methods' docstrings."""
        # NOTE: replaces a private LightningCLI 2.6 method, which cuts each Trainer docstring
        # after its first line, mid-sentence for test and predict.
        self._subcommand_parsers: dict[str, LightningArgumentParser] = {}
        subcommands_action = parser.add_subcommands()
        for subcommand in self.subcommands():
            description = SUBCOMMAND_DESCRIPTIONS[subcommand]
            subparser_kwargs = {"description": description, **kwargs.get(subcommand, {})}
            subparser = self._prepare_subcommand_parser(self.trainer_class, subcommand, **subparser_kwargs)
            self._subcommand_parsers[subcommand] = subparser
            subcommands_action.add_subcommand(subcommand, subparser, help=description)

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> LightningArgumentParser:
        """Replace Lightning's help of the options whose meaning medxai changes."""
        # NOTE: overrides a private LightningCLI 2.6 method, the only place where the options of
        # Trainer.fit/test (added after add_arguments_to_parser) can be reached.
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        for action in parser._actions:
            if action.dest in SUBCOMMAND_HELP:
                action.help = SUBCOMMAND_HELP[action.dest]
        return parser

    def instantiate_classes(self) -> None:
        """Check each callback group's settings first, so that an error names its group."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        data_settings = config.get("data")
        if data_settings is not None:
            try:
                MedMNISTDataModule(**data_settings.as_dict())
            except DataError:
                raise  # Its message already names the fix.
            except ValueError as err:
                raise ValueError(_name_group_option("data", str(err))) from err
        for name, callback_class in _explain_callbacks():
            settings = config.get(name)
            if settings is None:
                continue
            try:
                callback_class(**settings.as_dict())
            except ValueError as err:
                raise ValueError(_name_group_option(name, str(err))) from err
        super().instantiate_classes()

    def _parse_ckpt_path(self) -> None:
        """Read the model hyperparameters of ``--ckpt_path`` into the config, as LightningCLI does.

        NOTE: replaces a private LightningCLI 2.6 method. That one always loads with
        ``weights_only=True`` and reads the whole file, and a truncated or foreign file ends in
        a traceback. This one honours ``--weights_only``, maps the file instead of reading it,
        and reports a bad file in one line.
        """
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        settings = self.config[subcommand]
        ckpt_path = settings.get("ckpt_path")
        if not ckpt_path or not Path(ckpt_path).is_file():
            return
        hparams = read_hyperparameters(ckpt_path, weights_only=settings.get("weights_only") is not False)
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        if "_class_path" in hparams:
            hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)

    def before_fit(self) -> None:
        """Check the inputs before anything is written, and resume the newest run for ``--ckpt_path last``."""
        self._check_before_run()
        self._resumed_run_dir: Path | None = None
        self._resolve_named_checkpoint("last", resume=True)
        config = self.config_init["fit"]
        check_checkpoint_matches(config.get("ckpt_path"), self.datamodule, config["weights_only"])
        check_epochs_left(config.get("ckpt_path"), self.trainer, config["weights_only"])
        if self._resumed_run_dir is not None:
            self._check_resume_settings(self._resumed_run_dir)
            rank_zero_info(f"Resuming from {config['ckpt_path']}. The run continues in {self._resumed_run_dir}.")

    def before_test(self) -> None:
        """Check the inputs and reject a checkpoint trained on other data, before anything is written."""
        self._check_before_run()
        self._resolve_named_checkpoint("last")
        self._resolve_named_checkpoint("best")
        config = self.config_init[self.subcommand]
        ckpt_path = config.get("ckpt_path")
        if ckpt_path is None:
            raise ValueError(
                f"medxai {self.subcommand} needs --ckpt_path, otherwise it would evaluate a model with "
                "random weights. Pass a checkpoint file, 'best' (the newest best-*.ckpt of this dataset "
                "under --trainer.default_root_dir) or 'last'."
            )
        check_checkpoint_matches(ckpt_path, self.datamodule, config["weights_only"])

    before_validate = before_test
    before_predict = before_test

    def _check_before_run(self) -> None:
        """Validate what would otherwise fail after the logger has created the run folder."""
        config = self.config_init[self.subcommand]
        if config.get("weights_only") is None:
            # Checkpoints load without unpickling arbitrary objects unless --weights_only=false is given.
            config["weights_only"] = True
        check_writable(self.trainer)
        self.datamodule.check_data()
        check_target_layers(self.trainer, self.model, {cls: name for name, cls in _explain_callbacks()})

    def _resolve_named_checkpoint(self, name: str, resume: bool = False) -> None:
        """Replace ``--ckpt_path last`` or ``best`` with the newest such checkpoint under the log root.

        Lightning alone would look only in the new run's empty folder, and it resolves ``best``
        only in the process that ran ``fit``. When ``resume`` is true (fit from ``last``), the
        logger also continues in the folder of that checkpoint's run, so its checkpoints,
        TensorBoard events and results stay together.
        """
        config = self.config_init[self.subcommand]
        callback = config.get(NAMED_CHECKPOINT_GROUPS[name])
        # With a fixed --<group>.dirpath, Lightning finds the file itself.
        if config.get("ckpt_path") != name or callback is None or callback.dirpath:
            return
        if name == "last":
            pattern = f"{callback.filename}{callback.FILE_EXTENSION}"
        else:
            # The best checkpoint's name contains its epoch and score, so match its fixed prefix.
            pattern = f"{callback.filename.split('{')[0]}*{callback.FILE_EXTENSION}"
        weights_only = config.get("weights_only", True)
        dataset = self.datamodule.dataset_name
        other_datasets: list[str] = []

        def trained_on_this_dataset(path: Path) -> bool:
            try:
                stored = read_hyperparameters(path, weights_only).get("dataset")
            except ValueError as err:
                rank_zero_warn(f"--ckpt_path {name}: passing over an unreadable checkpoint. {err}")
                return False
            if stored not in (None, dataset):
                other_datasets.append(f"{path} ({stored})")
                return False
            return True

        checkpoint, searched = find_newest_checkpoint(self.trainer, pattern, accept=trained_on_this_dataset)
        if searched is None:
            return  # Another logger type: leave the name to Lightning.
        passed_over = ""
        if other_datasets:
            passed_over = (
                f" Checkpoints of other datasets were passed over ({len(other_datasets)}, "
                f"e.g. {other_datasets[0]})."
            )

        if checkpoint is None and resume:
            rank_zero_warn(
                f"--ckpt_path {name}: no {pattern} of {dataset} found under {searched}, so training "
                f"starts from scratch.{passed_over}"
            )
            config["ckpt_path"] = None
            return
        if checkpoint is None:
            raise ValueError(
                f"--ckpt_path {name}: no {pattern} of {dataset} found under {searched}.{passed_over} "
                "Pass the path of a checkpoint file, or the --trainer.default_root_dir of the run."
            )

        config["ckpt_path"] = str(checkpoint)
        if resume:
            self._resumed_run_dir = continue_run_folder(self.trainer, checkpoint) or checkpoint.parent
        else:
            rank_zero_info(f"Using the newest {name} checkpoint of {dataset}, {checkpoint}.")

    def _check_resume_settings(self, run_dir: Path) -> None:
        """Compare this command's settings with the resumed run's ``config.yaml``.

        A resume must train with the settings the run started with: the checkpoint's optimizer
        and LR schedule were built from them, and Lightning restores them as they were (a longer
        ``max_epochs`` would not stretch the cosine schedule). Changes to such settings raise.
        Other changes are listed in a warning. ``config.yaml`` stays the record of the run's
        start, and this command's settings go to ``config-resume-N.yaml``.

        Raises:
            ValueError: If a setting that shapes training differs from ``config.yaml``.
        """
        saved_path = run_dir / "config.yaml"
        saver = next((cb for cb in self.trainer.callbacks if isinstance(cb, SaveConfigCallback)), None)
        if saver is None or not saved_path.is_file():
            return
        try:
            saved = yaml.safe_load(saved_path.read_text(encoding="utf-8")) or {}
            current = yaml.safe_load(saver.parser.dump(saver.config, skip_none=False)) or {}
        except (OSError, yaml.YAMLError) as err:
            rank_zero_warn(f"Cannot compare with the settings in {saved_path}: {err}")
            return
        changes = config_changes(saved, current, ignore=RESUME_IGNORED_SETTINGS)
        blocking = "; ".join(str(change) for change in changes if change.shapes_training)
        if blocking:
            raise ValueError(
                f"Cannot resume the run in {run_dir} with settings that change its training: {blocking}. "
                f"Resume with the run's own settings (--config {saved_path} --ckpt_path last), "
                "or start a new run without --ckpt_path."
            )
        saver.config_filename = resume_config_name(run_dir)
        if changes:
            rank_zero_warn(
                f"Resuming with settings that differ from {saved_path}, which is kept as it is. "
                f"This command's settings are saved to {saver.config_filename}. "
                f"Changed: {'; '.join(str(change) for change in changes)}"
            )

    def after_fit(self) -> None:
        """Test the best checkpoint (or the last weights when none was saved)."""
        if not self.config_init["fit"].get("test_after_fit", True):
            return
        checkpoint = self.trainer.checkpoint_callback
        best = getattr(checkpoint, "best_model_path", "") if checkpoint else ""
        weights_only = self.config_init["fit"].get("weights_only", True)
        self.trainer.test(
            self.model, datamodule=self.datamodule, ckpt_path=best or None, weights_only=weights_only
        )


def _name_group_option(group: str, message: str) -> str:
    """Turn ``"Invalid name=value. ..."`` into ``"Invalid --group.name=value. ..."``.

    Messages in another form get the prefix ``"Invalid --group settings: "``.
    """
    match = re.match(r"Invalid (\w+)=", message)
    if match:
        return f"Invalid --{group}.{match.group(1)}={message[match.end():]}"
    return f"Invalid --{group} settings: {message}"


def _explain_callbacks() -> list[tuple[str, type]]:
    """Return the CLI group names and classes of the explanation, Quantus and report callbacks."""
    from callbacks import ExplanationCallback, QuantusCallback, ReportCallback

    return [("explain", ExplanationCallback), ("quantus", QuantusCallback), ("report", ReportCallback)]


DESCRIPTION = (
    "Train a ResNet-18 on a MedMNIST dataset, explain its test predictions and score the "
    "explanations with Quantus. Besides the subcommands below, 'medxai report RUN_DIR' rebuilds "
    "the HTML report of a run."
)


def build_cli(args: Any = None, run: bool = True) -> MedXAICLI:
    """Build (and by default run) the CLI; ``args`` as for :class:`LightningCLI`."""
    return MedXAICLI(
        MedMNISTClassifier,
        MedMNISTDataModule,
        seed_everything_default=42,
        save_config_kwargs={"overwrite": True},
        # Raise parse errors instead of printing the whole usage, so main() reports them in one line.
        # No abbreviated option names: a typo such as --trainer.max_epoch must not pass silently.
        parser_kwargs={
            "exit_on_error": False,
            "allow_abbrev": False,
            "description": DESCRIPTION,
            **{name: {"exit_on_error": False, "allow_abbrev": False} for name in SUBCOMMANDS},
        },
        args=args,
        run=run,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the console script and return its exit status.

    Invalid settings and data end with a one-line ``medxai: error: ...`` on stderr and exit
    status 2. Set ``MEDXAI_DEBUG=1`` to see the full traceback instead.
    """
    from_command_line = argv is None
    argv = sys.argv[1:] if argv is None else argv
    configure_logging()
    if argv and argv[0] == "report":
        from medxai.report import main as report_main

        return report_main(argv[1:], prog="medxai report")
    try:
        check_config_files(argv)
        # LightningCLI warns when it gets `args` while sys.argv contains arguments too.
        build_cli(None if from_command_line else argv)
    except ArgumentError as err:
        if os.environ.get(DEBUG_ENV):
            raise
        command = f"medxai {argv[0]}" if argv and argv[0] in SUBCOMMANDS else "medxai"
        message = describe_parse_error(" ".join(str(err).split()).rstrip("."))
        sys.stderr.write(f"medxai: error: {message}. Run '{command} --help' to list the valid options.\n")
        return 2
    except (ValueError, OSError, MisconfigurationException) as err:
        if os.environ.get(DEBUG_ENV):
            raise
        message = " ".join(str(err).split())
        if not message.endswith((".", "!", "?")):
            message += "."
        if message.startswith(NO_GPU_MESSAGE):
            message = NO_GPU_HINT
        sys.stderr.write(f"medxai: error: {message}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("medxai: interrupted\n")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
