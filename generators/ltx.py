"""LTX-Video image-to-video (diffusers LTXImageToVideoPipeline): the edited frame conditions the first
latent frame, which the pipeline keeps fixed while denoising the rest.

Published defaults: 161 frames (8k + 1) at 25 fps (the pipeline's frame_rate), 512x704, sides on 32.
"""

from __future__ import annotations



import numpy as np
from PIL import Image

from generators.base import VideoGeneratorStage
from generators.specs import LTXSpec


class LTXStage(VideoGeneratorStage):
    spec: LTXSpec
    pipeline_class = "diffusers:LTXImageToVideoPipeline"
    default_fps = 25.0
    default_frames = 161
    default_area = 512 * 704

    def constraints(self) -> tuple[int, int]:
        pipe = self.pipe
        return pipe.vae_spatial_compression_ratio * pipe.transformer_spatial_patch_size, pipe.vae_temporal_compression_ratio

    def generate(self, conditioning, prompt, seeds, num_frames, height, width) -> np.ndarray:
        out = self.pipe(
            # one image and one prompt per seed: the pipeline encodes image[i] with generator[i]
            image=[Image.fromarray(conditioning[-1])] * len(seeds),
            prompt=[prompt] * len(seeds),
            height=height,
            width=width,
            num_frames=num_frames,
            frame_rate=int(round(self.spec.model_fps or self.default_fps)),
            generator=self.generators(seeds),
            max_sequence_length=self.spec.max_sequence_length,
            decode_timestep=self.spec.decode_timestep,
            output_type="np",
            **self.common_kwargs(),
        )
        return np.asarray(out.frames)
