"""Stable Video Diffusion (diffusers StableVideoDiffusionPipeline): image-only, no text prompt.

Published defaults: 14 frames (svd) or 25 (svd-xt) at 576x1024; the `fps` micro-conditioning is the
model fps (7 by default). SVD has no text: the prompt template is unused. Its guidance is a ramp from
min_guidance_scale to max_guidance_scale over the frames. diffusers has no LoRA loader for SVD: the stage
loads its UNet with peft's adapter methods (PeftAdapterMixin, which diffusers' transformers have) and loads a
LoRA's `unet.` weights into it (diffusers' UNet LoRA format, what `augment finetune` writes).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from PIL import Image

from generators.base import VideoGeneratorStage
from generators.specs import SVDSpec


@functools.cache
def svd_lora_classes() -> tuple[type, type]:
    """(pipeline, UNet) classes: the UNet with PeftAdapterMixin (load_lora_adapter, set_adapters, add_adapter),
    the pipeline routing LoRA calls to it. Built on first use: this module imports no torch at import time."""
    from diffusers import StableVideoDiffusionPipeline, UNetSpatioTemporalConditionModel
    from diffusers.loaders import PeftAdapterMixin

    class UNetSpatioTemporalWithLora(UNetSpatioTemporalConditionModel, PeftAdapterMixin):
        pass

    class StableVideoDiffusionLoraPipeline(StableVideoDiffusionPipeline):
        def load_lora_weights(self, path: str, adapter_name: str, **kwargs) -> None:
            # safetensors first, as the pipelines' loaders look (the UNet's own default looks for a .bin)
            self.unet.load_lora_adapter(path, prefix="unet", adapter_name=adapter_name, use_safetensors=True,
                                        **kwargs)

        def set_adapters(self, names: list[str], weights: list[float]) -> None:
            self.unet.set_adapters(names, weights)

    return StableVideoDiffusionLoraPipeline, UNetSpatioTemporalWithLora


class SVDStage(VideoGeneratorStage):
    spec: SVDSpec
    pipeline_class = "diffusers:StableVideoDiffusionPipeline"
    default_fps = 7.0
    default_frames = 14
    default_area = 576 * 1024
    uses_prompt = False

    def load(self, torch_dtype: Any) -> Any:
        pipeline, unet = svd_lora_classes()
        model = self.spec.model
        return pipeline.from_pretrained(model, unet=unet.from_pretrained(model, subfolder="unet", dtype=torch_dtype),
                                        dtype=torch_dtype)

    def load_lora(self, pipe: Any) -> None:
        """One denoiser, the UNet: every adapter goes into it (the base loop checks for transformers)."""
        for i, adapter in enumerate(self.spec.lora):
            if adapter.target != "transformer":
                raise ValueError(f"{self.spec.label}.lora[{i}].target: SVD has one denoiser, its UNet; "
                                 f"leave target out (got {adapter.target!r})")
        names = []
        for i, adapter in enumerate(self.spec.lora):
            names.append(adapter.name or f"lora{i}")
            kwargs = {"weight_name": adapter.weight_name} if adapter.weight_name else {}
            self.load_one_lora(pipe, i, adapter.path, names[-1], "unet", **kwargs)
        pipe.set_adapters(names, [a.scale for a in self.spec.lora])

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
