#!/usr/bin/env bash
# One prepared run of the GPU figures for docs/benchmarks.md (about 5 to 8 minutes on one GPU):
#   1. training images/s at 224 px and at 28 px: `medxai fit` against the plain loop and the
#      per-image PIL pipeline, in float32 and bf16-mixed (bench_train.py),
#   2. one training step of the model alone with channels_last and torch.compile (bench_model_options.py),
#   3. explanation throughput per method at 28 and 224 px (bench_scaling.py --parts explain).
#
# The data is a generated bloodmnist.npz in the official layout, with BloodMNIST's split sizes
# (11,959 training images, 3 channels), because medmnist's dataset class checks the sizes. So no
# download is needed, and an epoch is long enough for steady state.
#
# Usage:  bash benchmarks/gpu_check.sh [OUTPUT_DIR]
#   OUTPUT_DIR defaults to $OUT when set (the device runner's output folder), else
#   benchmarks/results/gpu. Every part writes a JSON file there, and gpu_check.log keeps
#   the console output.
# Smoke test without a GPU (tiny settings, checks the plumbing only):
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_QUICK=1 bash benchmarks/gpu_check.sh /tmp/gpu_check
set -euo pipefail

cd "$(dirname "$0")/.."
OUTPUT_DIR="${1:-${OUT:-benchmarks/results/gpu}}"
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
mkdir -p "$OUTPUT_DIR"
DATA_DIR="$(mktemp -d)"
trap 'rm -rf "$DATA_DIR"' EXIT
exec > >(tee "$OUTPUT_DIR/gpu_check.log") 2>&1

if [[ "${GPU_CHECK_QUICK:-0}" == "1" ]]; then
    BATCH=16; WARMUP=1; STEPS=2; ROUNDS=1; EXPLAIN_N=4; OPTION_STEPS=1
else
    BATCH=128; WARMUP=10; STEPS=30; ROUNDS=2; EXPLAIN_N=256; OPTION_STEPS=10
fi

python - "$DATA_DIR" <<'PY'
import sys
from pathlib import Path

import numpy as np
from medmnist import INFO

from medxai.data.synthetic import make_known_signal

counts = INFO["bloodmnist"]["n_samples"]
arrays = make_known_signal(counts["train"], counts["val"], counts["test"], size=28, channels=3, seed=0)
np.savez(Path(sys.argv[1]) / "bloodmnist.npz", **{key: value for key, value in arrays.items() if not key.endswith("_masks")})
PY

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"

for SIZE in 224 28; do
    python benchmarks/bench_train.py --config configs/bloodmnist.yaml --data-root "$DATA_DIR" \
        --check-md5 false --device "$DEVICE" \
        --image-size "$SIZE" --batch-size "$BATCH" --paths fit plain pil --precision 32-true bf16-mixed \
        --warmup "$WARMUP" --steps "$STEPS" --rounds "$ROUNDS" --json "$OUTPUT_DIR/train_${SIZE}.json"
done

python benchmarks/bench_model_options.py --device "$DEVICE" --size 224 --channels 3 --classes 8 \
    --batch-size "$BATCH" \
    --variants fp32 fp32+cl bf16 bf16+cl bf16+cl+compile --warmup 3 --steps "$OPTION_STEPS" --rounds 2 \
    --json "$OUTPUT_DIR/model_options_224.json"

python benchmarks/bench_scaling.py --device "$DEVICE" --parts explain --sizes 28 224 \
    --explain-n "$EXPLAIN_N" --json "$OUTPUT_DIR/explain.json"

echo "gpu_check: results in $OUTPUT_DIR"
