"""Sections that describe the run: the dataset, the environment and the full config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

import medxai
from medxai.report import environment, run_files
from medxai.report.context import ReportContext
from medxai.report.html import Section, key_value_table, notice, paragraph, preformatted

# Trainer settings that describe the hardware a run asked for.
_DEVICE_KEYS = ("accelerator", "devices", "num_nodes", "strategy", "precision")


def render_dataset(context: ReportContext) -> Section:
    """Describe the dataset, the task, the classes and the data settings."""
    pairs: list[tuple[str, object]] = []
    metrics = context.test_metrics or {}
    dataset = context.dataset_name()
    pairs.append(("dataset", dataset or "unknown"))
    if metrics.get("task"):
        pairs.append(("task", metrics["task"]))
    class_names = context.class_names()
    if class_names:
        # Names may contain commas ("normal, benign"), so entries are numbered and split by semicolons.
        numbered = "; ".join(f"{index} = {name}" for index, name in enumerate(class_names))
        pairs.append(("classes", f"{len(class_names)} classes: {numbered}"))
    if metrics.get("checkpoint"):
        pairs.append(("tested checkpoint", metrics["checkpoint"]))
    pairs.append(("run directory", str(context.run_dir)))

    parts = [key_value_table(pairs)]
    data_args = context.config_section("data")
    if data_args:
        parts.append("<h3>Data settings (config.yaml)</h3>")
        parts.append(key_value_table((key, _inline(value)) for key, value in data_args.items()))
    if dataset is None:
        parts.append(
            notice(
                "The dataset is unknown because test_metrics.json and the data section of config.yaml "
                "are both missing or do not name it."
            )
        )
    return Section("dataset", "Dataset", "".join(parts))


def render_environment(context: ReportContext) -> Section:
    """List versions, seed, device and git commit."""
    config = context.config or {}
    pairs: list[tuple[str, object]] = [("seed", _seed(context))]
    pairs.append(("device", context.device or _device_from_config(config)))
    pairs.append(("git commit of medxai", environment.git_commit(Path(medxai.__file__).parent)))
    pairs.append(("medxai", medxai.__version__))
    pairs.extend(environment.package_versions())

    parts = [
        key_value_table(pairs),
        paragraph(
            "Versions and the git commit are those of the Python environment that built this page. "
            "When the page is rebuilt later, the Quantus section lists the versions recorded during the run.",
            "muted",
        ),
    ]
    return Section("environment", "Environment", "".join(parts))


def render_config(context: ReportContext) -> Section:
    """Show config.yaml verbatim."""
    if context.config_text is None:
        body = notice(run_files.missing_message(run_files.CONFIG, run_files.CONFIG))
    else:
        body = preformatted(context.config_text)
        if context.config is None:
            body = notice("config.yaml is not a valid YAML mapping; it is shown as text.") + body
    return Section("config", "Config", body)


def _seed(context: ReportContext) -> str:
    """Return the seed from config.yaml, else the caller's, naming where it comes from."""
    configured = (context.config or {}).get("seed_everything")
    if configured is not None and configured is not False:
        return f"{configured} (seed_everything in config.yaml)"
    if context.seed is not None:
        return f"{context.seed} (global seed of the training process)"
    if context.config is not None:
        return "not set (seed_everything is missing or off in config.yaml)"
    return "unknown (no config.yaml)"


def _device_from_config(config: dict[str, Any]) -> str:
    trainer = config.get("trainer")
    if not isinstance(trainer, dict):
        return "unknown (no trainer section in config.yaml)"
    settings = [f"{key}={trainer[key]}" for key in _DEVICE_KEYS if key in trainer]
    if not settings:
        return "unknown (config.yaml sets no accelerator or devices)"
    return "requested in config.yaml: " + ", ".join(settings)


def _inline(value: object) -> object:
    """Show nested config values as one line of YAML flow style."""
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return yaml.safe_dump(value, default_flow_style=True, sort_keys=False).strip()
    return value
