"""Cosmos-Predict2 Video2World (diffusers Cosmos2VideoToWorldPipeline): conditions on one frame or on
the first few frames of a video, which is what makes its chained clips smooth (conditioning_frames > 1
hands the last frames of one clip to the next).

Published defaults: 93 frames (4k + 1) at 16 fps (10 fps checkpoints exist: set model_fps), 704x1280.
The NVIDIA Open Model License asks for the Cosmos guardrail: `safety_checker: guardrail` (the default)
needs the `cosmos_guardrail` package; another checker can be named as "module:Class" (a class with
check_text_safety(prompt) -> bool and check_video_safety(frames) -> frames, as the guardrail has).
LoRAs load through diffusers' Cosmos LoRA loader (CosmosLoraLoaderMixin, written for Cosmos 2.5's pipeline:
the same transformer class and file format), mixed into the Predict2 pipeline.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from PIL import Image

from generators.base import VideoGeneratorStage
from generators.specs import CosmosSpec


@functools.cache
def cosmos_lora_pipeline() -> type:
    """Cosmos2VideoToWorldPipeline with load_lora_weights / set_adapters; built on first use (no torch at import)."""
    from diffusers import Cosmos2VideoToWorldPipeline
    from diffusers.loaders import CosmosLoraLoaderMixin

    class Cosmos2VideoToWorldLoraPipeline(Cosmos2VideoToWorldPipeline, CosmosLoraLoaderMixin):
        pass

    return Cosmos2VideoToWorldLoraPipeline


class CosmosStage(VideoGeneratorStage):
    spec: CosmosSpec
    pipeline_class = "diffusers:Cosmos2VideoToWorldPipeline"
    default_fps = 16.0
    default_frames = 93
    default_area = 704 * 1280
    several_conditioning_frames = True

    def load(self, torch_dtype: Any) -> Any:
        from augment.registry import import_object

        kwargs: dict[str, Any] = {"dtype": torch_dtype}
        if self.spec.safety_checker != "guardrail":
            kwargs["safety_checker"] = import_object(self.spec.safety_checker)()
        return cosmos_lora_pipeline().from_pretrained(self.spec.model, **kwargs)

    def constraints(self) -> tuple[int, int]:
        pipe = self.pipe
        return pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size[1], pipe.vae_scale_factor_temporal

    def generate(self, conditioning, prompt, seeds, num_frames, height, width) -> np.ndarray:
        frames = [Image.fromarray(f) for f in conditioning]
        visual = {"image": frames[0]} if len(frames) == 1 else {"video": frames}
        clips = []
        # The pipeline encodes its conditioning with one generator, so samples run one call each.
        for generator in self.generators(seeds):
            out = self.pipe(
                **visual,
                prompt=prompt,
                height=height,
                width=width,
                num_frames=num_frames,
                fps=int(round(self.spec.model_fps or self.default_fps)),
                generator=generator,
                max_sequence_length=self.spec.max_sequence_length,
                output_type="np",
                **self.common_kwargs(),
            )
            clips.append(np.asarray(out.frames)[0])
        return np.stack(clips)
