"""ExplanationCallback under DDP on CPU: two ranks explain a share each, rank 0 writes once."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from callbacks import ExplanationCallback
from medxai.explain.runner import explain_images
from tests.explain.helpers import TinyClassifier, TinyDataModule


@pytest.mark.slow
def test_ddp_two_ranks_gather_and_write_once(tmp_path):
    torch.manual_seed(0)
    module = TinyClassifier()
    datamodule = TinyDataModule()
    callback = ExplanationCallback(methods=["gradcam", "saliency"], subset_size=5, subset="random", seed=1, batch_size=2)
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        # A fixed version: the parent process would otherwise pick the next free one.
        logger=TensorBoardLogger(tmp_path, name="lightning_logs", version=0),
        callbacks=[callback],
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        enable_progress_bar=False,
        enable_model_summary=False,
    )

    trainer.test(module, datamodule=datamodule)

    out_dir = Path(trainer.log_dir) / "explanations"
    index = json.loads((out_dir / "explanations.json").read_text())
    indices = [sample["index"] for sample in index["samples"]]
    assert len(indices) == 5
    assert indices == sorted(indices)
    assert all(sample["methods"]["gradcam"]["status"] == "ok" for sample in index["samples"])

    # The gathered maps equal those of one process explaining the whole subset.
    images, labels = datamodule.split_arrays("test")
    reference = explain_images(
        module.model, images[indices], labels[indices], datamodule.preprocess, ["gradcam", "saliency"]
    )
    with np.load(out_dir / "attributions.npz") as arrays:
        assert arrays["indices"].tolist() == indices
        np.testing.assert_allclose(arrays["gradcam"], reference.maps["gradcam"], atol=1e-5)
        np.testing.assert_allclose(arrays["saliency"], reference.maps["saliency"], atol=1e-5)
