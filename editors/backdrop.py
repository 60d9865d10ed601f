"""New background from words by text-to-image: a diffusers pipeline paints a backdrop from a prompt,
once per episode and variant, and every edited frame shows it behind its foreground mask."""

from __future__ import annotations


import numpy as np

from augment.episode import Episode
from editors.compose import replace_background
from editors.edit_base import EditResult, EditStage
from editors.segmenter import Segmentation
from editors.specs import BackdropSpec


class BackdropStage(EditStage):
    spec: BackdropSpec

    def load_models(self) -> None:
        from editors.diffusion import load_pipeline

        self.pipe = load_pipeline(self.spec.diffusion, "text2image")

    def edit(self, frames: np.ndarray, seg: Segmentation, seed: int, episode: Episode) -> EditResult:
        from editors.diffusion import text_to_image

        rng = np.random.default_rng(seed)
        prompt = self.spec.prompts[int(rng.integers(len(self.spec.prompts)))]
        backdrop = text_to_image(self.pipe, self.spec.diffusion, frames.shape[1], frames.shape[2], prompt, seed)
        out, edit_mask = replace_background(frames, seg.foreground, seg.robot, backdrop, self.spec.feather)
        return EditResult(out, edit_mask, {"prompt": prompt, "model": self.spec.diffusion.model})
