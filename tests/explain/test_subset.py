"""Choice of the test subset and its split across DDP ranks."""

from __future__ import annotations

import pytest
import torch

from medxai.explain.subset import select_subset, shard_indices

# 80 images of class 0, 15 of class 1, 5 of class 2, interleaved.
LABELS = torch.tensor(([0] * 16 + [1] * 3 + [2]) * 5)


def test_first():
    assert select_subset(LABELS, 4, "first").tolist() == [0, 1, 2, 3]


def test_random_is_seeded_sorted_and_unique():
    chosen = select_subset(LABELS, 10, "random", seed=7)
    assert chosen.tolist() == select_subset(LABELS, 10, "random", seed=7).tolist()
    assert chosen.tolist() != select_subset(LABELS, 10, "random", seed=8).tolist()
    assert chosen.tolist() == sorted(set(chosen.tolist()))
    assert chosen.dtype == torch.int64


@pytest.mark.parametrize(
    ("size", "expected_counts"),
    [(1, [1, 0, 0]), (2, [1, 1, 0]), (3, [1, 1, 1]), (10, [8, 1, 1]), (20, [16, 3, 1]), (100, [80, 15, 5])],
)
def test_stratified_counts(size, expected_counts):
    chosen = select_subset(LABELS, size, "stratified", seed=0)
    assert chosen.numel() == size
    assert torch.bincount(LABELS[chosen], minlength=3).tolist() == expected_counts
    assert chosen.tolist() == sorted(set(chosen.tolist()))


def test_stratified_is_seeded():
    assert select_subset(LABELS, 12, "stratified", 3).tolist() == select_subset(LABELS, 12, "stratified", 3).tolist()
    assert select_subset(LABELS, 12, "stratified", 3).tolist() != select_subset(LABELS, 12, "stratified", 4).tolist()


def test_larger_than_split_is_clamped_with_warning():
    with pytest.warns(UserWarning, match=r"subset_size=500 is larger than the split \(100 images\); explaining all 100"):
        chosen = select_subset(LABELS, 500, "random")
    assert chosen.tolist() == list(range(100))


@pytest.mark.parametrize("size", [0, -3, 2.5, True])
def test_invalid_size(size):
    with pytest.raises(ValueError, match=r"Invalid subset_size=.*Expected an integer >= 1"):
        select_subset(LABELS, size, "first")


def test_unknown_strategy():
    with pytest.raises(ValueError, match=r"Invalid subset='balanced'. Expected one of first, random, stratified"):
        select_subset(LABELS, 3, "balanced")


def test_empty_split():
    with pytest.raises(ValueError, match=r"Cannot choose a subset: the split has no images"):
        select_subset(torch.zeros(0, dtype=torch.int64), 3, "first")


@pytest.mark.parametrize(("count", "world_size"), [(10, 2), (5, 3), (1, 2), (0, 2)])
def test_shards_cover_subset_once(count, world_size):
    indices = torch.arange(100, 100 + count)
    shards = [shard_indices(indices, rank, world_size) for rank in range(world_size)]
    combined = sorted(torch.cat(shards).tolist())
    assert combined == list(range(count))
    assert max(len(shard) for shard in shards) - min(len(shard) for shard in shards) <= 1
