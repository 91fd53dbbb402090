"""2 x 2 image mosaics for Quantus's Focus metric (Arias-Duart et al. 2022).

Focus scores an explanation on a mosaic of four images, two of the explained class and two of
other classes: the score is the share of positive relevance on the tiles of the explained class.
Quantus 0.6.0's ``Focus`` reads the tile layout from ``custom_batch``: one sequence of four 0/1
flags per mosaic, in the order top-left, top-right, bottom-left, bottom-right, where 1 marks a
tile of the explained class. It splits the map at ``H // 2`` and ``W // 2``, so tiles must be
equal in size.

medxai builds one mosaic per evaluated sample (the anchor): the anchor, a second image of its
class and two images of other classes, all from the test split, at random tile positions. The
Focus scores are therefore paired with the other metrics' scores by sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TILE_ORDER: tuple[str, ...] = ("top-left", "top-right", "bottom-left", "bottom-right")


@dataclass(frozen=True)
class FocusMosaics:
    """Mosaics and the data Quantus's Focus needs with them.

    Attributes:
        images: float32 ``(M, C, 2H, 2W)``, the mosaics in the model's input space.
        targets: int64 ``(M,)``, the explained class of each mosaic (its anchor's label).
        positions: int64 ``(M, 4)``, 1 where the tile (in :data:`TILE_ORDER`) shows the
            explained class; pass as Focus's ``custom_batch``.
        sources: int64 ``(M, 4)``, index into the image pool of the image on each tile.
    """

    images: np.ndarray
    targets: np.ndarray
    positions: np.ndarray
    sources: np.ndarray

    def __len__(self) -> int:
        return int(self.images.shape[0])


def plan_focus_mosaics(
    labels: np.ndarray, anchors: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Choose the four images and the tile layout of one Focus mosaic per anchor.

    Planning needs only labels, so a caller can preprocess just the chosen images (e.g. at
    224 px, where preprocessing a whole test split at once would not fit in memory).

    Args:
        labels: int ``(P,)`` class indices of the image pool (e.g. the test split).
        anchors: int ``(M,)`` indices into the pool of the samples to build mosaics for.
        seed: Seed of the generator that picks partner images and tile positions.

    Returns:
        ``(sources, positions)``: int64 ``(M, 4)`` pool indices of the image on each tile, and
        int64 ``(M, 4)`` flags that are 1 on the two tiles of the anchor's class, both in
        :data:`TILE_ORDER`.

    Raises:
        ValueError: If an anchor is out of range, or the pool lacks a second image of an
            anchor's class or two images of other classes.
    """
    pool_labels = np.asarray(labels).astype(np.int64).ravel()
    anchor_indices = np.asarray(anchors).astype(np.int64).ravel()
    if anchor_indices.size and (anchor_indices.min() < 0 or anchor_indices.max() >= pool_labels.size):
        raise ValueError(
            f"Invalid anchors: indices must lie in [0, {pool_labels.size - 1}], "
            f"got range [{anchor_indices.min()}, {anchor_indices.max()}]."
        )

    rng = np.random.default_rng(seed)
    sources = np.empty((anchor_indices.size, 4), dtype=np.int64)
    positions = np.zeros((anchor_indices.size, 4), dtype=np.int64)
    for row, anchor in enumerate(anchor_indices):
        target = pool_labels[anchor]
        same = np.flatnonzero((pool_labels == target) & (np.arange(pool_labels.size) != anchor))
        other = np.flatnonzero(pool_labels != target)
        if same.size < 1 or other.size < 2:
            raise ValueError(
                f"Cannot build a Focus mosaic for class {target}: the pool has {same.size + 1} image(s) of "
                f"that class and {other.size} of other classes. Focus needs at least 2 of each."
            )
        tiles = np.array([anchor, rng.choice(same), *rng.choice(other, size=2, replace=False)])
        # Slots 0 and 1 of the permutation receive the two images of the explained class.
        slots = rng.permutation(4)
        sources[row, slots] = tiles
        positions[row, slots[:2]] = 1
    return sources, positions


def tile_mosaics(images: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Place ``images[sources[m]]`` on a 2 x 2 grid in :data:`TILE_ORDER`.

    Args:
        images: ``(P, C, H, W)`` images, already preprocessed.
        sources: int ``(M, 4)`` indices into ``images``.

    Returns:
        ``(M, C, 2H, 2W)`` mosaics with the dtype of ``images``.
    """
    return _tile(np.asarray(images), np.asarray(sources, dtype=np.int64))


def build_focus_mosaics(
    pool_images: np.ndarray,
    pool_labels: np.ndarray,
    anchors: np.ndarray,
    seed: int = 0,
) -> FocusMosaics:
    """Build one Focus mosaic per anchor from a pool of labelled, preprocessed images.

    Args:
        pool_images: float ``(P, C, H, W)``, preprocessed images (the pool, e.g. the test split).
        pool_labels: int ``(P,)`` class indices of the pool.
        anchors: int ``(M,)`` indices into the pool of the samples to build mosaics for.
        seed: Seed of the generator that picks partner images and tile positions.

    Returns:
        The mosaics, their targets, tile flags and source indices.

    Raises:
        ValueError: If shapes disagree, an anchor is out of range, or the pool lacks a second
            image of an anchor's class or two images of other classes.
    """
    images = np.asarray(pool_images)
    labels = np.asarray(pool_labels).astype(np.int64).ravel()
    if images.ndim != 4:
        raise ValueError(f"Invalid pool_images with shape {images.shape}. Expected (P, C, H, W).")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"pool_labels has {labels.shape[0]} entries but pool_images has {images.shape[0]} images."
        )
    sources, positions = plan_focus_mosaics(labels, anchors, seed)
    return FocusMosaics(
        images=_tile(images, sources).astype(np.float32, copy=False),
        targets=labels[np.asarray(anchors).astype(np.int64).ravel()],
        positions=positions,
        sources=sources,
    )


def _tile(images: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Place ``images[sources[m]]`` on a 2 x 2 grid in :data:`TILE_ORDER`: ``(M, C, 2H, 2W)``."""
    count, (channels, height, width) = sources.shape[0], images.shape[1:]
    mosaics = np.empty((count, channels, 2 * height, 2 * width), dtype=images.dtype)
    mosaics[:, :, :height, :width] = images[sources[:, 0]]
    mosaics[:, :, :height, width:] = images[sources[:, 1]]
    mosaics[:, :, height:, :width] = images[sources[:, 2]]
    mosaics[:, :, height:, width:] = images[sources[:, 3]]
    return mosaics
