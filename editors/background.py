"""Structure-preserving background replacement (the GreenAug / RoboEngine recipe, weight-free).

Every frame of the real video keeps its workspace (robot, task objects, the table they stand on)
pixel for pixel and gets a new background behind it (walls, floor, backdrop): an image from a
folder, or a seeded procedural texture, the same for the whole episode. Without a model segmenter the
workspace comes from editors/workspace (its survey, then its masks frame by frame). The seam is unmixed against the background
plate (the old backdrop is known there), so the arm's anti-aliased edge lies over the new backdrop
with no halo of the old one. State, actions and task are untouched, so the recorded actions stay true.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from augment.episode import Episode
from augment.stage import Stage, derive_seed
from editors.compose import replace_background
from editors.edit_base import check_protected
from editors.segment import background_plate
from editors.review import frames_row, review_times, write_review as write_review_image
from editors.workspace import Scene, survey, workspace_masks
from editors.specs import BackgroundSpec, IMAGE_SUFFIXES


def named(sources) -> str:
    """' (kitchen, brick_wall)' for images from a folder, '' for procedural textures: words a prompt can use."""
    names = sorted({Path(s).stem.replace("_", " ") for s in sources if not str(s).startswith("procedural")})
    return f" ({', '.join(names)})" if names else ""


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


@dataclass
class _Camera:
    """What the edit of one camera's frames needs from its survey: the masks of the pixels to keep
    (from the workspace Scene, frame by frame; or a model segmenter's, computed for the whole episode)
    and the plate the seam is unmixed against."""

    plate: np.ndarray
    scene: Scene | None = None
    keep: np.ndarray | None = None  # bool (T, H, W): a model segmenter's masks of every frame

    def masks(self, frames: np.ndarray, start: int) -> np.ndarray:
        return self.scene.masks(frames)[0] if self.scene is not None else self.keep[start:start + len(frames)]


@dataclass
class _Surveyed:
    """The episode being edited: its survey, and what the edit gathers over its chunks."""

    uid: str
    n: int
    cameras: dict[str, _Camera]
    done: int = 0  # frames edited so far
    kept: dict[str, int] = field(default_factory=dict)  # kept pixels so far, per camera
    reviews: dict[str, dict[str, list]] = field(default_factory=dict)  # output uid -> camera -> [(t, before, after, keep)]


class BackgroundStage(Stage):
    """Two passes, so that a streamed episode (augment/stream.py) is never whole in memory: survey()
    learns each edited camera's scene from every frame (editors/workspace.survey: the plate from up
    to 64 of them, how often each pixel moves), then each call edits the next chunk of the surveyed
    episode (the whole of it, when called on an episode nobody surveyed), every variant of it."""

    spec: BackgroundSpec

    def setup(self) -> None:
        self.segmenter = None
        if self.spec.segmenter is not None:
            from editors.segmenter import Segmenter

            self.segmenter = Segmenter(self.spec.segmenter)
        # the weight-free path keeps the work surface pixel for pixel and hands on where it found it
        # (Episode.surfaces); a model segmenter's foreground need not hold the table
        self.keeps_surfaces = self.segmenter is None
        self.images: list[Path] = []
        if self.spec.backgrounds != "procedural":
            folder = Path(self.spec.backgrounds)
            self.images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        self.current: _Surveyed | None = None

    def background(self, height: int, width: int, seed: int) -> tuple[np.ndarray, str]:
        if not self.images:
            return procedural_texture(height, width, seed), f"procedural:{seed}"
        path = self.images[seed % len(self.images)]
        image = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), str(path)

    def survey(self, episode: Episode, chunks: Callable[[], Iterator[Episode]]) -> None:
        """Per edited camera, what its masks are measured against: the workspace's Scene, from every
        frame a chunk at a time; with a model segmenter (whole episodes only: BackgroundSpec.whole_episode)
        its masks of every frame."""
        cameras, n, s = self.spec.cameras or list(episode.frames), episode.length, self.spec
        if self.segmenter is None:
            scenes = survey(lambda: (chunk.frames for chunk in chunks()), n, cameras, s.diff_threshold,
                            saturation=s.saturation_threshold)
            # the seam is unmixed against what is behind the arm
            found = {k: _Camera(scene.behind, scene=scene) for k, scene in scenes.items()}
        else:
            videos = {k: np.concatenate([chunk.frames[k] for chunk in chunks()]) for k in cameras}
            # the robot mask is part of the foreground, which paste_backdrop() keeps pixel for pixel
            found = {k: _Camera(background_plate(v), keep=self.segmenter(v, list(range(n))).foreground)
                     for k, v in videos.items()}
        self.current = _Surveyed(episode.uid, n, found)

    def __call__(self, episodes: list[Episode]) -> list[Episode]:
        out = []
        for episode in episodes:
            s = self.current
            if s is None or s.uid != episode.uid or s.done == s.n:  # a whole episode, not the next chunk of one
                self.survey(episode, lambda: iter([episode]))
            draws = [(derive_seed(self.spec.seed, episode.uid, v),
                      episode.uid if self.spec.variants == 1 else f"{episode.uid}-bg{v}", {"variant": v})
                     for v in range(self.spec.variants)]
            out.extend(self.edit(episode, draws))
        return out

    def edit(self, chunk: Episode, draws: list[tuple[int, str, dict]]) -> list[Episode]:
        """The next frames of the surveyed episode (all of them, or its next chunk), once per draw
        (seed, uid, what to record): every edited camera behind its kept pixels gets the backdrop
        `seed` draws. The masks are computed once, whatever the number of draws."""
        s = self.current
        start, stop = s.done, s.done + chunk.length
        if chunk.uid != s.uid or stop > s.n:
            raise RuntimeError(f"stage {self.spec.label}: frames {start}..{stop} of {chunk.uid}, but it surveyed "
                               f"{s.n} frames of {s.uid}")
        found = {k: (camera.masks(chunk.frames[k], start), camera.plate) for k, camera in s.cameras.items()}
        for key, (keep, _) in found.items():
            s.kept[key] = s.kept.get(key, 0) + int(keep.sum())
        s.done = stop
        # the kept share of the frames so far: the episode's at its last chunk, whose record the output keeps
        areas = {k: round(s.kept[k] / (stop * keep[0].size), 4) for k, (keep, _) in found.items()}
        # The table as the survey found it on the frames this edit keeps it in, pixel for pixel: a later
        # `surface` edit takes it from here, not from the new backdrop, which may look like a table (a
        # tinted band at the bottom edge seeded the work surface). One found before, on less edited
        # frames of the same table, stays.
        surfaces = dict(chunk.surfaces)
        for key, camera in s.cameras.items():
            if camera.scene is None:  # a model segmenter's: the table is not known to be kept
                surfaces.pop(key, None)
            elif key not in surfaces or surfaces[key].shape != camera.scene.surface.shape:
                surfaces[key] = camera.scene.surface
        out = []
        for seed, uid, record in draws:
            frames, chosen = dict(chunk.frames), {}
            for key, (keep, plate) in found.items():
                video = chunk.frames[key]
                backdrop, chosen[key] = self.background(video.shape[1], video.shape[2], derive_seed(seed, key))
                frames[key] = paste_backdrop(video, keep, backdrop, self.spec.feather, plate=plate)
                check_protected(video, frames[key], keep, self.spec.label)
            new = chunk.replace(frames=frames, uid=uid, surfaces=surfaces)
            self.record(new, **record, seed=seed, background=chosen, foreground_fraction=areas)
            self.record_edit(new, "a new background" + named(chosen.values()))
            self.review(chunk, new, {k: keep for k, (keep, _) in found.items()}, start)
            out.append(new)
        return out

    def review(self, before: Episode, after: Episode, masks: dict[str, np.ndarray], start: int) -> None:
        """Source | edited at the episode's first, middle and last frames (write_review's), gathered
        chunk by chunk and written with its last one."""
        spec, s = self.spec, self.current
        if not spec.review_dir:
            return
        if start == 0:
            if not take_review(self):
                return
            s.reviews[after.uid] = {k: [] for k in masks}
        if after.uid not in s.reviews:
            return
        times = review_times(s.n)
        for key, keep in masks.items():
            for t in times[(times >= start) & (times < start + len(keep))]:
                s.reviews[after.uid][key].append(
                    (int(t), before.frames[key][t - start].copy(), after.frames[key][t - start].copy(), keep[t - start].copy()))
        if s.done == s.n:
            rows = [frames_row(*(np.stack(column) for column in list(zip(*picked))[1:]), title=key.rsplit(".", 1)[-1],
                               times=[t for t, *_ in picked])
                    for key, picked in s.reviews.pop(after.uid).items()]
            after.provenance["stages"][-1]["review"] = str(write_review_image(Path(spec.review_dir) / f"{after.uid}.png", rows))


def procedural_variants(frames: np.ndarray, seeds: list[int]) -> list[np.ndarray]:
    """One copy of a fixed camera's video per seed, each with a new procedural backdrop: the
    `background` edit's recipe (the workspace's keep-mask, computed once; the seam unmixed against
    what is behind the arm), so robot, every object (a goal marker or a block at rest too) and the
    table stay pixel for pixel. The cheap edited variants the IDM and the video-model fine-tune train
    on, so they learn the robot and its motion, not one room. (The motion masks used before dropped
    pusht's goal T and a block at rest from every copy, and replaced its table.)
    A camera that sees no backdrop (pusht's top-down canvas) gets its work surface re-textured instead,
    else its copies would be the source."""
    found = workspace_masks(frames)
    if found.keep.all() and found.surface.any():
        from editors.surface import surface_variants  # editors.surface imports this module

        return surface_variants(frames, found, seeds)
    height, width = frames.shape[1:3]
    return paste_backdrops(frames, found.keep, [procedural_texture(height, width, seed) for seed in seeds],
                           feather=1, plate=found.behind)  # BackgroundSpec's feather


def write_review(stage: Stage, before: Episode, after: Episode, masks: dict[str, np.ndarray]) -> None:
    """Source | edited at the first, middle and last frames of each edited camera, one PNG per episode."""
    if not stage.spec.review_dir or not take_review(stage):
        return
    rows = [frames_row(before.frames[k], after.frames[k], m, title=k.rsplit(".", 1)[-1]) for k, m in masks.items()]
    after.provenance["stages"][-1]["review"] = str(write_review_image(Path(stage.spec.review_dir) / f"{after.uid}.png", rows))


def take_review(stage: Stage) -> bool:
    """Whether the stage may write one more review image (spec.review_max of them per worker); counts it."""
    if getattr(stage, "reviews_written", 0) >= stage.spec.review_max:
        return False
    stage.reviews_written = getattr(stage, "reviews_written", 0) + 1
    return True


def paste_backdrop(frames: np.ndarray, masks: np.ndarray, backdrop: np.ndarray, feather: int,
                   plate: np.ndarray | None = None) -> np.ndarray:
    """Masked pixels are kept exactly; the backdrop fills the rest.

    With the background `plate`, the `feather` px just outside the mask are unmixed: such a pixel is
    part foreground (the nearest kept pixel's colour F) and part old background (the plate's B), so
    its share a of F is read off the pixel and the new pixel is a*F + (1-a)*backdrop - the arm's
    anti-aliased edge over the new backdrop, without a rim of the old one. Without a plate the seam
    is softened over `feather` px inside the background (editors/compose.py)."""
    return paste_backdrops(frames, masks, [backdrop], feather, plate)[0]


def paste_backdrops(frames: np.ndarray, masks: np.ndarray, backdrops: list[np.ndarray], feather: int,
                    plate: np.ndarray | None = None) -> list[np.ndarray]:
    """paste_backdrop once per backdrop; the seam's unmixing, which does not depend on the backdrop, is
    worked out once per frame (it was a fifth of procedural_variants' time, per copy)."""
    if plate is None:
        return [replace_background(frames, masks, np.zeros_like(masks), b, feather)[0] for b in backdrops]
    outs = [np.empty_like(frames) for _ in backdrops]
    for t, (frame, keep) in enumerate(zip(frames, masks)):
        seam = unmixing(frame, keep, plate, feather)
        for out, backdrop in zip(outs, backdrops):
            out[t] = np.where(keep[..., None], frame, backdrop)
            if seam is not None:
                ring, a, f = seam
                out[t][ring] = (a * f + (1 - a) * backdrop[ring].astype(np.float32)).round().clip(0, 255).astype(np.uint8)
    return outs


def unmixing(frame: np.ndarray, keep: np.ndarray, plate: np.ndarray, width: int):
    """The seam: the pixels within `width` px outside `keep` (bool (H, W)), each one's share a of the
    nearest kept pixel's colour f against the plate, and f: (ring, a (n, 1), f (n, 3)); None: no seam."""
    if width <= 0 or not keep.any() or keep.all():
        return None
    dist, nearest = cv2.distanceTransformWithLabels((~keep).astype(np.uint8), cv2.DIST_L2, 3,
                                                    labelType=cv2.DIST_LABEL_PIXEL)
    ring = ~keep & (dist <= width + 0.5)
    ys, xs = np.nonzero(keep)  # labels number the kept pixels in raster order, from 1
    idx = nearest[ring] - 1
    c, b = frame[ring].astype(np.float32), plate[ring].astype(np.float32)
    f = frame[ys[idx], xs[idx]].astype(np.float32)
    span = ((f - b) ** 2).sum(-1)
    a = np.where(span > 100, ((c - b) * (f - b)).sum(-1) / np.maximum(span, 1), 0).clip(0, 1)[:, None]
    return ring, a, f
