"""Wan 2.1 / 2.2 image-to-video (diffusers WanImageToVideoPipeline): the edited frame is the first frame.

Published defaults: 81 frames at 16 fps, 480x832 (Wan 2.1 480P, Wan 2.2 A14B); the Wan 2.2 TI2V-5B
checkpoint runs at 24 fps and 704x1280, so set model_fps / height / width for it.

Layouts, all read from the checkpoint's model_index.json by from_pretrained:
    Wan 2.1 I2V    a CLIP vision encoder (image_encoder + image_processor) whose image tokens the
                   transformer cross-attends to (config.image_dim set)
    Wan 2.2 A14B   two experts: transformer for the high-noise steps (t >= boundary_ratio * 1000),
                   transformer_2 for the rest; `guidance_scale_2` is the low-noise expert's guidance
                   and a LoRA entry's `target` picks the expert(s) it goes into
"""

from __future__ import annotations


import numpy as np
from PIL import Image

from generators.base import VideoGeneratorStage
from generators.specs import WanSpec


class WanStage(VideoGeneratorStage):
    spec: WanSpec
    pipeline_class = "diffusers:WanImageToVideoPipeline"
    default_fps = 16.0
    default_frames = 81
    default_area = 480 * 832

    def setup(self) -> None:
        super().setup()
        transformer = self.pipe.transformer
        takes_image_tokens = transformer is not None and transformer.config.image_dim is not None
        if takes_image_tokens and self.spec.max_sequence_length != 512:
            # diffusers' Wan attention takes the image tokens to be whatever precedes the last 512 tokens
            # (a fixed text length): with a shorter text the CLIP tokens are read as text and the image
            # branch (add_k_proj / add_v_proj) gets nothing, silently.
            raise ValueError(f"{self.spec.label}.max_sequence_length: {self.spec.model!r} is a Wan 2.1 I2V model "
                             f"(CLIP image tokens), which needs 512; got {self.spec.max_sequence_length}")
        if self.spec.guidance_scale_2 is not None and self.pipe.config.boundary_ratio is None:
            raise ValueError(f"{self.spec.label}.guidance_scale_2: {self.spec.model!r} has one expert (no "
                             f"boundary_ratio in its model_index.json); use guidance_scale")

    def constraints(self) -> tuple[int, int]:
        pipe = self.pipe
        transformer = pipe.transformer or pipe.transformer_2  # Wan 2.2 may carry only the low-noise expert
        return pipe.vae_scale_factor_spatial * transformer.config.patch_size[1], pipe.vae_scale_factor_temporal

    def common_kwargs(self) -> dict:
        kw = super().common_kwargs()
        if self.spec.guidance_scale_2 is not None:
            kw["guidance_scale_2"] = self.spec.guidance_scale_2
        return kw

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
