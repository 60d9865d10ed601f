"""Wan 2.1 / 2.2 image-to-video (diffusers WanImageToVideoPipeline): the edited frame is the first frame.

Published defaults: 81 frames at 16 fps, 480x832 (Wan 2.1 480P, Wan 2.2 A14B); the Wan 2.2 TI2V-5B
checkpoint runs at 24 fps and 704x1280, so set model_fps / height / width for it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image

from generators.base import GeneratorSpec, VideoGeneratorStage


class WanSpec(GeneratorSpec):
    type: Literal["wan-i2v"] = "wan-i2v"
    max_sequence_length: int = 512

    stage_class = "generators.wan:WanStage"


class WanStage(VideoGeneratorStage):
    spec: WanSpec
    pipeline_class = "diffusers:WanImageToVideoPipeline"
    default_fps = 16.0
    default_frames = 81
    default_area = 480 * 832

    def constraints(self) -> tuple[int, int]:
        pipe = self.pipe
        transformer = pipe.transformer or pipe.transformer_2  # Wan 2.2 may carry only the low-noise expert
        return pipe.vae_scale_factor_spatial * transformer.config.patch_size[1], pipe.vae_scale_factor_temporal

    def generate(self, conditioning, prompt, seeds, num_frames, height, width) -> np.ndarray:
        # One prompt per seed (not num_videos_per_prompt): Wan 2.1 repeats its CLIP image embedding by
        # the prompt batch only, so this is the batching that works for both versions.
        out = self.pipe(
            image=Image.fromarray(conditioning[-1]),
            prompt=[prompt] * len(seeds),
            height=height,
            width=width,
            num_frames=num_frames,
            generator=self.generators(seeds),
            max_sequence_length=self.spec.max_sequence_length,
            output_type="np",
            **self.common_kwargs(),
        )
        return np.asarray(out.frames)
