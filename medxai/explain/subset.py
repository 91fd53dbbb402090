"""Choose which test images to explain, and split that choice across DDP ranks."""

from __future__ import annotations

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

#: Ways to choose the subset, see :func:`select_subset`.
SUBSET_STRATEGIES: tuple[str, ...] = ("first", "random", "stratified")


def validate_subset_args(size: int, strategy: str) -> None:
    """Raise ValueError unless ``size`` is an integer >= 1 and ``strategy`` is known."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"Invalid subset_size={size!r}. Expected an integer >= 1 (images to explain).")
    if strategy not in SUBSET_STRATEGIES:
        raise ValueError(f"Invalid subset={strategy!r}. Expected one of {', '.join(SUBSET_STRATEGIES)}.")


def select_subset(labels: Tensor, size: int, strategy: str = "first", seed: int = 0) -> Tensor:
    """Return the indices of the images to explain, in ascending order.

    Args:
        labels: Class index of every image of the split, int64 ``(N,)``.
        size: Number of images to choose. If it exceeds ``N``, all ``N`` are chosen and a
            warning is emitted.
        strategy: ``"first"``: images ``0 .. size-1``. ``"random"``: a uniform sample without
            replacement, seeded. ``"stratified"``: each class gets a share proportional to its
            frequency (largest-remainder rounding), and at least one image when ``size`` is at
            least the number of classes present. A smaller ``size`` takes one image from each
            of the ``size`` most frequent classes. Images within a class are drawn at random,
            seeded.
        seed: Seed of the random choices; the same seed and labels give the same indices.

    Returns:
        Indices into the split, int64 ``(min(size, N),)``, sorted, on the CPU.

    Raises:
        ValueError: If ``size`` < 1, ``strategy`` is unknown or the split is empty.
    """
    validate_subset_args(size, strategy)
    labels = labels.reshape(-1).cpu()
    total = labels.numel()
    if total == 0:
        raise ValueError("Cannot choose a subset: the split has no images.")
    if size > total:
        rank_zero_warn(f"subset_size={size} is larger than the split ({total} images); explaining all {total}.")
        size = total

    generator = torch.Generator().manual_seed(seed)
    if strategy == "first":
        return torch.arange(size, dtype=torch.int64)
    if strategy == "random":
        return torch.randperm(total, generator=generator)[:size].sort().values
    return _stratified(labels, size, generator)


def shard_indices(indices: Tensor, rank: int, world_size: int) -> Tensor:
    """Return the positions in ``indices`` that rank ``rank`` of ``world_size`` explains.

    Positions ``rank, rank + world_size, ...`` go to ``rank``, so shards differ in size by at
    most one and some ranks get none when there are fewer images than ranks.

    Returns:
        Positions into ``indices``, int64, ascending.
    """
    return torch.arange(rank, max(indices.numel(), rank), world_size, dtype=torch.int64)


def _stratified(labels: Tensor, size: int, generator: torch.Generator) -> Tensor:
    classes, counts = labels.unique(return_counts=True)
    allocation = _allocate(counts, size)

    chosen = []
    for cls, take in zip(classes.tolist(), allocation.tolist()):
        if take == 0:
            continue
        members = torch.nonzero(labels == cls).flatten()
        order = torch.randperm(members.numel(), generator=generator)
        chosen.append(members[order[:take]])
    return torch.cat(chosen).sort().values


def _allocate(counts: Tensor, size: int) -> Tensor:
    """Split ``size`` over classes with ``counts`` images, proportionally, within capacity."""
    num_classes = counts.numel()
    if size < num_classes:
        # Not enough room for every class: one image from each of the most frequent ones
        # (stable sort, so ties go to the lower class index).
        allocation = torch.zeros_like(counts)
        allocation[torch.sort(counts, descending=True, stable=True).indices[:size]] = 1
        return allocation

    quotas = counts.double() * size / counts.sum()
    allocation = torch.clamp(quotas.floor().long(), min=1)
    allocation = torch.minimum(allocation, counts)
    remainders = quotas - quotas.floor()

    # Hand out the images still missing, largest fractional remainder first, or take back the
    # surplus caused by the minimum of one per class, smallest remainder first.
    by_remainder = torch.sort(remainders, descending=True, stable=True).indices.tolist()
    while (missing := size - int(allocation.sum())) != 0:
        if missing > 0:
            candidates = [i for i in by_remainder if allocation[i] < counts[i]]
        else:
            candidates = [i for i in reversed(by_remainder) if allocation[i] > 1]
        for i in candidates[: abs(missing)]:
            allocation[i] += 1 if missing > 0 else -1
    return allocation
