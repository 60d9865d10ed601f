"""What every segmentation-backed edit stage shares: the spec fields (segmenter, apply_to, variants,
review_dir) and the loop that segments, edits, checks and records.

apply_to:
    first  rollout mode: only the first `first_frames` frames are edited; the rest of the episode is
           handed on untouched (the video generator regenerates it from the edited first frame).
    all    structure-preserving mode: every frame is edited with its own masks, and the new
           background / object is generated once per episode so it looks the same in every frame.

Subclasses implement `edit(frames, segmentation, seed, episode) -> EditResult`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from augment.episode import Episode
from augment.stage import Stage, derive_seed
from editors.compose import mask_fraction
from editors.segmenter import Segmentation, Segmenter
from editors.specs import EditSpec


class EditSkipped(Exception):
    """An edit that cannot be made for this episode (no free place for an object): the variant is dropped."""


@dataclass
class EditResult:
    frames: np.ndarray  # uint8 (N, H, W, 3), the edited frames
    edit_mask: np.ndarray  # bool (N, H, W), the pixels the edit was allowed to change
    details: dict[str, Any] = field(default_factory=dict)  # prompt, model, boxes ... for provenance
    objects: list[str] = field(default_factory=list)  # names of added objects (task templates)


class EditStage(Stage):
    spec: EditSpec

    def setup(self) -> None:
        self.reviews_written = 0
        self.segmenter = Segmenter(self.spec.segmenter)
        self.load_models()

    def load_models(self) -> None:
        """Load the edit's own models (subclasses)."""

    def edit(self, frames: np.ndarray, seg: Segmentation, seed: int, episode: Episode) -> EditResult:
        raise NotImplementedError

    def new_task(self, episode: Episode, objects: list[str]) -> str:
        return episode.task

    def describe(self, results: dict[str, EditResult]) -> str:
        """What the edit did, in words for a prompt ({edit}): the added objects, or the prompt it painted."""
        objects = sorted({name for r in results.values() for name in r.objects})
        if objects:
            return f"{' and '.join(objects)} added to the scene"
        prompts = [r.details["prompt"] for r in results.values() if isinstance(r.details.get("prompt"), str)]
        return f"a new background: {prompts[0]}" if prompts else f"edited by {self.spec.label}"

    def frame_indices(self, length: int) -> list[int]:
        if self.spec.apply_to == "first":
            return list(range(min(self.spec.first_frames, length)))
        return list(range(length))

    def __call__(self, episodes: list[Episode]) -> list[Episode]:
        out = []
        for episode in episodes:
            cameras = self.spec.cameras or list(episode.frames)
            missing = [k for k in cameras if k not in episode.frames]
            if missing:
                raise ValueError(f"{self.spec.label}.cameras: {missing} not in episode {episode.uid} "
                                 f"(it has {list(episode.frames)})")
            indices = self.frame_indices(episode.length)
            segs = {k: self.segmenter(episode.frames[k], indices) for k in cameras}
            for variant in range(self.spec.variants):
                out.append(self._variant(episode, cameras, indices, segs, variant))
        return out

    def _variant(self, episode: Episode, cameras: list[str], indices: list[int],
                 segs: dict[str, Segmentation], variant: int) -> Episode:
        seed = derive_seed(self.spec.seed, self.spec.type, episode.uid, variant)  # salted: chained edits draw apart
        uid = episode.uid if self.spec.variants == 1 else f"{episode.uid}-{self.spec.label}{variant}"
        frames, per_camera, objects, results = dict(episode.frames), {}, [], {}
        for key in cameras:
            video, seg, camera_seed = episode.frames[key], segs[key], derive_seed(seed, key)
            try:
                result = self.edit(video[indices], seg, camera_seed, episode)
            except EditSkipped as e:
                dropped = episode.replace(uid=uid)
                self.record(dropped, variant=variant, seed=seed, camera=key, skipped=str(e))
                return self.drop(dropped, f"{key}: {e}")
            check_protected(video[indices], result.frames, seg.robot, self.spec.label)
            edited = video.copy()
            edited[indices] = result.frames
            frames[key] = edited
            objects = objects or result.objects
            results[key] = result
            per_camera[key] = {
                "seed": camera_seed, "foreground_area": mask_fraction(seg.foreground), "robot_area": mask_fraction(seg.robot),
                "edit_area": mask_fraction(result.edit_mask), **result.details,
            }
        new = episode.replace(frames=frames, uid=uid, task=self.new_task(episode, objects))
        self.record(new, variant=variant, seed=seed, frames_edited=len(indices), apply_to=self.spec.apply_to,
                    segmenter=self.spec.segmenter.model_name, cameras=per_camera, task_before=episode.task)
        self.record_edit(new, self.describe(results))
        if self.spec.review_dir and self.reviews_written < self.spec.review_max:
            self._review(episode, new, segs, results)
            self.reviews_written += 1
        return new

    def _review(self, before: Episode, after: Episode, segs: dict[str, Segmentation], results: dict) -> None:
        from editors.review import review_panel, write_review

        rows = []
        for key, result in results.items():
            seg = segs[key]
            rows.append(review_panel(before.frames[key][0], after.frames[key][0], seg.foreground[0], seg.robot[0],
                                     result.edit_mask[0], seg.boxes[0] if seg.boxes else [], title=key))
        path = write_review(Path(self.spec.review_dir) / f"{after.uid}.png", rows)
        after.provenance["stages"][-1]["review"] = str(path)


def check_protected(before: np.ndarray, after: np.ndarray, protected: np.ndarray, label: str) -> None:
    """The promise of every edit, checked on its output: not one protected pixel (the robot; for a
    background edit, everything it keeps) changed."""
    changed = (before != after).any(axis=-1)
    if (changed & protected).any():
        raise RuntimeError(f"stage {label} changed {int((changed & protected).sum())} protected pixels; "
                           "this is a bug in the edit's compositing")
