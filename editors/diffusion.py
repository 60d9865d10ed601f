"""diffusers backends for the edits: an inpainting pipeline and a text-to-image pipeline, loaded by
model id or local path with the library's own `from_pretrained`; dtype, device and CPU offload come
from the spec (DiffusionSpec in editors/edit_base.py). The library owns the denoising loop; these
are thin adapters from uint8 frames and boolean masks to PIL images and back.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from augment.devices import resolve_device
from editors.specs import DiffusionSpec

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_pipeline(spec: DiffusionSpec, task: str):
    """task: 'inpaint' or 'text2image'. AutoPipeline reads model_index.json, so SD 1.x/2.x/XL all load."""
    from diffusers import AutoPipelineForInpainting, AutoPipelineForText2Image

    loader = {"inpaint": AutoPipelineForInpainting, "text2image": AutoPipelineForText2Image}[task]
    pipe = loader.from_pretrained(spec.model, dtype=DTYPES[spec.dtype])  # torch_dtype is deprecated in diffusers 0.42
    if spec.enable_model_cpu_offload:
        # Moves each sub-model to the GPU only while it runs: fits a large model in a small GPU.
        pipe.enable_model_cpu_offload(device=resolve_device(spec.device))
    else:
        pipe = pipe.to(resolve_device(spec.device))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def working_size(height: int, width: int, resolution: int, multiple: int = 8) -> tuple[int, int]:
    """(h, w) with the long side at `resolution`, both multiples of the VAE's downsampling."""
    scale = resolution / max(height, width)
    h = max(multiple, int(round(height * scale / multiple)) * multiple)
    w = max(multiple, int(round(width * scale / multiple)) * multiple)
    return h, w


def _to_frame(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """float [0, 1] (h, w, 3) from the pipeline -> uint8 frame of the original size."""
    rgb = Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8))
    return np.asarray(rgb.resize((width, height), Image.BICUBIC))


def _generator(seed: int) -> torch.Generator:
    # A CPU generator gives the same noise on any device, so a seed means the same image everywhere.
    return torch.Generator("cpu").manual_seed(seed)


def inpaint(pipe, spec: DiffusionSpec, frame: np.ndarray, mask: np.ndarray, prompt: str, seed: int) -> np.ndarray:
    """Fill `mask` (True = repaint) of `frame` from `prompt`. Returns a full uint8 frame; the caller
    composites only the masked pixels back, so what the VAE does to the rest does not matter."""
    height, width = frame.shape[:2]
    h, w = working_size(height, width, spec.resolution)
    image = Image.fromarray(frame).resize((w, h), Image.BICUBIC)
    mask_image = Image.fromarray(mask.astype(np.uint8) * 255).resize((w, h), Image.NEAREST)
    result = pipe(prompt=prompt, negative_prompt=spec.negative_prompt or None, image=image, mask_image=mask_image,
                  height=h, width=w, num_inference_steps=spec.steps, guidance_scale=spec.guidance_scale,
                  strength=spec.strength, generator=_generator(seed), output_type="np").images[0]
    return _to_frame(result, height, width)


def text_to_image(pipe, spec: DiffusionSpec, height: int, width: int, prompt: str, seed: int) -> np.ndarray:
    """A backdrop from `prompt`, generated at the frame's aspect and resized to (height, width)."""
    h, w = working_size(height, width, spec.resolution)
    result = pipe(prompt=prompt, negative_prompt=spec.negative_prompt or None, height=h, width=w,
                  num_inference_steps=spec.steps, guidance_scale=spec.guidance_scale,
                  generator=_generator(seed), output_type="np").images[0]
    return _to_frame(result, height, width)
