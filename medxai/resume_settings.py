"""Compare the settings of a command that resumes a run with the settings the run started with.

A resume restores the optimizer and the LR schedule from the checkpoint, and both were built
from the run's first settings. A change to the model, the training data or the length of
training would mix two runs, so the CLI rejects it. Other changes (data folder, workers,
explanation settings) are only listed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Data settings a resume may change without changing what the model trains on.
RESUMABLE_DATA_SETTINGS: frozenset[str] = frozenset(
    {"data.root", "data.download", "data.check_md5", "data.num_workers", "data.eval_batch_size"}
)
# Trainer settings that decide the number of optimizer steps or the update itself.
TRAINING_TRAINER_SETTINGS: frozenset[str] = frozenset(
    {
        "trainer.max_epochs",
        "trainer.max_steps",
        "trainer.accumulate_grad_batches",
        "trainer.limit_train_batches",
        "trainer.gradient_clip_val",
        "trainer.gradient_clip_algorithm",
    }
)
# Placeholder for a setting that one of the two configs does not contain.
NOT_SET = "(not set)"


@dataclass(frozen=True)
class SettingChange:
    """One setting that differs between two configs, by its dotted key."""

    key: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.key}: {self.old} -> {self.new}"

    @property
    def shapes_training(self) -> bool:
        """Whether the setting decides the model, the data it trains on or the schedule."""
        if self.key.startswith("model."):
            return True
        if self.key.startswith("data."):
            return self.key not in RESUMABLE_DATA_SETTINGS
        return self.key in TRAINING_TRAINER_SETTINGS


def flatten_settings(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings into ``{"group.key": value}``. Lists and scalars stay as values."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_settings(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def config_changes(
    saved: Mapping[str, Any], current: Mapping[str, Any], ignore: tuple[str, ...] = ()
) -> list[SettingChange]:
    """List the settings that differ between two configs, sorted by key.

    Args:
        saved: The config a run was started with, as read from its ``config.yaml``.
        current: The config of the command about to continue it.
        ignore: Dotted keys to leave out, such as ``ckpt_path``.

    Returns:
        One change per changed, added or removed setting.
    """
    old, new = flatten_settings(saved), flatten_settings(current)
    changes = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key, NOT_SET), new.get(key, NOT_SET)
        if key not in ignore and before != after:
            changes.append(SettingChange(key, before, after))
    return changes


def resume_config_name(run_dir: Path) -> str:
    """Return the next free ``config-resume-N.yaml`` name in ``run_dir`` (N from 1)."""
    numbers = [
        int(match.group(1))
        for path in run_dir.glob("config-resume-*.yaml")
        if (match := re.fullmatch(r"config-resume-(\d+)\.yaml", path.name))
    ]
    return f"config-resume-{max(numbers, default=0) + 1}.yaml"
