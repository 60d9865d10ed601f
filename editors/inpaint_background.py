"""New background from words by inpainting: a diffusers inpainting pipeline repaints everything that
is not foreground ("a marble kitchen counter"), keeping the robot and the objects as context.

The repainted region is the union of the background over the edited frames (pixels that are
foreground in every frame are never needed), painted once on the first frame, so the new background
is the same in every frame; each frame then takes it only where that frame shows background.
"""

from __future__ import annotations


import numpy as np

from augment.episode import Episode
from editors.compose import replace_background
from editors.edit_base import EditResult, EditStage
from editors.segmenter import Segmentation
from editors.specs import InpaintBackgroundSpec


class InpaintBackgroundStage(EditStage):
    spec: InpaintBackgroundSpec

    def load_models(self) -> None:
        from editors.diffusion import load_pipeline

        self.pipe = load_pipeline(self.spec.diffusion, "inpaint")

    def edit(self, frames: np.ndarray, seg: Segmentation, seed: int, episode: Episode) -> EditResult:
        from editors.diffusion import inpaint

        rng = np.random.default_rng(seed)
        prompt = self.spec.prompts[int(rng.integers(len(self.spec.prompts)))]
        region = ~seg.foreground.all(axis=0)
        backdrop = inpaint(self.pipe, self.spec.diffusion, frames[0], region, prompt, seed)
        out, edit_mask = replace_background(frames, seg.foreground, seg.robot, backdrop, self.spec.feather)
        return EditResult(out, edit_mask, {"prompt": prompt, "model": self.spec.diffusion.model,
                                           "inpaint_area": round(float(region.mean()), 4)})
