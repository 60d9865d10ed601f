"""Synthetic hallucinations, to measure a verifier on (benchmarks/bench_verifier.py) and to train one on.

`corrupt(frames, kind, rng)` returns a corrupted copy of one camera's (T, H, W, 3) uint8 frames and a
record of what was done (kind, start frame, box, whether the object had already been touched). The
start frame is drawn anywhere in the episode's middle three quarters, so corruptions also begin while
the robot holds or pushes the object; sizes, positions and colours are drawn too.

    duplicate   a copy of an object appears elsewhere and stays (it follows what the original does)
    vanish      an object is painted out (inpainted) and stays gone
    appear      a new object (a disc or a box of a random colour and size) appears and stays
    morph       an object changes colour, or grows or shrinks, over a few frames
    freeze      the video stops: the start frame repeats to the end
    teleport    an object jumps to another place and stays there
    cut         part of the episode is skipped: the whole scene (the robot) jumps

An "object" is a compact blob of the start frame that stands out from its surroundings, is smaller
than the robot and not part of the robot's base (object_boxes): on MetaWorld the puck, the handles,
the goal marker; on PushT the T block, its target, the pusher. A draw that changes nothing visible
(`visible`: the object hidden behind the arm, a cut while nothing moves), or one that does not stay
(`lasting`: a box painted out after the robot carried its object away) is drawn again.
"""

from __future__ import annotations

import cv2
import numpy as np

KINDS = ("duplicate", "vanish", "appear", "morph", "freeze", "teleport", "cut")
RAMP = (3, 8)  # frames over which a morph happens (drawn)


def salient_blobs(frame: np.ndarray, contrast: float = 40.0) -> tuple[int, np.ndarray, np.ndarray]:
    """Connected blobs that stand out from their surroundings (the frame's median over a window a
    quarter of its size): (count, labels, stats) as cv2.connectedComponentsWithStats gives them."""
    h, w = frame.shape[:2]
    k = max(5, (max(h, w) // 4) | 1)
    local = cv2.medianBlur(frame, min(k, 255))
    salient = (np.abs(frame.astype(np.int16) - local.astype(np.int16)).max(axis=-1) > contrast).astype(np.uint8)
    salient = cv2.morphologyEx(salient, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    salient = cv2.morphologyEx(salient, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    return cv2.connectedComponentsWithStats(salient, connectivity=8)[:3]


def _largest(n: int, labels: np.ndarray, stats: np.ndarray) -> np.ndarray:
    if n <= 1:
        return np.zeros(labels.shape, bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def object_boxes(frame: np.ndarray, first: np.ndarray | None = None, max_fraction: float = 0.04) -> list[tuple]:
    """Boxes (y0, x0, y1, x1) around the compact salient blobs of `frame`: a puck on a wooden table, a
    goal marker, a handle, the T block on PushT's white floor. Left out: blobs larger than
    `max_fraction` of the frame (the robot), blobs on the image border, and blobs that touch the
    largest blob (the robot) both in `frame` and in `first` (the episode's first frame): parts of the
    robot's own base, not objects it handles."""
    h, w = frame.shape[:2]
    n, labels, stats = salient_blobs(frame)
    ring = np.ones((5, 5), np.uint8)
    robot = cv2.dilate(_largest(n, labels, stats).astype(np.uint8), ring).astype(bool)
    if first is not None:
        robot0 = cv2.dilate(_largest(*salient_blobs(first)).astype(np.uint8), ring).astype(bool)
    boxes = []
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        if not (max(8, 0.0005 * h * w) <= area <= max_fraction * h * w):
            continue
        if max(bw, bh) > 0.4 * max(h, w) or area < 0.2 * bw * bh:
            continue  # long thin edges (a table's rim, the robot's outline) are no objects
        if x == 0 or y == 0 or x + bw >= w or y + bh >= h:
            continue
        blob = labels == i
        if (blob & robot).any() and (first is None or (blob & robot0).any()):
            continue
        pad = 2
        boxes.append((max(0, y - pad), max(0, x - pad), min(h, y + bh + pad), min(w, x + bw + pad)))
    return boxes


def visible(clean: np.ndarray, corrupted: np.ndarray, min_pixels: int = 20, level: int = 40) -> bool:
    """Whether a corruption shows: in some frame at least `min_pixels` pixels differ by `level` grey
    levels (a corruption hidden behind the robot, or of a patch the inpainting restores, is none)."""
    if len(clean) != len(corrupted):
        n = min(len(clean), len(corrupted))
        return bool(max((np.abs(clean[t].astype(np.int16) - corrupted[t]).max(axis=-1) > level).sum()
                        for t in range(0, n, 2)) >= min_pixels)
    diff = np.abs(clean.astype(np.int16) - corrupted).max(axis=-1) > level
    return bool(diff.reshape(len(diff), -1).sum(axis=1).max() >= min_pixels)


def lasting(clean: np.ndarray, corrupted: np.ndarray, start: int, min_pixels: int = 20, level: int = 40,
            share: float = 0.5) -> bool:
    """Whether a corruption of a thing (duplicate, vanish, appear, morph, teleport) stays: at least
    `min_pixels` pixels differ by `level` grey levels in at least `share` of the frames from `start`
    on. `visible` asks for one frame only, so a box painted out after the gripper has carried the
    puck out of it, or a dark patch turned another hue, passed it while changing (almost) nothing
    that lasts: a flicker, not the kind of failure each of these kinds stands for."""
    n = min(len(clean), len(corrupted))
    if start >= n:
        return False
    diff = np.abs(clean[start:n].astype(np.int16) - corrupted[start:n]).max(axis=-1) > level
    return bool((diff.mean(axis=0) >= share).sum() >= min_pixels)


def touched_before(frames: np.ndarray, box, t0: int, level: float = 8.0) -> bool:
    """Whether the box had already changed from frame 0 before t0: the robot reached or moved the object."""
    y0, x0, y1, x1 = box
    crops = frames[:t0 + 1, y0:y1, x0:x1].astype(np.int16)
    change = np.abs(crops - crops[:1]).max(axis=-1).mean(axis=(1, 2))
    return bool((change > level).any())


def _free_spot(box, shape, rng, min_shift: int) -> tuple[int, int]:
    y0, x0, y1, x1 = box
    bh, bw = y1 - y0, x1 - x0
    h, w = shape
    for _ in range(200):
        ny, nx = int(rng.integers(h // 4, max(h // 4 + 1, h - bh))), int(rng.integers(0, max(1, w - bw)))
        if abs(ny - y0) + abs(nx - x0) >= min_shift:
            return ny, nx
    return (y0 + min_shift) % max(1, h - bh), x0


def _paint_out(frame: np.ndarray, box) -> np.ndarray:
    y0, x0, y1, x1 = box
    mask = np.zeros(frame.shape[:2], np.uint8)
    mask[y0:y1, x0:x1] = 1
    return cv2.inpaint(frame, mask, 3, cv2.INPAINT_TELEA)


def _random_colour(rng) -> tuple[int, int, int]:
    hsv = np.uint8([[[int(rng.integers(0, 180)), int(rng.integers(120, 256)), int(rng.integers(120, 256))]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def corrupt(frames: np.ndarray, kind: str, rng: np.random.Generator, tries: int = 20) -> tuple[np.ndarray, dict]:
    """A corrupted copy of (T, H, W, 3) frames and what was done. Drawn again (start, object, size)
    until it is visible (`visible`), at most `tries` times; info["tries"] says how many it took."""
    if kind not in KINDS:
        raise ValueError(f"unknown corruption {kind!r}; valid: {KINDS}")
    for attempt in range(1, tries + 1):
        out, info = _corrupt_once(frames, kind, rng)
        if kind == "freeze" or (visible(frames, out) and (kind == "cut" or lasting(frames, out, info["frame"]))):
            break
    info["tries"] = attempt
    return out, info


def _corrupt_once(frames: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    out = frames.copy()
    t_len, h, w = frames.shape[:3]
    t0 = int(rng.integers(max(2, t_len // 8), max(3, t_len * 7 // 8)))
    info: dict = {"kind": kind, "frame": t0}
    if kind == "freeze":
        out[t0:] = frames[t0]
        return out, info
    if kind == "cut":
        k = int(rng.integers(max(2, t_len // 8), max(3, t_len // 3)))
        t0 = min(t0, t_len - k - 2)
        info.update(frame=t0, skipped=k)
        return np.concatenate([frames[:t0], frames[t0 + k:]]), info
    boxes = object_boxes(frames[t0], frames[0])
    if kind != "appear" and not boxes:
        kind = info["kind_done"] = "appear"  # nothing to act on: something new appears instead
    if kind == "appear":
        size = int(rng.integers(max(4, round(0.05 * max(h, w))), max(5, round(0.14 * max(h, w)))))
        ny, nx = _free_spot((0, 0, size, size), (h, w), rng, 0)
        colour, disc = _random_colour(rng), bool(rng.integers(2))
        for t in range(t0, t_len):
            if disc:
                cv2.circle(out[t], (nx + size // 2, ny + size // 2), size // 2, colour, -1)
            else:
                cv2.rectangle(out[t], (nx, ny), (nx + size - 1, ny + size - 1), colour, -1)
        info.update(box=[ny, nx, ny + size, nx + size], size=size)
        return out, info
    box = boxes[int(rng.integers(len(boxes)))]
    y0, x0, y1, x1 = box
    info.update(box=list(map(int, box)), touched=touched_before(frames, box, t0))
    if kind in ("duplicate", "teleport"):
        bh, bw = y1 - y0, x1 - x0
        ny, nx = _free_spot(box, (h, w), rng, min_shift=max(bh, bw) + int(rng.integers(2, max(3, w // 4))))
        ny, nx = min(ny, h - bh), min(nx, w - bw)
        for t in range(t0, t_len):
            patch = (frames[t] if kind == "duplicate" else frames[t0])[y0:y1, x0:x1].copy()
            if kind == "teleport":
                out[t] = _paint_out(out[t], box)
            out[t, ny:ny + bh, nx:nx + bw] = patch
        info["to"] = [int(ny), int(nx)]
    elif kind == "vanish":
        for t in range(t0, t_len):
            out[t] = _paint_out(frames[t], box)
    elif kind == "morph":
        ramp = int(rng.integers(*RAMP))
        if rng.integers(2):  # colour
            shift = int(rng.integers(40, 140))
            info.update(morph="colour", hue_shift=shift)
            for t in range(t0, t_len):
                a = min(1.0, (t - t0 + 1) / ramp)
                hsv = cv2.cvtColor(frames[t, y0:y1, x0:x1], cv2.COLOR_RGB2HSV).astype(np.int32)
                hsv[..., 0] = (hsv[..., 0] + round(shift * a)) % 180
                hsv[..., 1] = np.maximum(hsv[..., 1], round(160 * a))
                out[t, y0:y1, x0:x1] = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
        else:  # shape: grows or shrinks about its centre
            target = float(rng.uniform(1.6, 2.4) if rng.integers(2) else rng.uniform(0.3, 0.6))
            info.update(morph="scale", scale=round(target, 2))
            cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
            for t in range(t0, t_len):
                scale = 1.0 + (target - 1.0) * min(1.0, (t - t0 + 1) / ramp)
                base = _paint_out(frames[t], box) if target < 1 else frames[t]
                patch = cv2.resize(frames[t, y0:y1, x0:x1], None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
                gh, gw = patch.shape[:2]
                ty0, tx0 = max(0, cy - gh // 2), max(0, cx - gw // 2)
                ty1, tx1 = min(h, ty0 + gh), min(w, tx0 + gw)
                out[t] = base
                out[t, ty0:ty1, tx0:tx1] = patch[: ty1 - ty0, : tx1 - tx0]
    return out, info
