"""Weight-free segmentation for a static camera: the fallback segmenter.

Per episode, the per-pixel temporal median is the background plate.
- foreground_masks: a pixel is foreground in a frame when it differs from the plate (something moved
  there) or, optionally, when it is strongly coloured in the plate. The model-backed segmenters'
  robot mask and the object edits use it.
- editors/workspace.py builds on the plate what a background edit keeps: the robot (pedestal
  included), every task object (also before it moves) and the table.
Needs no downloaded weights and runs on the CPU at hundreds of frames per second at 128 px.
"""

from __future__ import annotations

import cv2
import numpy as np


def background_plate(frames: np.ndarray, max_samples: int = 64) -> np.ndarray:
    """Temporal median of up to `max_samples` evenly spaced frames, uint8 (H, W, 3)."""
    return np.median(frames[plate_indices(len(frames), max_samples)], axis=0).astype(np.uint8)


def plate_indices(n: int, max_samples: int = 64) -> np.ndarray:
    """The frames of an episode of n frames that its plate is the median of: up to `max_samples`, evenly spaced."""
    return np.linspace(0, n - 1, min(n, max_samples)).round().astype(int)


def plate_difference(frames: np.ndarray, plate: np.ndarray) -> np.ndarray:
    """uint8 (T, H, W): each pixel's largest channel difference from the plate. (uint8 arithmetic and
    an elementwise max of the channels: ~10x faster than int16 and .max(axis=-1), the same values.)"""
    d = np.maximum(frames, plate) - np.minimum(frames, plate)
    return np.maximum(np.maximum(d[..., 0], d[..., 1]), d[..., 2])


def foreground_masks(
    frames: np.ndarray,
    diff_threshold: float = 18.0,
    saturation_threshold: float | None = 0.45,
    dilate: int = 2,
    min_area: int = 12,
) -> np.ndarray:
    """Boolean (T, H, W) masks, True where the foreground (robot, objects) is."""
    plate = background_plate(frames)
    diff = plate_difference(frames, plate)
    masks = np.stack([cv2.GaussianBlur(d.astype(np.float32), (3, 3), 0) for d in diff]) > diff_threshold
    if saturation_threshold is not None:
        hsv = cv2.cvtColor(plate, cv2.COLOR_RGB2HSV)
        coloured = (hsv[..., 1] / 255.0 > saturation_threshold) & (hsv[..., 2] > 40)
        masks |= coloured[None]
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1, 2 * dilate + 1)) if dilate else None
    out = np.empty_like(masks)
    for t, mask in enumerate(masks.astype(np.uint8)):
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
        if kernel is not None:
            mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
            mask = cv2.dilate(mask, kernel)
        out[t] = drop_specks(mask, min_area)
    return out


def drop_specks(mask: np.ndarray, min_area: int) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = np.zeros(n, dtype=bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    return keep[labels]
