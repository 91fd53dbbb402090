"""Inputs shared by all report sections, loaded once per report."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medxai.report import run_files

log = logging.getLogger(__name__)

# Keys under which a datamodule's config may name its dataset, in order of preference.
_DATASET_KEYS = ("dataset", "dataset_name", "data_flag", "flag", "name")


@dataclass
class ReportContext:
    """Inputs shared by the sections: the run folder, its config and its test metrics.

    Attributes:
        run_dir: Absolute path of the run directory.
        config_text: Raw ``config.yaml``, or None when missing.
        config: ``config.yaml`` parsed as a mapping, or None when missing or unparsable.
        test_metrics: Parsed ``test_metrics.json``, or None when missing or unreadable.
        test_metrics_error: Why ``test_metrics.json`` could not be read, or None.
        device: Device description from the caller (the callback passes the trainer's device), or None.
        max_grid_samples: Most samples shown as rows of the attribution grid.
        seed: Global seed from the caller (the callback passes Lightning's ``PL_GLOBAL_SEED``),
            shown when config.yaml sets none.
    """

    run_dir: Path
    config_text: str | None
    config: dict[str, Any] | None
    test_metrics: dict[str, Any] | None
    test_metrics_error: str | None
    device: str | None = None
    max_grid_samples: int = 32
    seed: int | None = None

    @classmethod
    def load(
        cls, run_dir: Path, device: str | None = None, max_grid_samples: int = 32, seed: int | None = None
    ) -> ReportContext:
        """Read the config and the test metrics of ``run_dir``; a broken file is recorded, not raised."""
        config_text, config = run_files.read_config(run_dir)
        test_metrics: dict[str, Any] | None = None
        error: str | None = None
        metrics_path = run_dir / run_files.TEST_METRICS
        if metrics_path.is_file():
            try:
                loaded = run_files.read_json(metrics_path)
            except (OSError, ValueError) as err:
                error = str(err)
            else:
                if isinstance(loaded, dict):
                    test_metrics = loaded
                else:
                    error = f"{run_files.TEST_METRICS} contains a {type(loaded).__name__}, expected an object"
        return cls(run_dir, config_text, config, test_metrics, error, device, max_grid_samples, seed)

    def config_section(self, name: str) -> dict[str, Any]:
        """Return the ``init_args`` of a top-level config entry (``data``, ``model``), or the entry itself.

        LightningCLI writes ``class_path``/``init_args`` for subclass mode and plain keys otherwise;
        both shapes are accepted. Returns an empty dict when the entry is absent.
        """
        if not self.config:
            return {}
        entry = self.config.get(name)
        if not isinstance(entry, dict):
            return {}
        init_args = entry.get("init_args")
        return init_args if isinstance(init_args, dict) else entry

    def dataset_name(self) -> str | None:
        """Return the dataset name from test_metrics.json, else from the data config, else None."""
        if self.test_metrics and self.test_metrics.get("dataset"):
            return str(self.test_metrics["dataset"])
        data_args = self.config_section("data")
        for key in _DATASET_KEYS:
            if isinstance(data_args.get(key), str):
                return str(data_args[key])
        return None

    def class_names(self) -> list[str] | None:
        """Return the class names from test_metrics.json, else from MedMNIST's metadata, else None."""
        if self.test_metrics and isinstance(self.test_metrics.get("class_names"), list):
            return [str(name) for name in self.test_metrics["class_names"]]
        return _medmnist_class_names(self.dataset_name())


def _medmnist_class_names(dataset: str | None) -> list[str] | None:
    if not dataset:
        return None
    try:
        from medmnist import INFO
    except ImportError:
        return None
    info = INFO.get(dataset.lower())
    if not info or not isinstance(info.get("label"), dict):
        return None
    labels = info["label"]
    return [str(labels[key]) for key in sorted(labels, key=int)]
