"""ExplanationCallback on a real Trainer: files written, settings checked, failures recorded."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import matplotlib.image
import numpy as np
import pytest
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from callbacks import ExplanationCallback
from tests.explain.helpers import NaNForNegativeCorner, TinyClassifier, TinyDataModule

METHODS = ["gradcam", "gradcampp", "ig", "saliency"]


def _trainer(tmp_path: Path, callback: ExplanationCallback, **kwargs) -> pl.Trainer:
    return pl.Trainer(
        default_root_dir=tmp_path,
        logger=TensorBoardLogger(tmp_path, name="lightning_logs"),
        callbacks=[callback],
        accelerator="cpu",
        devices=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


@pytest.fixture(scope="module")
def fitted_run(tmp_path_factory) -> tuple[Path, TinyClassifier]:
    """Fit on two batches, test, and return the explanations folder and the module."""
    tmp_path = tmp_path_factory.mktemp("run")
    pl.seed_everything(0)
    callback = ExplanationCallback(
        methods=METHODS, subset_size=5, subset="stratified", seed=3, ig_steps=8, batch_size=3, summary_size=4
    )
    trainer = _trainer(tmp_path, callback, max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    module = TinyClassifier(channels=1, num_classes=2)
    datamodule = TinyDataModule(channels=1, num_classes=2)
    trainer.fit(module, datamodule=datamodule)
    trainer.test(module, datamodule=datamodule)
    return Path(trainer.log_dir) / "explanations", module


def test_files_written(fitted_run):
    out_dir, _ = fitted_run
    index = json.loads((out_dir / "explanations.json").read_text())

    assert index["count"] == 5
    for sample in index["samples"]:
        for method in METHODS:
            entry = sample["methods"][method]
            assert entry["status"] == "ok"
            assert entry["file"] == f"{method}/{sample['index']}.png"
            assert (out_dir / entry["file"]).is_file()
    for method in METHODS:
        assert (out_dir / f"{method}_grid.png").is_file()
    assert (out_dir / "summary.png").is_file()


def test_json_records_labels_and_settings(fitted_run):
    out_dir, _ = fitted_run
    index = json.loads((out_dir / "explanations.json").read_text())

    assert index["settings"]["methods"] == METHODS
    assert index["settings"]["dataset"] == "tinymnist"
    assert index["class_names"] == ["class 0", "class 1"]
    sample = index["samples"][0]
    assert set(sample) >= {"index", "true_label", "true_name", "predicted_label", "predicted_name", "probability"}
    assert 0.5 <= sample["probability"] <= 1.0
    assert sample["explained_label"] == sample["predicted_label"]
    assert isinstance(sample["methods"]["ig"]["convergence_delta"], float)
    # Stratified over a test split whose labels alternate 0, 1: both classes are present.
    assert {s["true_label"] for s in index["samples"]} == {0, 1}
    assert index["methods"]["gradcam"]["reference"].startswith("Selvaraju et al.")


def test_npz_maps(fitted_run):
    out_dir, _ = fitted_run
    index = json.loads((out_dir / "explanations.json").read_text())
    with np.load(out_dir / "attributions.npz") as arrays:
        assert arrays["indices"].tolist() == [sample["index"] for sample in index["samples"]]
        for method in METHODS:
            assert arrays[method].shape == (5, 28, 28)
            assert arrays[method].dtype == np.float32
            assert np.isfinite(arrays[method]).all()
        assert arrays["ig_delta"].shape == (5,)
        assert arrays["labels"].tolist() == [sample["true_label"] for sample in index["samples"]]


def test_overlay_png_is_rgb(fitted_run):
    out_dir, _ = fitted_run
    path = next((out_dir / "gradcam").glob("*.png"))
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3
    assert pixels.shape[2] in (3, 4)


def test_summary_logged_to_tensorboard(fitted_run):
    out_dir, _ = fitted_run
    events = EventAccumulator(str(out_dir.parent))
    events.Reload()
    assert "explanations/summary" in events.Tags()["images"]


def test_model_left_as_found(fitted_run):
    _, module = fitted_run
    assert all(param.requires_grad for param in module.parameters())
    for submodule in module.modules():
        for hooks in ("_forward_hooks", "_backward_hooks", "_forward_pre_hooks", "_backward_pre_hooks"):
            assert not getattr(submodule, hooks), f"{hooks} left on {type(submodule).__name__}"


def test_unknown_layer_caught_at_setup(tmp_path):
    callback = ExplanationCallback(methods=["gradcam"], layer="layer9")
    trainer = _trainer(tmp_path, callback, max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    module = TinyClassifier()

    with pytest.raises(ValueError, match=r"Unknown layer 'layer9' in ResNet\. Conv layers: conv1, layer1\.0\.conv1"):
        trainer.fit(module, datamodule=TinyDataModule())
    assert module.training_steps == 0


def test_datamodule_without_contract(tmp_path):
    callback = ExplanationCallback(methods=["saliency"])
    trainer = _trainer(tmp_path, callback)
    datamodule = TinyDataModule()

    with pytest.raises(
        MisconfigurationException,
        match=r"needs a datamodule with split_arrays, preprocess, to_display, class_names, but the Trainer has no",
    ):
        trainer.test(TinyClassifier(), dataloaders=datamodule.test_dataloader())


def test_subset_larger_than_split_clamped(tmp_path):
    callback = ExplanationCallback(methods=["saliency"], subset_size=100, subset="first")
    trainer = _trainer(tmp_path, callback)

    with pytest.warns(UserWarning, match=r"subset_size=100 is larger than the split \(12 images\); explaining all 12"):
        trainer.test(TinyClassifier(), datamodule=TinyDataModule())

    index = json.loads((Path(trainer.log_dir) / "explanations" / "explanations.json").read_text())
    assert [sample["index"] for sample in index["samples"]] == list(range(12))


def test_nan_map_recorded_as_failed(tmp_path):
    callback = ExplanationCallback(
        methods=["saliency", "gradcam"], layer="backbone.layer4", subset_size=3, subset="first", target="true"
    )
    trainer = _trainer(tmp_path, callback)
    datamodule = TinyDataModule()
    images = datamodule.split_arrays("test")[0]
    images[:3, 0, 0, 0] = 255
    images[1, 0, 0, 0] = 0  # Normalises below zero: NaN input gradient at that pixel.
    module = TinyClassifier(model=NaNForNegativeCorner(TinyClassifier().model))

    trainer.test(module, datamodule=datamodule)

    out_dir = Path(trainer.log_dir) / "explanations"
    samples = json.loads((out_dir / "explanations.json").read_text())["samples"]
    assert samples[1]["methods"]["saliency"] == {
        "status": "failed",
        "reason": "map has 1 NaN and 0 infinite values of 784",
        "file": None,
    }
    assert samples[0]["methods"]["saliency"]["status"] == "ok"
    assert samples[1]["methods"]["gradcam"]["status"] == "ok"
    assert not (out_dir / "saliency" / "1.png").exists()
    with np.load(out_dir / "attributions.npz") as arrays:
        assert np.isnan(arrays["saliency"][1, 0, 0])  # Kept, not replaced.


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"methods": []}, r"Invalid methods=\[\]. Expected a non-empty list from: gradcam, gradcampp, ig"),
        ({"methods": "gradcam"}, r"Invalid methods='gradcam'"),
        ({"methods": ["gradcam", "shap"]}, r"Unknown method\(s\) 'shap' in methods. Expected: gradcam"),
        ({"methods": ["ig", "ig"]}, r"ig listed more than once"),
        ({"layer": ""}, r"Invalid layer=''"),
        ({"target": "label"}, r"Invalid target='label'. Expected one of predicted, true"),
        ({"subset_size": 0}, r"Invalid subset_size=0. Expected an integer >= 1"),
        ({"subset": "balanced"}, r"Invalid subset='balanced'. Expected one of first, random, stratified"),
        ({"seed": "x"}, r"Invalid seed='x'"),
        ({"ig_steps": 0}, r"Invalid ig_steps=0. Expected an integer >= 1"),
        ({"ig_baseline": "noise"}, r"Invalid ig_baseline='noise'. Expected one of zeros, black, white, mean"),
        ({"ig_internal_batch_size": 0}, r"Invalid ig_internal_batch_size=0"),
        ({"batch_size": -1}, r"Invalid batch_size=-1"),
        ({"summary_size": 0}, r"Invalid summary_size=0"),
        ({"grid_size": 0}, r"Invalid grid_size=0"),
    ],
)
def test_invalid_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ExplanationCallback(**kwargs)


def test_module_without_model_attribute(tmp_path):
    class Bare(TinyClassifier):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = self.model
            del self.model

        def forward(self, x):
            return self.backbone(x)

    trainer = _trainer(tmp_path, ExplanationCallback(methods=["saliency"]))
    with pytest.raises(MisconfigurationException, match=r"explains `pl_module.model`, but Bare has no nn.Module attribute"):
        trainer.test(Bare(), datamodule=TinyDataModule())


def test_datamodule_missing_members(tmp_path):
    class NoDisplay(pl.LightningDataModule):
        def __init__(self) -> None:
            super().__init__()
            self.inner = TinyDataModule()

        def split_arrays(self, split):
            return self.inner.split_arrays(split)

        def test_dataloader(self):
            return self.inner.test_dataloader()

    trainer = _trainer(tmp_path, ExplanationCallback(methods=["saliency"]))
    with pytest.raises(MisconfigurationException, match=r"but NoDisplay is missing preprocess, to_display, class_names"):
        trainer.test(TinyClassifier(), datamodule=NoDisplay())
