"""QuantusCallback on real Trainer runs: outputs, TensorBoard, checkpoints, settings and DDP."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from callbacks.quantus_eval import QuantusCallback
from medxai.data import MedMNISTDataModule
from medxai.evaluation.suite import MASK_METRICS, METRIC_NAMES
from medxai.module import MedMNISTClassifier
from tests.cli_runs import run_console, run_dirs
from tests.evaluation.helpers import SyntheticDataModule, TinyModule

FAST = {
    "FaithfulnessCorrelation": {"nr_runs": 3},
    "RegionPerturbation": {"regions_evaluation": 3},
    "AvgSensitivity": {"nr_samples": 2},
    "MaxSensitivity": {"nr_samples": 2},
}


def _callback(**kwargs) -> QuantusCallback:
    settings = {"methods": ["gradcam", "saliency"], "subset_size": 8, "seed": 1, "batch_size": 4, "metric_params": FAST}
    return QuantusCallback(**{**settings, **kwargs})


def _trainer(tmp_path: Path, callback: QuantusCallback, *others: pl.Callback, **kwargs) -> pl.Trainer:
    return pl.Trainer(
        default_root_dir=tmp_path,
        logger=TensorBoardLogger(tmp_path, name="lightning_logs"),
        callbacks=[callback, *others],
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_writes_every_output(tmp_path):
    trainer = _trainer(tmp_path, _callback())
    trainer.test(TinyModule(), datamodule=SyntheticDataModule())

    out_dir = Path(trainer.log_dir) / "quantus"
    scores = json.loads((out_dir / "scores.json").read_text())
    assert scores["config"]["methods"] == ["gradcam", "saliency"]
    assert scores["versions"]["quantus"] == "0.6.0"
    assert len(scores["samples"]["index"]) == 8
    assert scores["failures"] == []
    assert scores["skipped"] == {}
    assert set(scores["scores"]["gradcam"]) == set(METRIC_NAMES)
    assert len(scores["scores"]["saliency"]["Focus"]) == 8
    assert scores["metrics"]["RegionPerturbation"]["direction"] == "higher"

    summary = _read_csv(out_dir / "summary.csv")
    assert list(summary[0]) == [
        "method", "metric", "property", "direction", "mean", "std", "ci_low", "ci_high", "n", "n_missing", "rank"
    ]
    assert len(summary) == 2 * len(METRIC_NAMES)
    pointing = next(row for row in summary if row["metric"] == "PointingGame")
    assert pointing["property"] == "localisation"

    normalised = _read_csv(out_dir / "normalized.csv")
    assert [row["method"] for row in normalised] == ["gradcam", "saliency"]
    for metric in METRIC_NAMES:
        assert {row[metric] for row in normalised} <= {"0", "1"}

    stats = _read_csv(out_dir / "stats.csv")
    assert len(stats) == len(METRIC_NAMES)
    assert {"p_value", "p_holm", "rank_a", "rank_b"} <= set(stats[0])
    assert (out_dir / "radar.png").stat().st_size > 0


def test_tensorboard_scalars_and_radar(tmp_path):
    trainer = _trainer(tmp_path, _callback(metrics=["Complexity", "FaithfulnessCorrelation"]))
    trainer.test(TinyModule(), datamodule=SyntheticDataModule())

    events = EventAccumulator(trainer.log_dir)
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert "quantus/complexity/Complexity/gradcam" in scalars
    assert "quantus/faithfulness/FaithfulnessCorrelation/saliency" in scalars
    assert "quantus/radar" in events.Tags()["images"]


def test_no_masks_skips_mask_metrics(tmp_path):
    trainer = _trainer(tmp_path, _callback(metrics=["Sparseness", *MASK_METRICS]))
    trainer.test(TinyModule(), datamodule=SyntheticDataModule(masks=False))

    scores = json.loads((Path(trainer.log_dir) / "quantus" / "scores.json").read_text())
    assert set(scores["skipped"]) == set(MASK_METRICS)
    assert set(scores["scores"]["gradcam"]) == {"Sparseness"}
    summary = _read_csv(Path(trainer.log_dir) / "quantus" / "summary.csv")
    assert {row["metric"] for row in summary} == {"Sparseness"}


def test_failing_metric_recorded_run_completes(tmp_path):
    params = {**FAST, "FaithfulnessCorrelation": {"subset_size": 100_000}}
    trainer = _trainer(tmp_path, _callback(metrics=["FaithfulnessCorrelation", "Sparseness"], metric_params=params))
    trainer.test(TinyModule(), datamodule=SyntheticDataModule())

    scores = json.loads((Path(trainer.log_dir) / "quantus" / "scores.json").read_text())
    failures = {(failure["method"], failure["metric"]): failure for failure in scores["failures"]}
    assert set(failures) == {("gradcam", "FaithfulnessCorrelation"), ("saliency", "FaithfulnessCorrelation")}
    assert "subset_size" in failures[("gradcam", "FaithfulnessCorrelation")]["reason"]
    assert "FaithfulnessCorrelation" not in scores["scores"]["gradcam"]
    assert len(scores["scores"]["gradcam"]["Sparseness"]) == 8


def test_predicted_target_recorded(tmp_path):
    module = TinyModule()
    trainer = _trainer(tmp_path, _callback(metrics=["Complexity"], target="predicted"))
    datamodule = SyntheticDataModule()
    trainer.test(module, datamodule=datamodule)

    scores = json.loads((Path(trainer.log_dir) / "quantus" / "scores.json").read_text())
    images, _ = datamodule.split_arrays("test")
    indices = scores["samples"]["index"]
    with torch.no_grad():
        predicted = module.model.eval()(datamodule.preprocess(images[indices])).argmax(1).tolist()
    assert scores["samples"]["target"] == predicted


def test_fit_then_rerun_from_checkpoint(tmp_path):
    datamodule = MedMNISTDataModule(dataset="synthetic", synthetic_samples=(32, 8, 16), batch_size=16)
    module = MedMNISTClassifier(num_classes=2, in_channels=1, image_size=28, task="binary-class", dataset="synthetic")
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    callback = _callback(metrics=["Complexity", "MPRT", "PointingGame", "Focus"])
    trainer = _trainer(tmp_path, callback, checkpoint, max_epochs=1, limit_train_batches=1, limit_val_batches=1)
    trainer.fit(module, datamodule=datamodule)
    trainer.test(module, datamodule=datamodule, ckpt_path="last")
    first = json.loads((Path(trainer.log_dir) / "quantus" / "scores.json").read_text())

    # A fresh process would build new objects from the config and test the checkpoint alone.
    rerun = _trainer(tmp_path, _callback(metrics=["Complexity", "MPRT", "PointingGame", "Focus"]))
    fresh = MedMNISTClassifier(num_classes=2, in_channels=1, image_size=28, task="binary-class", dataset="synthetic")
    rerun.test(fresh, datamodule=MedMNISTDataModule(dataset="synthetic", synthetic_samples=(32, 8, 16)),
               ckpt_path=str(checkpoint.last_model_path))
    second = json.loads((Path(rerun.log_dir) / "quantus" / "scores.json").read_text())

    assert rerun.log_dir != trainer.log_dir
    assert second["config"]["checkpoint"] == str(checkpoint.last_model_path)
    # NaN MPRT scores (a constant Grad-CAM map of the randomised model) are recorded in both runs.
    assert second["failures"] == first["failures"]
    assert second["scores"] == first["scores"]


def test_unknown_metric_lists_valid_names():
    with pytest.raises(ValueError, match=r"Invalid metrics: unknown metric\(s\) 'Faithfulness'.*Valid metrics: "):
        QuantusCallback(metrics=["Faithfulness"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"methods": ["gradcam", "lime"]}, r"Unknown method\(s\) 'lime' in methods"),
        ({"methods": []}, r"Invalid methods=\[\]"),
        ({"target": "label"}, "Invalid target='label'. Expected one of true, predicted"),
        ({"subset_size": 0}, "Invalid subset_size=0"),
        ({"subset": "all"}, "Invalid subset='all'"),
        ({"seed": "1"}, "Invalid seed='1'"),
        ({"batch_size": 0}, "Invalid batch_size=0"),
        ({"layer": ""}, "Invalid layer=''"),
        ({"confidence": 95}, "Invalid confidence=95"),
        ({"n_resamples": 0}, "Invalid n_resamples=0"),
        ({"explain_options": {"lime": {}}}, r"Invalid explain_options: unknown method\(s\) 'lime'"),
        ({"explain_options": {"ig": {"steps": 3}}}, "Invalid option"),
        ({"metric_params": {"Complexity": {"nr_runs": 3}}}, r"unknown parameter\(s\) 'nr_runs'"),
        ({"metric_params": {"Nope": {}}}, "unknown metric 'Nope'"),
    ],
)
def test_invalid_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        QuantusCallback(**kwargs)


def test_unknown_layer_rejected_at_setup(tmp_path):
    trainer = _trainer(tmp_path, _callback(layer="layer9"))
    with pytest.raises(ValueError, match="layer9"):
        trainer.test(TinyModule(), datamodule=SyntheticDataModule())


def test_default_ig_options_and_override():
    assert QuantusCallback().explain_options["ig"] == {"n_steps": 16}
    assert QuantusCallback(explain_options={"ig": {"n_steps": 32}}).explain_options["ig"]["n_steps"] == 32


@pytest.mark.slow
def test_ddp_two_ranks_match_one_process(tmp_path):
    metrics = ["Complexity", "Sparseness", "PointingGame", "Focus"]
    single = _trainer(tmp_path / "single", _callback(metrics=metrics, subset_size=7))
    single.test(TinyModule(), datamodule=SyntheticDataModule())
    reference = json.loads((Path(single.log_dir) / "quantus" / "scores.json").read_text())

    trainer = pl.Trainer(
        default_root_dir=tmp_path / "ddp",
        # A fixed version: the parent process would otherwise pick the next free one.
        logger=TensorBoardLogger(tmp_path / "ddp", name="lightning_logs", version=0),
        callbacks=[_callback(metrics=metrics, subset_size=7)],
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.test(TinyModule(), datamodule=SyntheticDataModule())
    scores = json.loads((Path(trainer.log_dir) / "quantus" / "scores.json").read_text())

    assert scores["config"]["world_size"] == 2
    assert scores["samples"] == reference["samples"]
    for method in ("gradcam", "saliency"):
        for metric in metrics:
            np.testing.assert_allclose(scores["scores"][method][metric], reference["scores"][method][metric], rtol=1e-5)


@pytest.mark.slow
def test_console_test_reruns_evaluation_from_checkpoint(tmp_path):
    args = [
        "--data.dataset=synthetic",
        "--data.synthetic_samples=[64, 16, 24]",
        "--data.batch_size=32",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.accelerator=cpu",
        "--trainer.max_epochs=1",
        "--trainer.enable_progress_bar=false",
        "--explain.subset_size=2",
        "--explain.methods=[saliency]",
        "--quantus.subset_size=6",
        "--quantus.methods=[gradcam, saliency]",
        "--quantus.metrics=[Complexity, PointingGame, Focus, RandomLogit]",
        "--quantus.n_resamples=100",
    ]
    fitted = run_console(["fit", *args], timeout=600)
    assert fitted.returncode == 0, fitted.stderr[-3000:]
    first_run = run_dirs(tmp_path)[0]
    checkpoint = next((first_run / "checkpoints").glob("best-*.ckpt"))

    tested = run_console(
        ["test", f"--config={first_run / 'config.yaml'}", f"--ckpt_path={checkpoint}"], timeout=600
    )
    assert tested.returncode == 0, tested.stderr[-3000:]
    second_run = run_dirs(tmp_path)[1]

    first = json.loads((first_run / "quantus" / "scores.json").read_text())
    second = json.loads((second_run / "quantus" / "scores.json").read_text())
    assert second["config"]["checkpoint"] == str(checkpoint)
    assert set(second["scores"]["gradcam"]) == {"Complexity", "PointingGame", "Focus", "RandomLogit"}
    assert second["scores"] == first["scores"]
