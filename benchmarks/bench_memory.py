"""Peak resident memory (RSS) of `medxai fit` and of explanation, each in a fresh process.

Each case runs in its own child process and the parent reads the child's peak RSS
(``ru_maxrss`` from ``os.wait4``), so one case never inherits another's memory. The fit cases
call the same ``main`` as the ``medxai`` console script.

Cases:
    import          importing the CLI, the callbacks and their libraries (the fixed cost)
    fit-28          ``medxai fit`` at 28 px, training steps only (``--test_after_fit false``)
    fit-224         the same with ``--data.resize 224`` (ImageNet stem)
    fit-28-full     ``medxai fit`` at 28 px with the test, explanation, Quantus and report callbacks
    explain-ig-224  Integrated Gradients with the explanation callback's defaults (steps, scaled
                    inputs per pass, batch size) on 8 images at 224 px. The peak is set by one
                    pass of scaled inputs, so more images take longer but need little more memory.

Example:
    python benchmarks/bench_memory.py --data-root DATA --threads 1

``DATA`` is a folder with the official ``breastmnist.npz`` at 28 px.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench_common import REPO_ROOT, explanation_callback_defaults, machine_info, markdown_table, write_report

CASES = ("import", "fit-28", "fit-224", "fit-28-full", "explain-ig-224")


def fit_arguments(case: str, data_root: str, work_dir: str, steps: int, precision: str) -> list[str]:
    args = [
        "fit",
        f"--config={REPO_ROOT / 'configs' / 'breastmnist.yaml'}",
        f"--data.root={data_root}",
        f"--trainer.default_root_dir={work_dir}",
        f"--trainer.max_steps={steps}",
        "--trainer.limit_val_batches=2",
        "--trainer.enable_progress_bar=false",
        f"--trainer.precision={precision}",
    ]
    if case == "fit-224":
        args.append("--data.resize=224")
    if case != "fit-28-full":
        args.append("--test_after_fit=false")
    return args


def run_child(case: str, data_root: str, steps: int, precision: str) -> None:
    """Do the work of one case in this process."""
    if case == "import":
        import callbacks  # noqa: F401
        import medxai.cli  # noqa: F401

        return
    if case.startswith("fit"):
        from medxai.cli import main as medxai_main

        with tempfile.TemporaryDirectory(prefix="bench_memory_") as work_dir:
            status = medxai_main(fit_arguments(case, data_root, work_dir, steps, precision))
        sys.exit(status)

    from medxai.explain import explain
    from medxai.models import build_resnet18

    defaults = explanation_callback_defaults()
    torch.manual_seed(0)
    model = build_resnet18(1, 2, image_size=224).eval()
    x = torch.randn(8, 1, 224, 224)
    explain(model, x, torch.zeros(8, dtype=torch.long), method="ig", batch_size=defaults["batch_size"], **defaults["ig"])


def measure(case: str, args: argparse.Namespace) -> dict[str, object]:
    """Run ``case`` in a child process and return its peak RSS and wall time."""
    command = [
        sys.executable, __file__, "--child", case, "--data-root", args.data_root, "--steps", str(args.steps),
        "--precision", args.precision,
    ]
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    # stderr goes to a file: a pipe that nobody reads while waiting would block a chatty child.
    with tempfile.TemporaryFile() as stderr_file:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr_file)
        # wait4 returns the resource usage of this child alone. ru_maxrss is in KiB on Linux.
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        stderr_file.seek(0)
        stderr = stderr_file.read().decode(errors="replace")
    exit_code = os.waitstatus_to_exitcode(status)
    if exit_code != 0:
        print(f"{case} failed with exit code {exit_code}:\n{stderr[-3000:]}", file=sys.stderr, flush=True)
    row = {"case": case, "peak_rss_mib": usage.ru_maxrss / 1024, "wall_s": seconds, "exit_code": exit_code}
    print(f"{case:16s} peak RSS {row['peak_rss_mib']:8.0f} MiB  wall {seconds:6.1f} s", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", required=True, help="folder with the official breastmnist.npz")
    parser.add_argument("--cases", nargs="+", default=["import", "fit-28", "fit-224", "explain-ig-224"], choices=CASES)
    parser.add_argument("--steps", type=int, default=5, help="training steps of the fit cases")
    parser.add_argument("--precision", default="32-true", choices=("32-true", "bf16-mixed"),
                        help="trainer.precision of the fit cases")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the child processes")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--child", choices=CASES, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child, args.data_root, args.steps, args.precision)
        return

    rows = [measure(case, args) for case in args.cases]
    print(markdown_table(rows, ["case", "peak_rss_mib", "wall_s", "exit_code"]))
    write_report(args.json, {
        "benchmark": "memory",
        "machine": machine_info(),
        "settings": vars(args),
        "explanation_defaults": explanation_callback_defaults(),
        "results": rows,
    })


if __name__ == "__main__":
    main()
