"""Each recipe in configs/ trains, selects a checkpoint and tests end to end on tiny fake files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from medxai.cli import main
from tests.cli_runs import short_recipe_args

REPO_ROOT = Path(__file__).resolve().parents[1]
RECIPES = ["bloodmnist", "breastmnist", "retinamnist"]
TINY_RUN = short_recipe_args(max_epochs=2)


@pytest.mark.slow
@pytest.mark.parametrize("flag", RECIPES)
def test_recipe_trains_and_tests(fake_root: Path, tmp_path: Path, flag: str):
    recipe = REPO_ROOT / "configs" / f"{flag}.yaml"
    argv = ["fit", "--config", str(recipe), "--data.root", str(fake_root)]
    argv += ["--trainer.default_root_dir", str(tmp_path), *TINY_RUN]
    assert main(argv) == 0

    run_dir = tmp_path / "lightning_logs" / "version_0"
    metrics = json.loads((run_dir / "test_metrics.json").read_text())
    assert metrics["dataset"] == flag
    assert metrics["num_samples"] == 12
    assert Path(metrics["checkpoint"]).name.startswith("best-")

    # The saved config is the recipe as run: its training settings are in effect.
    recipe_config = yaml.safe_load(recipe.read_text())
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["trainer"]["precision"] == recipe_config["trainer"]["precision"]
    assert saved["model"]["tta"] == recipe_config["model"]["tta"]
    callbacks = [callback["class_path"] for callback in saved["trainer"]["callbacks"]]
    assert "medxai.averaging.EMAWeightAveraging" in callbacks
