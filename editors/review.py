"""A review image per episode: original vs edited first frames, with the masks outlined, as a PNG a
person can open. Colours: robot red, kept foreground green, edited region yellow, boxes cyan."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

ROBOT, FOREGROUND, EDITED, BOXES = (255, 40, 40), (40, 220, 40), (255, 220, 0), (0, 220, 255)
MIN_HEIGHT = 256  # small simulator frames are scaled up so the outlines stay readable


def outline(image: np.ndarray, mask: np.ndarray, colour: tuple, scale: int) -> None:
    big = cv2.resize(mask.astype(np.uint8), (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(image, contours, -1, colour, max(1, scale // 2))


def _label(image: np.ndarray, text: str) -> None:
    cv2.putText(image, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)


def review_panel(original: np.ndarray, edited: np.ndarray, foreground: np.ndarray, robot: np.ndarray,
                 edit_mask: np.ndarray, boxes: list[tuple] = (), title: str = "") -> np.ndarray:
    """One row: original (with segmentation outlined) | edited (with the edited region outlined)."""
    height, width = original.shape[:2]
    scale = max(1, int(np.ceil(MIN_HEIGHT / height)))
    size = (width * scale, height * scale)
    left = cv2.resize(original, size, interpolation=cv2.INTER_NEAREST)
    right = cv2.resize(edited, size, interpolation=cv2.INTER_NEAREST)
    outline(left, foreground, FOREGROUND, scale)
    outline(left, robot, ROBOT, scale)
    for box in boxes:
        x0, y0, x1, y1 = (int(v * scale) for v in box[1:5])
        cv2.rectangle(left, (x0, y0), (x1, y1), BOXES, 1)
    outline(right, edit_mask, EDITED, scale)
    outline(right, robot, ROBOT, scale)
    _label(left, f"original {title}".strip())
    _label(right, "edited")
    gap = np.full((size[1], 4, 3), 255, np.uint8)
    return np.concatenate([left, gap, right], axis=1)


def review_times(n: int, count: int = 3) -> np.ndarray:
    """The frames a review shows of a video of n frames: the first, the middle and the last."""
    return np.unique(np.linspace(0, n - 1, count).round().astype(int))


def frames_row(before: np.ndarray, after: np.ndarray, keep: np.ndarray, title: str = "",
               count: int = 3, times: list[int] | None = None) -> np.ndarray:
    """One row for a whole-video edit: source | edited at the first, middle and last frames, the
    kept pixels outlined (green) on the source, so a person sees every frame is treated alike.
    times: when the arrays hold only those frames (review_times of the video, gathered chunk by
    chunk), their frame numbers; all of them are shown."""
    indices = review_times(len(before), count) if times is None else range(len(before))
    panels = []
    for i in indices:
        t = i if times is None else times[i]
        panel = review_panel(before[i], after[i], keep[i], np.zeros_like(keep[i]), np.zeros_like(keep[i]),
                             title=f"{title} t={t}".strip())
        panels += [panel, np.full((panel.shape[0], 8, 3), 255, np.uint8)]
    return np.concatenate(panels[:-1], axis=1)


def write_review(path: Path, rows: list[np.ndarray]) -> Path:
    """Stack rows (one per camera / variant) into one PNG."""
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(padded), cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write review image {path}")
    return path


def write_job_grid(review_dir: Path, max_rows: int = 24) -> Path | None:
    """One image per job: the per-episode review rows (up to max_rows, by name) stacked into
    review_dir/review.png, so a person can look at one file."""
    panels = sorted(p for p in Path(review_dir).glob("*.png") if p.name != "review.png")[:max_rows]
    rows = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in panels]
    if not rows:
        return None
    return write_review(Path(review_dir) / "review.png", rows)
