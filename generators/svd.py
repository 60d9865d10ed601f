"""Stable Video Diffusion (diffusers StableVideoDiffusionPipeline): image-only, no text prompt.

Published defaults: 14 frames (svd) or 25 (svd-xt) at 576x1024; the `fps` micro-conditioning is the
model fps (7 by default). SVD has no LoRA loader in diffusers and no text: the prompt template is unused.
Its guidance is a ramp from min_guidance_scale to max_guidance_scale over the frames.
"""

from __future__ import annotations


import numpy as np
from PIL import Image

from generators.base import VideoGeneratorStage
from generators.specs import SVDSpec


class SVDStage(VideoGeneratorStage):
    spec: SVDSpec
    pipeline_class = "diffusers:StableVideoDiffusionPipeline"
    default_fps = 7.0
    default_frames = 14
    default_area = 576 * 1024
    uses_prompt = False

    def constraints(self) -> tuple[int, int]:
        pipe = self.pipe
        # each UNet down block halves the latent
        return pipe.vae_scale_factor * 2 ** (len(pipe.unet.config.block_out_channels) - 1), 1

    def generate(self, conditioning, prompt, seeds, num_frames, height, width) -> np.ndarray:
        spec = self.spec
        out = self.pipe(
            image=Image.fromarray(conditioning[-1]),
            num_videos_per_prompt=len(seeds),
            height=height,
            width=width,
            num_frames=num_frames,
            num_inference_steps=spec.num_inference_steps or 25,
            min_guidance_scale=spec.min_guidance_scale,
            max_guidance_scale=spec.max_guidance_scale,
            fps=int(round(spec.model_fps or self.default_fps)),
            motion_bucket_id=spec.motion_bucket_id,
            noise_aug_strength=spec.noise_aug_strength,
            decode_chunk_size=spec.decode_chunk_size,
            generator=self.generators(seeds),
            output_type="np",
        )
        return np.asarray(out.frames)
