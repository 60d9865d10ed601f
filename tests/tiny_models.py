"""Tiny random-weight pipelines of every backend, for tests and the CPU benchmark.

Nothing can be downloaded here, so each pipeline is assembled from the same diffusers / transformers
classes as the published checkpoints, built from tiny configs (the diffusers test-suite habit), with a
word-level tokenizer built in memory, then written with save_pretrained so that the stage loads it
through the real from_pretrained path. The outputs are noise-like; shapes, dtypes and wiring are real.
"""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = ("a the robot arm gripper pick place push open close drawer door cube block red green blue "
         "yellow table on in to of and with background kitchen wooden white black camera move up down "
         "left right grasp put lift bowl cup plate").split()


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "</s>", "<unk>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def tiny_t5():
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    config = T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                      relative_attention_num_buckets=8)
    return T5EncoderModel(config)


def tiny_wan_transformer(image_dim: int | None = None, in_channels: int = 36):
    from diffusers import WanTransformer3DModel

    # Wan 2.1 I2V attends to the CLIP image tokens through added K/V projections (image_dim set);
    # Wan 2.2 has neither.
    image = {"image_dim": image_dim, "added_kv_proj_dim": 2 * 12} if image_dim else {}
    return WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12,
                                 in_channels=in_channels, out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32,
                                 num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                                 rope_max_seq_len=32, **image)


def tiny_wan(layout: str = "2.2"):
    """layout "2.2": one expert, no image encoder; "2.1": plus a CLIP vision encoder whose penultimate
    hidden states the transformer cross-attends to; "2.2-a14b": a high-noise expert (transformer) and a
    low-noise one (transformer_2), switched at boundary_ratio * 1000 of the schedule; "2.2-ti2v": as
    TI2V-5B, the first frame's latents replace the first noisy latent frame (expand_timesteps, per-token
    timesteps, 16 input channels instead of 16 noisy + 4 mask + 16 condition)."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanImageToVideoPipeline

    if layout not in WAN_LAYOUTS:
        raise ValueError(f"tiny_wan: layout {layout!r} is not one of {WAN_LAYOUTS}")
    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    parts = {}
    if layout == "2.1":
        from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

        torch.manual_seed(0)
        # 32x32 images in 8x8 patches: 17 image tokens of width 16 (the real encoder: ViT-H/14 at 224, 1280)
        parts["image_encoder"] = CLIPVisionModel(CLIPVisionConfig(
            hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
            image_size=32, patch_size=8))
        parts["image_processor"] = CLIPImageProcessor(crop_size=32, size=32)
    torch.manual_seed(0)
    transformer = tiny_wan_transformer(image_dim=16 if layout == "2.1" else None,
                                       in_channels=16 if layout == "2.2-ti2v" else 36)
    if layout == "2.2-ti2v":
        parts["expand_timesteps"] = True
    if layout == "2.2-a14b":
        torch.manual_seed(1)  # another expert: other weights
        parts["transformer_2"] = tiny_wan_transformer()
        # published A14B: 0.875 (T2V), 0.9 (I2V); of 4 tiny steps (t = 999, 900, 750, 500): 2 each
        parts["boundary_ratio"] = 0.875
    return WanImageToVideoPipeline(tokenizer=tiny_tokenizer(), text_encoder=tiny_t5(), vae=vae,
                                   scheduler=scheduler, transformer=transformer, **parts)


WAN_LAYOUTS = ("2.2", "2.1", "2.2-a14b", "2.2-ti2v")


class PassThroughSafetyChecker(torch.nn.Module):
    """Stands in for the Cosmos guardrail in tests only: lets every prompt and video through."""

    def __init__(self):
        super().__init__()
        # the pipeline asks its components for .device and .dtype
        self.register_buffer("anchor", torch.zeros(1), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.anchor.device

    @property
    def dtype(self) -> torch.dtype:
        return self.anchor.dtype

    def check_text_safety(self, prompt: str) -> bool:
        return True

    def check_video_safety(self, frames):
        return frames


def tiny_cosmos():
    from diffusers import (AutoencoderKLWan, Cosmos2VideoToWorldPipeline, CosmosTransformer3DModel,
                           FlowMatchEulerDiscreteScheduler)

    torch.manual_seed(0)
    transformer = CosmosTransformer3DModel(in_channels=17, out_channels=16, num_attention_heads=2,
                                           attention_head_dim=16, num_layers=2, mlp_ratio=2, text_embed_dim=32,
                                           adaln_lora_dim=4, max_size=(4, 32, 32), patch_size=(1, 2, 2),
                                           rope_scale=(2.0, 1.0, 1.0), concat_padding_mask=True,
                                           extra_pos_embed_type="learnable")
    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    scheduler = FlowMatchEulerDiscreteScheduler(use_karras_sigmas=True)
    pipe = Cosmos2VideoToWorldPipeline(text_encoder=tiny_t5(), tokenizer=tiny_tokenizer(), transformer=transformer,
                                       vae=vae, scheduler=scheduler, safety_checker=PassThroughSafetyChecker())
    # Saved without a checker; CosmosStage passes its own (spec.safety_checker) to from_pretrained.
    pipe.register_modules(safety_checker=None)
    return pipe


def tiny_ltx():
    from diffusers import (AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXImageToVideoPipeline,
                           LTXVideoTransformer3DModel)

    torch.manual_seed(0)
    transformer = LTXVideoTransformer3DModel(in_channels=8, out_channels=8, patch_size=1, patch_size_t=1,
                                             num_attention_heads=4, attention_head_dim=8, cross_attention_dim=32,
                                             num_layers=1, caption_channels=32)
    torch.manual_seed(0)
    vae = AutoencoderKLLTXVideo(in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
                                decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
                                decoder_layers_per_block=(1, 1, 1, 1, 1),
                                spatio_temporal_scaling=(True, True, False, False),
                                decoder_spatio_temporal_scaling=(True, True, False, False),
                                decoder_inject_noise=(False, False, False, False, False),
                                upsample_residual=(False, False, False, False), upsample_factor=(1, 1, 1, 1),
                                timestep_conditioning=False, patch_size=1, patch_size_t=1,
                                encoder_causal=True, decoder_causal=False)
    return LTXImageToVideoPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=tiny_t5(),
                                   tokenizer=tiny_tokenizer(), transformer=transformer)


def tiny_cogvideox():
    from diffusers import AutoencoderKLCogVideoX, CogVideoXImageToVideoPipeline, CogVideoXTransformer3DModel, DDIMScheduler

    torch.manual_seed(0)
    # learned positional embeddings for a 2x2 latent: like 5b-I2V, it only runs at one size (16x16)
    transformer = CogVideoXTransformer3DModel(num_attention_heads=2, attention_head_dim=16, in_channels=8,
                                              out_channels=4, time_embed_dim=2, text_embed_dim=32, num_layers=1,
                                              sample_width=2, sample_height=2, sample_frames=9, patch_size=2,
                                              temporal_compression_ratio=4, max_text_seq_length=16,
                                              use_rotary_positional_embeddings=True,
                                              use_learned_positional_embeddings=True)
    torch.manual_seed(0)
    vae = AutoencoderKLCogVideoX(in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
                                 up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8),
                                 latent_channels=4, layers_per_block=1, norm_num_groups=2,
                                 temporal_compression_ratio=4)
    return CogVideoXImageToVideoPipeline(tokenizer=tiny_tokenizer(), text_encoder=tiny_t5(), vae=vae,
                                         transformer=transformer, scheduler=DDIMScheduler())


def tiny_svd():
    from diffusers import (AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, StableVideoDiffusionPipeline,
                           UNetSpatioTemporalConditionModel)
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    unet = UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=8, out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"), cross_attention_dim=32,
        num_attention_heads=8, projection_class_embeddings_input_dim=96, addition_time_embed_dim=32)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       interpolation_type="linear", num_train_timesteps=1000,
                                       prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002,
                                       steps_offset=1, timestep_spacing="leading", timestep_type="continuous",
                                       use_karras_sigmas=True)
    torch.manual_seed(0)
    vae = AutoencoderKLTemporalDecoder(block_out_channels=[32, 64], in_channels=3, out_channels=3,
                                       down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
                                       latent_channels=4)
    torch.manual_seed(0)
    # SVD resizes the conditioning image to 224 for CLIP itself, so the tiny encoder takes 224 (7x7 patches)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=32, projection_dim=32, num_hidden_layers=5,
                                                             num_attention_heads=4, image_size=224,
                                                             intermediate_size=37, patch_size=32))
    return StableVideoDiffusionPipeline(vae=vae, image_encoder=encoder, unet=unet, scheduler=scheduler,
                                        feature_extractor=CLIPImageProcessor(crop_size=224, size=224))


BUILDERS = {"wan-i2v": tiny_wan, "cosmos-predict2": tiny_cosmos, "ltx-i2v": tiny_ltx,
            "cogvideox-i2v": tiny_cogvideox, "svd": tiny_svd}


def save_tiny_pipeline(kind: str, folder: str | Path, **options) -> Path:
    """Build the tiny pipeline for a generator type (options: the builder's, e.g. Wan's layout) and
    save_pretrained it to folder."""
    folder = Path(folder)
    BUILDERS[kind](**options).save_pretrained(folder)
    return folder


# Spec settings that fit the tiny models (their model sizes and frame counts).
TINY_SETTINGS = {
    "wan-i2v": {"height": 16, "width": 16, "num_frames": 9, "num_inference_steps": 2, "max_sequence_length": 16},
    "cosmos-predict2": {"height": 32, "width": 32, "num_frames": 9, "num_inference_steps": 2,
                        "max_sequence_length": 16, "safety_checker": "tiny_models:PassThroughSafetyChecker"},
    "ltx-i2v": {"height": 32, "width": 32, "num_frames": 9, "num_inference_steps": 2, "max_sequence_length": 16},
    "cogvideox-i2v": {"num_frames": 9, "num_inference_steps": 2, "max_sequence_length": 16},
    "svd": {"height": 32, "width": 32, "num_frames": 4, "num_inference_steps": 2},
}
