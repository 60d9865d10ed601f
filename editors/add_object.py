"""New objects on the support surface: distractors, or the target of a rewritten task.

Placement: a box given in the spec, or a random free place: inside `surface_box` (where the table
is), clear of every foreground pixel of every edited frame (plus `margin`), and of the objects placed
before. Then either
    inpaint  a diffusers inpainting pipeline paints the object from a prompt inside the ellipse of
             its box (on the first frame; the same pixels are reused in every frame), or
    paste    an RGBA asset is scaled into the box with a soft shadow.
Objects sit on the table, so the robot passes in front of them: each frame draws them only where
that frame has no foreground. The task can be rewritten through `task_template`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from augment.episode import Episode
from editors.compose import (asset_sprite, composite, dilate, draw_sprite, ellipse_mask, fraction_box_to_pixels,
                             load_rgba, place_boxes)
from editors.edit_base import EditResult, EditSkipped, EditStage
from editors.segmenter import Segmentation
from editors.specs import AddObjectSpec, asset_files


def object_name(path: Path) -> str:
    return path.stem.replace("_", " ").replace("-", " ")


class AddObjectStage(EditStage):
    spec: AddObjectSpec

    def load_models(self) -> None:
        self.assets = {}
        if self.spec.mode == "paste":
            self.assets = {object_name(p): load_rgba(str(p)) for p in asset_files(self.spec.assets)}
        else:
            from editors.diffusion import load_pipeline

            self.pipe = load_pipeline(self.spec.diffusion, "inpaint")

    def new_task(self, episode: Episode, objects: list[str]) -> str:
        if not self.spec.task_template or not objects:
            return episode.task
        return self.spec.task_template.format(object=objects[0], objects=" and ".join(objects), task=episode.task)

    def placements(self, frames: np.ndarray, seg: Segmentation, rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
        height, width = seg.foreground.shape[1:]
        if self.spec.boxes:
            return [fraction_box_to_pixels(b, height, width) for b in self.spec.boxes]
        x0, y0, x1, y1 = fraction_box_to_pixels(self.spec.surface_box, height, width)
        free = np.zeros((height, width), bool)
        free[y0:y1, x0:x1] = True
        if self.spec.surface_prompt:
            free &= self.segmenter.phrase_mask(frames[0], [self.spec.surface_prompt])
        free &= ~dilate(seg.foreground.any(axis=0), self.spec.margin)
        side = min(height, width)
        sizes = []
        for _ in range(self.spec.count):
            s = max(4, int(round(rng.uniform(*self.spec.size) * side)))
            sizes.append((s, s))
        boxes = place_boxes(free, sizes, rng, gap=self.spec.margin)
        if len(boxes) < self.spec.count:
            raise EditSkipped(f"no free place on the support surface for {self.spec.count} object(s) "
                              f"(placed {len(boxes)}; free area {free.mean():.3f})")
        return boxes

    def edit(self, frames: np.ndarray, seg: Segmentation, seed: int, episode: Episode) -> EditResult:
        rng = np.random.default_rng(seed)
        boxes = self.placements(frames, seg, rng)
        if self.spec.mode == "paste":
            out, names, mask = self._paste(frames, seg, boxes, rng)
            model = self.spec.assets
        else:
            out, names, mask = self._inpaint(frames, seg, boxes, rng, seed)
            model = self.spec.diffusion.model
        edit_mask = mask[None] & ~seg.foreground
        details = {"objects": names, "boxes": [list(b) for b in boxes], "model": model, "mode": self.spec.mode,
                   "object_area": round(float(mask.mean()), 4)}
        if self.spec.mode == "inpaint":
            details["prompts"] = [self.spec.prompt_template.format(object=n) for n in names]
        return EditResult(out, edit_mask, details, objects=names)

    def _paste(self, frames, seg, boxes, rng):
        names = list(self.assets)
        out = frames.copy()
        union = np.zeros(frames.shape[1:3], bool)
        chosen = []
        for box in boxes:
            name = names[int(rng.integers(len(names)))]
            chosen.append(name)
            sprite = asset_sprite(self.assets[name], box, *frames.shape[1:3],
                                  shadow_strength=self.spec.shadow_strength if self.spec.shadow else 0.0)
            union |= sprite.mask
            for t in range(len(out)):
                out[t] = draw_sprite(out[t], sprite, protect=seg.foreground[t])
        return out, chosen, union

    def _inpaint(self, frames, seg, boxes, rng, seed):
        from editors.diffusion import inpaint

        height, width = frames.shape[1:3]
        painted = frames[0].copy()
        union = np.zeros((height, width), bool)
        chosen = []
        for i, box in enumerate(boxes):
            name = self.spec.objects[int(rng.integers(len(self.spec.objects)))]
            chosen.append(name)
            region = ellipse_mask(box, height, width) & ~seg.foreground[0]
            result = inpaint(self.pipe, self.spec.diffusion, painted, region, self.spec.prompt_template.format(object=name),
                             seed + i)
            painted = composite(painted, result, region)
            union |= region
        # the object's pixels, painted once, go into every frame wherever that frame has no foreground
        out = np.stack([composite(f, painted, union, seg.foreground[t], self.spec.feather) for t, f in enumerate(frames)])
        return out, chosen, union
