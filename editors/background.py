"""Structure-preserving background replacement (the GreenAug / RoboEngine recipe, weight-free).

Every frame of the real video keeps its foreground (robot, objects) pixel for pixel and gets a new
background: an image from a folder, or a seeded procedural texture, the same for the whole episode.
State, actions and task are untouched, so the recorded actions stay true.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import Field, field_validator

from augment.episode import Episode
from augment.stage import Stage, StageSpec, derive_seed
from editors.compose import replace_background
from editors.segment import foreground_masks
from editors.segmenter import SegmenterSpec

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


class BackgroundSpec(StageSpec):
    type: Literal["background"] = "background"
    backgrounds: str = Field("procedural", description="'procedural', or a folder of images")
    variants: int = Field(1, ge=1, description="new episodes per input, each with another background")
    seed: int = Field(0, description="with the episode uid and variant, picks the background")
    cameras: list[str] | None = Field(
        None, description="cameras to edit; default: the fixed ones, measured in the frames (wrist cameras move)")
    diff_threshold: float = Field(18.0, gt=0, description="colour distance that makes a pixel foreground")
    saturation_threshold: float | None = Field(
        0.45, description="keep strongly coloured still pixels (objects) as foreground; null disables"
    )
    feather: int = Field(2, ge=0, description="soften the seam over this many pixels of background")
    segmenter: SegmenterSpec | None = Field(
        None, description="a model-backed segmenter (kind sam or text); default: the weight-free thresholds above"
    )

    stage_class = "editors.background:BackgroundStage"
    default_cameras = "fixed"

    @field_validator("backgrounds")
    @classmethod
    def _folder_exists(cls, value: str) -> str:
        if value != "procedural":
            folder = Path(value)
            if not folder.is_dir():
                raise ValueError(f"{value!r} is neither 'procedural' nor an existing folder")
            if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()):
                raise ValueError(f"folder {value!r} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return value


def procedural_texture(height: int, width: int, seed: int) -> np.ndarray:
    """A seeded texture: checkerboard, stripes, blotchy noise or a gradient, in random colours."""
    rng = np.random.default_rng(seed)
    kind = rng.integers(4)
    c1, c2 = rng.integers(0, 256, size=(2, 3))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == 0:
        cell = int(rng.integers(6, 24))
        t = ((yy // cell + xx // cell) % 2)[..., None]
    elif kind == 1:
        angle, period = rng.uniform(0, np.pi), rng.uniform(6, 30)
        t = (0.5 + 0.5 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period))[..., None]
    elif kind == 2:
        small = rng.random((max(2, height // 16), max(2, width // 16))).astype(np.float32)
        t = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)[..., None].clip(0, 1)
    else:
        t = ((xx / max(width - 1, 1) + yy / max(height - 1, 1)) / 2)[..., None]
    return (c1 * (1 - t) + c2 * t).astype(np.uint8)


class BackgroundStage(Stage):
    spec: BackgroundSpec

    def setup(self) -> None:
        self.segmenter = None
        if self.spec.segmenter is not None:
            from editors.segmenter import Segmenter

            self.segmenter = Segmenter(self.spec.segmenter)
        self.images: list[Path] = []
        if self.spec.backgrounds != "procedural":
            folder = Path(self.spec.backgrounds)
            self.images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)

    def background(self, height: int, width: int, seed: int) -> tuple[np.ndarray, str]:
        if not self.images:
            return procedural_texture(height, width, seed), f"procedural:{seed}"
        path = self.images[seed % len(self.images)]
        image = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), str(path)

    def foreground(self, video: np.ndarray) -> np.ndarray:
        if self.segmenter is None:
            return foreground_masks(video, self.spec.diff_threshold, self.spec.saturation_threshold)
        # the robot mask is part of the foreground, which composite() keeps pixel for pixel
        return self.segmenter(video, list(range(len(video)))).foreground

    def __call__(self, episodes: list[Episode]) -> list[Episode]:
        out = []
        for episode in episodes:
            cameras = self.spec.cameras or list(episode.frames)
            masks = {k: self.foreground(episode.frames[k]) for k in cameras}
            for variant in range(self.spec.variants):
                seed = derive_seed(self.spec.seed, episode.uid, variant)
                frames = dict(episode.frames)
                chosen, areas = {}, {}
                for key in cameras:
                    video = episode.frames[key]
                    backdrop, chosen[key] = self.background(video.shape[1], video.shape[2], derive_seed(seed, key))
                    frames[key] = composite(video, masks[key], backdrop, self.spec.feather)
                    areas[key] = round(float(masks[key].mean()), 4)
                uid = episode.uid if self.spec.variants == 1 else f"{episode.uid}-bg{variant}"
                new = episode.replace(frames=frames, uid=uid)
                self.record(new, variant=variant, seed=seed, background=chosen, foreground_fraction=areas)
                out.append(new)
        return out


def composite(frames: np.ndarray, masks: np.ndarray, backdrop: np.ndarray, feather: int) -> np.ndarray:
    """Foreground pixels are kept exactly; the backdrop fills the rest, its seam softened over
    `feather` px inside the background (editors/compose.py owns the compositing rule)."""
    return replace_background(frames, masks, np.zeros_like(masks), backdrop, feather)[0]
