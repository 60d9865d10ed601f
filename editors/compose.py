"""Masks, compositing and placement shared by every edit: pure numpy / OpenCV, no model.

The one rule every edit follows: a pixel changes only where the edit mask says so, and the edit
mask never covers a protected (robot) pixel. `composite` enforces that bit for bit, whatever the
model produced, so a generative backend can never touch the robot or the rest of the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def composite(frame: np.ndarray, new: np.ndarray, edit_mask: np.ndarray, protect: np.ndarray | None = None,
              feather: int = 0) -> np.ndarray:
    """`new` over `frame` inside `edit_mask` (minus `protect`); every other pixel is `frame`'s, exactly.

    feather softens the seam *inward*: alpha falls off over `feather` px inside the mask, so the
    blend never reaches outside it.
    """
    allowed = edit_mask.astype(bool)
    if protect is not None:
        allowed &= ~protect.astype(bool)
    alpha = allowed.astype(np.float32)
    if feather:
        # distance to the nearest not-allowed pixel, in px: 1 at the edge, grows inward
        dist = cv2.distanceTransform(allowed.astype(np.uint8), cv2.DIST_L2, 3)
        alpha = np.clip(dist / (feather + 1), 0, 1)
    a = alpha[..., None]
    blended = (frame.astype(np.float32) * (1 - a) + new.astype(np.float32) * a).round().astype(np.uint8)
    return np.where(allowed[..., None], blended, frame)


def mask_fraction(masks: np.ndarray) -> float:
    return round(float(np.asarray(masks, dtype=bool).mean()), 4)


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    if pixels <= 0:
        return mask.astype(bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def fraction_box_to_pixels(box: list[float], height: int, width: int) -> tuple[int, int, int, int]:
    """[x0, y0, x1, y1] in fractions of the width/height -> integer pixel box."""
    x0, y0, x1, y1 = box
    return (int(round(x0 * width)), int(round(y0 * height)), int(round(x1 * width)), int(round(y1 * height)))


# ---------------------------------------------------------------------------------------------
# Placement


def find_free_box(free: np.ndarray, box_h: int, box_w: int, rng: np.random.Generator) -> tuple[int, int, int, int] | None:
    """A random (x0, y0, x1, y1) box of the given size lying wholly inside `free`; None when none fits.

    Every candidate top-left corner is tested at once with a summed-area table, so the choice is
    uniform over all boxes that fit rather than over a few random tries.
    """
    height, width = free.shape
    if box_h > height or box_w > width or box_h < 1 or box_w < 1:
        return None
    table = cv2.integral(free.astype(np.uint8))  # (H+1, W+1)
    inside = (table[box_h:, box_w:] - table[:-box_h, box_w:] - table[box_h:, :-box_w] + table[:-box_h, :-box_w])
    ys, xs = np.nonzero(inside == box_h * box_w)
    if len(ys) == 0:
        return None
    i = int(rng.integers(len(ys)))
    y0, x0 = int(ys[i]), int(xs[i])
    return (x0, y0, x0 + box_w, y0 + box_h)


def place_boxes(free: np.ndarray, sizes: list[tuple[int, int]], rng: np.random.Generator,
                gap: int = 2) -> list[tuple[int, int, int, int]]:
    """Boxes for several objects, one after another, each also clear of the ones placed before it
    (with `gap` px between). Stops at the first object that no longer fits."""
    free = free.astype(bool).copy()
    boxes = []
    for box_h, box_w in sizes:
        box = find_free_box(free, box_h, box_w, rng)
        if box is None:
            break
        boxes.append(box)
        x0, y0, x1, y1 = box
        free[max(y0 - gap, 0):y1 + gap, max(x0 - gap, 0):x1 + gap] = False
    return boxes


def ellipse_mask(box: tuple[int, int, int, int], height: int, width: int) -> np.ndarray:
    """The ellipse inscribed in a box: the region an inpainted object may occupy."""
    x0, y0, x1, y1 = box
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = (x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2
    a, b = max((x1 - x0) / 2, 0.5), max((y1 - y0) / 2, 0.5)
    return ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 <= 1


# ---------------------------------------------------------------------------------------------
# RGBA assets


@dataclass
class Sprite:
    """An object ready to composite: colour and opacity over the whole frame (zero outside it)."""

    rgb: np.ndarray  # uint8 (H, W, 3)
    alpha: np.ndarray  # float32 (H, W) in [0, 1]

    @property
    def mask(self) -> np.ndarray:
        return self.alpha > 0


def asset_sprite(asset: np.ndarray, box: tuple[int, int, int, int], height: int, width: int,
                 shadow_offset: tuple[int, int] = (3, 3), shadow_blur: int = 5,
                 shadow_strength: float = 0.5) -> Sprite:
    """Scale an RGBA asset into `box` (keeping its aspect, bottom-centred) and cast a soft shadow
    below-right of it: the shadow is the blurred, offset alpha darkening what lies under it."""
    if asset.ndim != 3 or asset.shape[-1] != 4:
        raise ValueError(f"an asset must be RGBA (H, W, 4), got {asset.shape}")
    x0, y0, x1, y1 = box
    scale = min((x1 - x0) / asset.shape[1], (y1 - y0) / asset.shape[0])
    w, h = max(int(asset.shape[1] * scale), 1), max(int(asset.shape[0] * scale), 1)
    resized = cv2.resize(asset, (w, h), interpolation=cv2.INTER_AREA)
    left, top = x0 + ((x1 - x0) - w) // 2, y1 - h
    rgb = np.zeros((height, width, 3), np.uint8)
    obj_alpha = np.zeros((height, width), np.float32)
    rgb[top:top + h, left:left + w] = resized[..., :3]
    obj_alpha[top:top + h, left:left + w] = resized[..., 3] / 255.0

    # shift without wrapping round the frame edge (np.roll would cast the shadow on the far side)
    dx, dy = shadow_offset
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    shadow = cv2.warpAffine(obj_alpha, shift, (width, height), flags=cv2.INTER_NEAREST, borderValue=0)
    if shadow_blur:
        k = 2 * shadow_blur + 1
        shadow = cv2.GaussianBlur(shadow, (k, k), 0)
    shadow *= shadow_strength * (1 - obj_alpha)
    # encode the shadow as black with its own opacity, then lay the object over it ("over" operator)
    alpha = obj_alpha + shadow * (1 - obj_alpha)
    safe = np.where(alpha > 0, alpha, 1)
    colour = rgb.astype(np.float32) * (obj_alpha / safe)[..., None]
    return Sprite(rgb=colour.round().clip(0, 255).astype(np.uint8), alpha=np.where(alpha > 1 / 255, alpha, 0))


def draw_sprite(frame: np.ndarray, sprite: Sprite, protect: np.ndarray | None = None) -> np.ndarray:
    """Alpha-blend a sprite; pixels outside its alpha, and protected pixels, stay exactly as they were."""
    allowed = sprite.mask if protect is None else sprite.mask & ~protect.astype(bool)
    a = sprite.alpha[..., None]
    blended = (frame.astype(np.float32) * (1 - a) + sprite.rgb.astype(np.float32) * a).round().astype(np.uint8)
    return np.where(allowed[..., None], blended, frame)


def load_rgba(path: str) -> np.ndarray:
    """An image file as RGBA uint8; images without alpha become fully opaque."""
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"cannot read image {path!r}")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGRA)
    elif image.shape[-1] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
    return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)


def replace_background(frames: np.ndarray, foreground: np.ndarray, robot: np.ndarray, backdrop: np.ndarray,
                       feather: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Every frame gets the same `backdrop` wherever it is not foreground. Returns (frames, edit masks)."""
    edit_masks = ~foreground & ~robot
    out = np.stack([composite(f, backdrop, m, robot[i], feather) for i, (f, m) in enumerate(zip(frames, edit_masks))])
    return out, edit_masks

