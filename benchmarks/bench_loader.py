"""Time one epoch of DataLoader batches from in-memory uint8 tensors: per-sample reads against one gather.

``per-sample`` is PyTorch's default path for a ``TensorDataset``: one ``dataset[i]`` call per
sample, then ``default_collate`` stacks them. ``batched`` is what ``MedMNISTDataModule`` uses:
``BatchedTensorDataset.__getitems__`` gathers the batch with one ``tensor[indices]`` per tensor.
Both shuffle with a ``RandomSampler`` and drop the last incomplete batch, as the train loader
does. No model runs, so this is the data path's cost alone. The two loaders run in turns.

Example:
    python benchmarks/bench_loader.py --threads 1
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from bench_common import machine_info, markdown_table, median, write_report
from medxai.data.batched import BatchedTensorDataset, collate_batched


def epoch_seconds(loader: DataLoader) -> float:
    started = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=12000, help="images in memory (BloodMNIST train: 11959)")
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[28, 224], help="stored image side in pixels")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--max-bytes", type=float, default=1e9, help="fewer samples above this many image bytes")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = []
    for size in args.sizes:
        count = min(args.samples, int(args.max_bytes // (args.channels * size * size)))
        images = torch.randint(0, 256, (count, args.channels, size, size), dtype=torch.uint8)
        labels = torch.randint(0, 8, (count,))
        for batch_size in args.batch_sizes:
            loaders = {
                "per-sample": DataLoader(TensorDataset(images, labels), batch_size=batch_size, shuffle=True, drop_last=True),
                "batched": DataLoader(BatchedTensorDataset(images, labels), batch_size=batch_size, shuffle=True,
                                      drop_last=True, collate_fn=collate_batched),
            }
            times: dict[str, list[float]] = {name: [] for name in loaders}
            for _ in range(args.rounds):
                for name, loader in loaders.items():
                    times[name].append(epoch_seconds(loader))
            batches = count // batch_size
            per_sample, batched = median(times["per-sample"]), median(times["batched"])
            rows.append({
                "size": size, "samples": count, "batch_size": batch_size,
                "per_sample_ms_per_batch": 1e3 * per_sample / batches,
                "batched_ms_per_batch": 1e3 * batched / batches,
                "speedup": per_sample / batched,
            })
            print(rows[-1], flush=True)

    print(markdown_table(rows, ["size", "samples", "batch_size", "per_sample_ms_per_batch", "batched_ms_per_batch", "speedup"]))
    write_report(args.json, {"benchmark": "loader", "machine": machine_info(), "settings": vars(args), "results": rows})


if __name__ == "__main__":
    main()
