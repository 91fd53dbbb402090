"""Bad input at the command line ends in one clear line on stderr and exit status 2."""

from pathlib import Path

import pytest
import torch

from medxai.cli import main
from tests.conftest import write_fake_npz


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int | None, str]:
    try:
        status: int | None = main(argv)
    except SystemExit as exit_info:  # jsonargparse exits on parse errors.
        status = int(exit_info.code or 0)
    return status, capsys.readouterr().err


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error" in line.lower()]


@pytest.fixture
def base_args(tmp_path: Path) -> list[str]:
    return [
        "fit",
        f"--trainer.default_root_dir={tmp_path / 'out'}",
        "--trainer.max_epochs=1",
        "--trainer.logger=false",
    ]


def test_unknown_dataset(base_args, capsys):
    status, stderr = run_cli([*base_args, "--data.dataset=bloodmnst"], capsys)
    assert status == 2
    assert "medxai: error: Unknown dataset 'bloodmnst'. Valid names:" in stderr
    assert "Traceback" not in stderr


def test_unsupported_size(base_args, capsys):
    status, stderr = run_cli([*base_args, "--data.size=32"], capsys)
    assert status == 2
    assert "medxai: error: Unsupported size 32" in stderr


def test_missing_file_offline(base_args, tmp_path, capsys):
    status, stderr = run_cli([*base_args, f"--data.root={tmp_path / 'empty'}"], capsys)
    assert status == 2
    assert "Data file not found" in stderr
    assert "750601b1f35ba3300ea97c75c52ff8f6" in stderr
    assert "Traceback" not in stderr
    assert len(error_lines(stderr)) == 1


def test_md5_mismatch(base_args, fake_root, capsys):
    status, stderr = run_cli([*base_args, f"--data.root={fake_root}"], capsys)
    assert status == 2
    assert "MD5 mismatch" in stderr
    assert "--data.check_md5=false" in stderr


def test_yaml_key_typo(base_args, tmp_path, capsys):
    config = tmp_path / "typo.yaml"
    config.write_text("data:\n  datset: breastmnist\n")
    status, stderr = run_cli([*base_args, f"--config={config}"], capsys)
    assert status == 2
    assert "datset" in stderr
    assert "Traceback" not in stderr
    assert len(error_lines(stderr)) == 1


@pytest.mark.parametrize("form", ["separate", "equals"])
def test_yaml_syntax_error_names_the_file(base_args, tmp_path, capsys, form):
    config = tmp_path / "broken.yaml"
    config.write_text("data:\n  dataset: breastmnist\n  batch_size: [32\n")
    config_args = ["--config", str(config)] if form == "separate" else [f"--config={config}"]
    status, stderr = run_cli([*base_args, *config_args], capsys)
    assert status == 2
    assert f"Config file '{config}' is not valid YAML: line 4, column 1" in stderr
    assert "<unicode string>" not in stderr
    assert len(error_lines(stderr)) == 1


def test_config_that_is_not_text(base_args, tmp_path, capsys):
    config = tmp_path / "binary.yaml"
    config.write_bytes(b"data: \xff\xfe\n")
    status, stderr = run_cli([*base_args, f"--config={config}"], capsys)
    assert status == 2
    assert f"Config file '{config}' is not UTF-8 text" in stderr


def test_abbreviated_option_is_refused(base_args, capsys):
    """argparse would read --trainer.max_epoch as --trainer.max_epochs; medxai does not."""
    status, stderr = run_cli([*base_args, "--trainer.max_epoch=3"], capsys)
    assert status == 2
    assert "unrecognized arguments: --trainer.max_epoch=3" in stderr


def test_checkpoint_from_other_dataset(tmp_path, capsys):
    root = tmp_path / "data"
    write_fake_npz(root / "breastmnist.npz", "breastmnist")
    write_fake_npz(root / "retinamnist.npz", "retinamnist")
    common = [f"--data.root={root}", "--data.check_md5=false", f"--trainer.default_root_dir={tmp_path}"]
    fit = [
        "fit", "--data.dataset=breastmnist", *common, "--trainer.max_epochs=1", "--trainer.limit_train_batches=1",
        "--trainer.limit_val_batches=1", "--test_after_fit=false", "--trainer.enable_progress_bar=false",
        "--report.after_fit=false",
    ]
    assert run_cli(fit, capsys)[0] == 0
    checkpoint = next((tmp_path / "lightning_logs").rglob("last.ckpt"))
    status, stderr = run_cli(["test", "--data.dataset=retinamnist", *common, f"--ckpt_path={checkpoint}"], capsys)
    assert status == 2
    assert "was trained with num_classes=2 (dataset 'breastmnist')" in stderr
    assert "has num_classes=5" in stderr
    assert [path.name for path in (tmp_path / "lightning_logs").iterdir()] == ["version_0"]


def test_missing_checkpoint(fake_root, tmp_path, capsys):
    args = ["test", f"--data.root={fake_root}", "--data.check_md5=false", f"--ckpt_path={tmp_path / 'nope.ckpt'}"]
    status, stderr = run_cli(args, capsys)
    assert status == 2
    assert "Checkpoint not found" in stderr


def test_invalid_data_setting_names_group(base_args, capsys):
    status, stderr = run_cli([*base_args, "--data.batch_size=-1"], capsys)
    assert status == 2
    assert "medxai: error: Invalid --data.batch_size=-1. Expected a positive integer." in stderr


def test_unknown_dataset_lists_only_supported(base_args, capsys):
    status, stderr = run_cli([*base_args, "--data.dataset=chest"], capsys)
    assert status == 2
    assert "pathmnist" in stderr
    assert "chestmnist" not in stderr  # Multi-label, so medxai would reject it.


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_gpu_config_without_gpu_explains(base_args, fake_root, capsys):
    status, stderr = run_cli([*base_args, f"--data.root={fake_root}", "--trainer.accelerator=gpu"], capsys)
    assert status == 2
    assert "medxai: error: The run asks for --trainer.accelerator gpu" in stderr
    assert "pass --trainer.accelerator cpu" in stderr
