"""diffusers edits on tiny, randomly initialised Stable Diffusion pipelines saved with save_pretrained,
so the stages load them through the real from_pretrained path (the diffusers test-suite habit)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from editors.specs import AddObjectSpec
from editors.specs import BackdropSpec
from editors.compose import dilate
from editors.specs import InpaintBackgroundSpec
from test_editors_compose import make_episode

os.environ.setdefault("HF_HUB_OFFLINE", "1")
CAM = "observation.images.top"


def tiny_tokenizer():
    from transformers import CLIPTokenizer

    words = ["a", "marble", "kitchen", "counter", "photo", "of", "mug", "on", "table", "wooden", "floor", "red", "cup"]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in "abcdefghijklmnopqrstuvwxyz":
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    for word in words:
        vocab.setdefault(word + "</w>", len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16)


def tiny_pipeline(folder, inpaint: bool):
    import torch
    from diffusers import (AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, StableDiffusionPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32), layers_per_block=1, sample_size=16, in_channels=9 if inpaint else 4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16, norm_num_groups=8,
        attention_head_dim=4)
    vae = AutoencoderKL(block_out_channels=[16, 32], in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        norm_num_groups=8)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1, projection_dim=16))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False)
    cls = StableDiffusionInpaintPipeline if inpaint else StableDiffusionPipeline
    pipe = cls(vae=vae, unet=unet, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
               safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("sd")
    return {"inpaint": tiny_pipeline(root / "inpaint", True), "text2image": tiny_pipeline(root / "t2i", False)}


def diffusion(model: str) -> dict:
    return {"model": model, "device": "cpu", "dtype": "float32", "steps": 2, "resolution": 32, "guidance_scale": 2.0}


def run(spec):
    stage = spec.build()
    stage.setup()
    return stage, stage([make_episode()])


def test_inpaint_background_changes_only_background_and_is_seeded(models, tmp_path):
    spec = InpaintBackgroundSpec(diffusion=diffusion(models["inpaint"]), prompts=["a marble kitchen counter"],
                                 apply_to="all", review_dir=str(tmp_path))
    stage, [out] = run(spec)
    before, after = make_episode().frames[CAM], out.frames[CAM]
    seg = stage.segmenter(before, list(range(len(before))))
    assert after.shape == before.shape and after.dtype == np.uint8
    assert np.array_equal(after[seg.foreground], before[seg.foreground])  # robot and cube, bit for bit
    assert (after != before).any(-1)[~seg.foreground].mean() > 0.5
    # the new background is painted once: background pixels agree across frames where both show it
    # (away from the feathered seams, which blend with each frame's own pixels)
    both = ~dilate(seg.foreground[0] | seg.foreground[5], spec.feather + 1)
    assert np.array_equal(after[0][both], after[5][both])
    record = out.provenance["stages"][-1]
    assert record["cameras"][CAM]["prompt"] == "a marble kitchen counter"
    assert record["cameras"][CAM]["model"] == models["inpaint"]
    assert 0 < record["cameras"][CAM]["edit_area"] < 1
    assert np.array_equal(stage([make_episode()])[0].frames[CAM], after)  # same seed, same pixels
    stage.spec = spec.model_copy(update={"seed": 7})
    assert not np.array_equal(stage([make_episode()])[0].frames[CAM], after)

def test_backdrop_composites_behind_the_foreground_on_first_frames(models):
    spec = BackdropSpec(diffusion=diffusion(models["text2image"]), prompts=["a wooden floor"], first_frames=1)
    stage, [out] = run(spec)
    before, after = make_episode().frames[CAM], out.frames[CAM]
    assert np.array_equal(after[1:], before[1:])
    seg = stage.segmenter(before, [0])
    assert np.array_equal(after[0][seg.robot[0]], before[0][seg.robot[0]])
    assert (after[0] != before[0]).any(-1)[~seg.foreground[0]].mean() > 0.5


def test_add_object_inpaint_paints_inside_free_boxes_only(models):
    spec = AddObjectSpec(mode="inpaint", objects=["red cup"], diffusion=diffusion(models["inpaint"]), count=2,
                         apply_to="all", task_template="put the {object} on the table")
    stage, [out] = run(spec)
    before, after = make_episode().frames[CAM], out.frames[CAM]
    seg = stage.segmenter(before, list(range(len(before))))
    record = out.provenance["stages"][-1]["cameras"][CAM]
    allowed = np.zeros(before.shape[1:3], bool)
    for x0, y0, x1, y1 in record["boxes"]:
        assert not seg.foreground.any(0)[y0:y1, x0:x1].any()
        allowed[y0:y1, x0:x1] = True
    changed = (after != before).any(-1)
    assert changed.any() and not (changed & ~allowed[None]).any() and not (changed & seg.foreground).any()
    assert record["prompts"] == ["a photo of a red cup on a table"] * 2
    assert out.task == "put the red cup on the table"


def test_offload_and_dtype_reach_the_pipeline(models):
    import torch

    from editors.diffusion import load_pipeline
    from editors.specs import DiffusionSpec

    pipe = load_pipeline(DiffusionSpec(**{**diffusion(models["inpaint"]), "dtype": "bfloat16"}), "inpaint")
    assert pipe.unet.dtype == torch.bfloat16 and type(pipe).__name__ == "StableDiffusionInpaintPipeline"
