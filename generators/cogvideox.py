"""CogVideoX image-to-video (diffusers CogVideoXImageToVideoPipeline).

Published defaults: 49 frames (4k + 1) at 8 fps, 480x720. The 5b-I2V checkpoint has learned positional
embeddings and only works at the size it was trained at, so that size is used whatever the camera's
aspect (the output is still resized back to the camera). CogVideoX 1.5 uses RoPE and any size on 16.
"""

from __future__ import annotations


import numpy as np
from PIL import Image

from generators.base import VideoGeneratorStage
from generators.specs import CogVideoXSpec


class CogVideoXStage(VideoGeneratorStage):
    spec: CogVideoXSpec
    pipeline_class = "diffusers:CogVideoXImageToVideoPipeline"
    default_fps = 8.0
    default_frames = 49
    default_area = 480 * 720

    def constraints(self) -> tuple[int, int]:
        pipe = self.pipe
        config = pipe.transformer.config
        step = pipe.vae_scale_factor_temporal * (config.patch_size_t or 1)
        return pipe.vae_scale_factor_spatial * config.patch_size, step

    def fixed_resolution(self) -> tuple[int, int] | None:
        config = self.pipe.transformer.config
        if not config.use_learned_positional_embeddings:
            return None
        scale = self.pipe.vae_scale_factor_spatial
        return config.sample_height * scale, config.sample_width * scale

    def generate(self, conditioning, prompt, seeds, num_frames, height, width) -> np.ndarray:
        out = self.pipe(
            # one image and one prompt per seed: the pipeline encodes image[i] with generator[i]
            image=[Image.fromarray(conditioning[-1])] * len(seeds),
            prompt=[prompt] * len(seeds),
            height=height,
            width=width,
            num_frames=num_frames,
            generator=self.generators(seeds),
            max_sequence_length=self.spec.max_sequence_length,
            use_dynamic_cfg=self.spec.use_dynamic_cfg,
            output_type="np",
            **self.common_kwargs(),
        )
        return np.asarray(out.frames)
