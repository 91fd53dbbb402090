"""Bad input ends in one ``medxai: error:`` line, exit status 2 and no output files.

Complements ``test_cli_errors.py``, which checks the messages for the dataset name, size,
missing file, MD5, YAML typo and a checkpoint of another dataset. Every case here runs with the
default TensorBoard logger and checks that the rejected run created nothing under its output
folder, not even an empty ``lightning_logs/version_N``.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from medxai.cli import main
from tests.cli_runs import tiny_run_args
from tests.conftest import write_fake_npz


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        status = main(argv)
    except SystemExit as exit_info:
        status = int(exit_info.code or 0)
    return status, capsys.readouterr().err


def assert_rejected(status: int, stderr: str, out_dir: Path, pattern: str) -> None:
    """Exit status 2, exactly one error line matching ``pattern``, no traceback, no files."""
    errors = [line for line in stderr.splitlines() if line.startswith("medxai: error:")]
    assert status == 2
    assert len(errors) == 1, stderr[-3000:]
    assert re.search(pattern, errors[0]), errors[0]
    assert "Traceback" not in stderr
    assert not out_dir.exists() or not any(out_dir.rglob("*")), sorted(out_dir.rglob("*"))


@pytest.fixture(autouse=True)
def fresh_log_handlers() -> None:
    """Let main() attach its log handler to this test's captured stderr, not an earlier test's."""
    for name in ("medxai", "callbacks"):
        logging.getLogger(name).handlers.clear()


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write_fake_npz(root / "breastmnist.npz", "breastmnist")
    return root


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "out"


def fit(data_root: Path, out_dir: Path, *extra: str) -> list[str]:
    return ["fit", *tiny_run_args(data_root, out_dir, epochs=1), *extra]


def rewrite_npz(path: Path, **changes: np.ndarray | None) -> None:
    """Rewrite ``path`` with some arrays replaced (``None`` drops the array)."""
    with np.load(path) as npz:
        arrays = {key: npz[key] for key in npz.files}
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    np.savez(path, **arrays)


def test_truncated_npz(data_root, out_dir, capsys):
    path = data_root / "breastmnist.npz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    status, stderr = run_cli(fit(data_root, out_dir), capsys)
    pattern = r"Cannot read .*breastmnist\.npz: the file is corrupt or truncated .* download it again"
    assert_rejected(status, stderr, out_dir, pattern)


def test_npz_missing_keys(data_root, out_dir, capsys):
    rewrite_npz(data_root / "breastmnist.npz", test_labels=None)
    status, stderr = run_cli(fit(data_root, out_dir), capsys)
    assert_rejected(
        status,
        stderr,
        out_dir,
        r"is missing the arrays test_labels .* download the official file again",
    )


def test_labels_out_of_range(data_root, out_dir, capsys):
    labels = np.full((12, 1), 7, dtype=np.uint8)
    rewrite_npz(data_root / "breastmnist.npz", val_labels=labels)
    status, stderr = run_cli(fit(data_root, out_dir), capsys)
    assert_rejected(status, stderr, out_dir, r"val_labels contains 12 value\(s\) outside 0\.\.1 \(first: 7\)")


def test_npz_with_pickled_objects(data_root, out_dir, capsys):
    rewrite_npz(data_root / "breastmnist.npz", test_labels=np.array([{"label": 0}], dtype=object))
    with zipfile.ZipFile(data_root / "breastmnist.npz") as archive:
        assert "test_labels.npy" in archive.namelist()
    status, stderr = run_cli(fit(data_root, out_dir), capsys)
    assert_rejected(status, stderr, out_dir, r"Cannot read .*breastmnist\.npz: .*allow_pickle=False")


def test_unknown_explanation_method(data_root, out_dir, capsys):
    status, stderr = run_cli(fit(data_root, out_dir, "--explain.methods=[gradcm]"), capsys)
    assert_rejected(
        status,
        stderr,
        out_dir,
        r"Unknown method\(s\) 'gradcm' in methods\. Expected: gradcam, gradcampp",
    )


def test_unknown_quantus_metric(data_root, out_dir, capsys):
    status, stderr = run_cli(fit(data_root, out_dir, "--quantus.metrics=[Focuss]"), capsys)
    assert_rejected(status, stderr, out_dir, r"unknown metric\(s\) 'Focuss'\. Valid metrics: .*Focus")


@pytest.mark.parametrize(
    ("option", "pattern"),
    [
        ("--explain.layer=layer9", r"Invalid --explain\.layer: Unknown layer 'layer9' in ResNet\. .*layer4"),
        ("--quantus.layer=fc", r"Invalid --quantus\.layer: Invalid layer 'fc' \(Linear\): .* no Conv2d"),
    ],
)
def test_missing_target_layer(data_root, out_dir, capsys, option, pattern):
    status, stderr = run_cli(fit(data_root, out_dir, "--quantus.methods=[gradcam]", option), capsys)
    assert_rejected(status, stderr, out_dir, pattern)


def test_explanation_subset_of_zero(data_root, out_dir, capsys):
    status, stderr = run_cli(fit(data_root, out_dir, "--explain.subset_size=0"), capsys)
    assert_rejected(status, stderr, out_dir, r"Invalid --explain\.subset_size=0\. Expected an integer >= 1")


def test_output_folder_not_writable(data_root, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out_dir = blocker / "runs"
    status, stderr = run_cli(fit(data_root, out_dir), capsys)
    pattern = (
        rf"Cannot write run outputs to '{re.escape(str(out_dir))}': .* is a file, not a folder\. "
        r"Choose a writable folder with --trainer\.default_root_dir"
    )
    assert_rejected(status, stderr, out_dir, pattern)
    assert blocker.read_text() == "not a folder"


def test_truncated_checkpoint(data_root, out_dir, tmp_path, capsys):
    checkpoint = tmp_path / "cut.ckpt"
    checkpoint.write_bytes(b"PK\x03\x04 not a whole checkpoint")
    args = ["test", *tiny_run_args(data_root, out_dir), f"--ckpt_path={checkpoint}"]
    status, stderr = run_cli(args, capsys)
    assert_rejected(
        status,
        stderr,
        out_dir,
        r"cut\.ckpt is not a complete PyTorch checkpoint: .*it may be cut short",
    )


def test_test_last_without_run(data_root, out_dir, capsys):
    status, stderr = run_cli(["test", *tiny_run_args(data_root, out_dir), "--ckpt_path=last"], capsys)
    assert_rejected(
        status,
        stderr,
        out_dir,
        r"--ckpt_path last: no last\.ckpt of breastmnist found under .*lightning_logs\. Pass the",
    )


def test_unknown_option_is_one_line(data_root, out_dir, capsys):
    status, stderr = run_cli(fit(data_root, out_dir, "--data.datset=breastmnist"), capsys)
    assert_rejected(
        status,
        stderr,
        out_dir,
        r"--data\.datset=breastmnist\. Run 'medxai fit --help' to list the valid",
    )
    assert "usage:" not in stderr


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        (["--data.dataset=bloodmnst"], r"Unknown dataset 'bloodmnst'\. Valid names: .*bloodmnist"),
        (["--data.size=32"], r"Unsupported size 32\. MedMNIST files exist at 28, 64, 128, 224 px"),
        (["--data.dataset=retinamnist"], r"Data file not found: .*retinamnist\.npz\. .*--data\.download=true"),
        (["--data.check_md5=true"], r"MD5 mismatch for .*breastmnist\.npz: .*--data\.check_md5=false"),
    ],
)
def test_data_errors_leave_no_run_folder(data_root, out_dir, capsys, options, pattern):
    status, stderr = run_cli(fit(data_root, out_dir, *options), capsys)
    assert_rejected(status, stderr, out_dir, pattern)


def test_checkpoint_with_pickled_object(data_root, out_dir, tmp_path, capsys):
    checkpoint = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"num_classes": 2}, "extra": argparse.Namespace()}, checkpoint)
    args = ["test", *tiny_run_args(data_root, out_dir), f"--ckpt_path={checkpoint}"]
    status, stderr = run_cli(args, capsys)
    assert_rejected(
        status,
        stderr,
        out_dir,
        r"Cannot read checkpoint .*pickled\.ckpt: Weights only load failed, so it is not a complete Lightning "
        r"\.ckpt file or it stores Python objects besides tensors \(argparse\.Namespace\)\. "
        r"Pass --weights_only=false only for a file from a source you trust\.$",
    )


def test_checkpoint_of_random_bytes(data_root, out_dir, tmp_path, capsys):
    checkpoint = tmp_path / "noise.ckpt"
    checkpoint.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    args = ["test", *tiny_run_args(data_root, out_dir), f"--ckpt_path={checkpoint}"]
    status, stderr = run_cli(args, capsys)
    assert_rejected(status, stderr, out_dir, r"noise\.ckpt is not a complete PyTorch checkpoint: ")
    assert "file an issue" not in stderr


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send downloads to a proxy on a closed local port, so they fail for real without leaving this machine."""
    closed_port = "http://127.0.0.1:9"
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, closed_port)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    # urlopen keeps the opener that its first call built, with the proxies set at that time, so
    # after an earlier test's request it would ignore the variables above. The test sets its own
    # opener as urllib.request.install_opener does, and monkeypatch restores the previous one.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": closed_port, "https": closed_port}))
    monkeypatch.setattr(urllib.request, "_opener", opener)


def test_failed_download_names_the_cause(data_root, out_dir, capsys, offline):
    status, stderr = run_cli(fit(data_root, out_dir, "--data.dataset=retinamnist", "--data.download=true"), capsys)
    assert_rejected(
        status,
        stderr,
        out_dir,
        r"Download of 'retinamnist\.npz' failed \(ConnectionRefusedError: .+\)\. Without network access, copy the "
        r"official file \(md5 bd4c0672f1bba3e3a89f0e4e876791e4\) into '.*data', or point --data\.root \(or "
        r"\$MEDXAI_DATA_ROOT\) at a folder that has it, and set --data\.download=false\.$",
    )


def test_failed_download_leaves_no_new_folder(out_dir, tmp_path, capsys, offline):
    typo = tmp_path / "medmnsit"
    status, stderr = run_cli(fit(typo, out_dir, "--data.download=true"), capsys)
    assert_rejected(status, stderr, out_dir, r"Download of 'breastmnist\.npz' failed")
    assert not typo.exists()


def test_data_root_that_is_a_file(data_root, out_dir, capsys):
    npz = data_root / "breastmnist.npz"
    status, stderr = run_cli(fit(npz, out_dir), capsys)
    assert_rejected(
        status, stderr, out_dir, r"Invalid --data\.root: '.*breastmnist\.npz' is a file, not a folder\. Pass the folder"
    )


def test_test_without_checkpoint(data_root, out_dir, capsys):
    status, stderr = run_cli(["test", *tiny_run_args(data_root, out_dir)], capsys)
    assert_rejected(
        status, stderr, out_dir, r"medxai test needs --ckpt_path, otherwise it would evaluate a model with random weights"
    )


def test_test_best_without_run(data_root, out_dir, capsys):
    status, stderr = run_cli(["test", *tiny_run_args(data_root, out_dir), "--ckpt_path=best"], capsys)
    assert_rejected(status, stderr, out_dir, r"--ckpt_path best: no best-epoch\*\.ckpt of breastmnist found under .*lightning_logs\. Pass the")


def test_test_best_uses_newest_best_checkpoint(data_root, out_dir, capsys):
    assert main(fit(data_root, out_dir, "--test_after_fit=false", "--report.enabled=false")) == 0
    best = next((out_dir / "lightning_logs" / "version_0" / "checkpoints").glob("best-*.ckpt"))
    capsys.readouterr()

    status, stderr = run_cli(["test", *tiny_run_args(data_root, out_dir), "--ckpt_path=best"], capsys)
    assert status == 0, stderr[-3000:]
    metrics = json.loads((out_dir / "lightning_logs" / "version_1" / "test_metrics.json").read_text())
    assert metrics["checkpoint"] == str(best)


@pytest.mark.parametrize(
    ("option", "pattern"),
    [
        ("--quantus.subset_size=-5", r"Invalid --quantus\.subset_size=-5\. Expected an integer >= 1"),
        ("--explain.methods=[gradcam, shap]", r"Invalid --explain settings: Unknown method\(s\) 'shap' in methods\."),
    ],
)
def test_callback_error_names_its_group(data_root, out_dir, capsys, option, pattern):
    status, stderr = run_cli(fit(data_root, out_dir, option), capsys)
    assert_rejected(status, stderr, out_dir, pattern)


def test_top_level_help_lists_report(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert exit_info.value.code in (0, None)
    assert "'medxai report RUN_DIR' rebuilds the HTML report of a run" in help_text


def test_top_level_help_describes_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "test Test a checkpoint, explain it and score the explanations, in a new run folder." in help_text
    assert "make sure you never run on your" not in help_text  # Lightning's cut-off docstring.


def test_ckpt_path_help_names_best_and_last(capsys):
    with pytest.raises(SystemExit):
        main(["test", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "'last' (the newest last.ckpt of this dataset" in help_text
    assert "Required for test, validate and predict." in help_text
