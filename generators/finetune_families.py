"""The model families `augment finetune` trains: how a clip is encoded once (VAE latents, the pipeline's
own first-frame conditioning, text / image embeddings) and the family's training loss at a noise level.
A family follows its generator stage (generators/<type>.py): the same defaults, multiples and text length."""

from __future__ import annotations

import math
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from generators.finetune_config import FinetuneConfig


# ---- model families ----------------------------------------------------------------------------------
class Family:
    """What differs between model families: the stage whose defaults a clip follows, how a clip is encoded
    (once, then cached), and the training loss at a noise level u in [0, 1] (the same u, 0 = clean,
    1 = pure noise, for training draws and for the report's fixed levels)."""

    generator_type = ""
    default_sampling = "uniform"
    lora_target = "transformer"  # the generator's lora `target` the adapter goes into
    denoiser = "transformer"  # the pipeline component that is trained (SVD: its UNet)

    def __init__(self, pipe: Any, config: FinetuneConfig):
        from augment.registry import spec_class

        spec = spec_class(self.generator_type)
        # `transformer`: the denoiser the LoRA goes into, whatever the architecture
        self.pipe, self.config, self.transformer = pipe, config, getattr(pipe, self.denoiser)
        self.geometry: dict = {}  # the clips' camera, size, frames and fps, once they are cut
        self.stage = spec.stage_class()
        text = spec.model_fields.get("max_sequence_length")  # SVD has no text
        self.text_length = (config.max_sequence_length or text.default) if text else None

    @classmethod
    def load_kwargs(cls, model: str, dtype: Any) -> dict:
        """Components from_pretrained needs beyond the saved ones (Cosmos's checker, SVD's peft-able UNet)."""
        return {}

    def save_lora(self, out: Path, layers: dict, metadata: dict) -> None:
        """The adapter in diffusers' format, its LoraConfig as metadata (so a loader scales it by alpha / rank)."""
        type(self.pipe).save_lora_weights(out, transformer_lora_layers=layers,
                                          transformer_lora_adapter_metadata=metadata)

    def multiples(self) -> tuple[int, int]:
        """(spatial multiple, temporal step), as the generator stage reads them."""
        raise NotImplementedError

    def fixed_resolution(self) -> tuple[int, int] | None:
        return None

    def pixels(self, video: np.ndarray, device: str) -> torch.Tensor:
        return torch.from_numpy(video).permute(3, 0, 1, 2)[None].to(device, self.pipe.vae.dtype) / 127.5 - 1.0

    def wan_vae_latents(self, video: np.ndarray, device: str) -> torch.Tensor:
        """A clip's latents under the Wan VAE (Wan and Cosmos-Predict2 share it): the posterior's mode, as the
        pipelines encode their condition (cached once, deterministic), normalised per channel as they do."""
        from diffusers.pipelines.wan.pipeline_wan_i2v import retrieve_latents

        vae = self.pipe.vae
        mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1).to(device)
        std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1).to(device)
        return (retrieve_latents(vae.encode(self.pixels(video, device)), sample_mode="argmax").float() - mean) / std


class WanFamily(Family):
    """Wan 2.1 I2V / Wan 2.2 one-expert I2V: the transformer sees [noisy latents | mask + first-frame
    latents] (36 channels) and predicts the flow velocity noise - x0 at timestep sigma * 1000."""

    generator_type = "wan-i2v"
    default_sampling = "logit_normal"

    def __init__(self, pipe: Any, config: FinetuneConfig):
        super().__init__(pipe, config)
        self.expand = bool(pipe.config.expand_timesteps)  # TI2V-5B: the first latent frame is the image's
        # Wan 2.2 A14B: a high-noise expert (transformer, t >= boundary_ratio * 1000) and a low-noise one
        # (transformer_2); each gets its own LoRA, trained on its own noise range only
        self.range = (0.0, 1.0)
        if getattr(pipe, "transformer_2", None) is not None:
            if config.expert is None:
                raise ValueError("finetune.expert: Wan 2.2 A14B has two experts; train one LoRA per expert: "
                                 "expert=transformer (high noise) or expert=transformer_2 (low noise), and load "
                                 "each with the matching lora target")
            boundary = pipe.config.boundary_ratio
            self.range = (boundary, 1.0) if config.expert == "transformer" else (0.0, boundary)
            self.transformer = getattr(pipe, config.expert)
        elif config.expert == "transformer_2":
            raise ValueError("finetune.expert: this Wan model has one expert (no transformer_2)")
        if pipe.image_encoder is not None and self.text_length != 512:
            raise ValueError("finetune.max_sequence_length: a Wan 2.1 I2V model (CLIP image tokens) needs 512; "
                             f"got {self.text_length}")
        scheduler_shift = getattr(pipe.scheduler.config, "flow_shift", None) or 1.0
        self.shift = config.flow_shift or scheduler_shift
        self.lora_target = config.expert or "transformer"

    def multiples(self) -> tuple[int, int]:
        return self.pipe.vae_scale_factor_spatial * self.transformer.config.patch_size[1], \
            self.pipe.vae_scale_factor_temporal

    @torch.no_grad()
    def encode(self, video: np.ndarray, prompt: str, device: str) -> dict:
        """One clip (uint8 (F, H, W, 3)) -> what the training step needs, on the CPU in float32."""
        from PIL import Image

        pipe, vae = self.pipe, self.pipe.vae
        frames, height, width = video.shape[:3]
        latents = self.wan_vae_latents(video, device)
        first = Image.fromarray(video[0])
        image = pipe.video_processor.preprocess(first, height=height, width=width).to(device, torch.float32)
        # the pipeline's own conditioning (first-frame mask + latents of [frame 0, zeros...], or for TI2V
        # the first frame's latents alone): zero noise in
        _, condition, *_ = pipe.prepare_latents(image, 1, vae.config.z_dim, height, width, frames, torch.float32,
                                                device, latents=torch.zeros_like(latents))
        text, _ = pipe.encode_prompt(prompt, do_classifier_free_guidance=False,
                                     max_sequence_length=self.text_length, device=device)
        out = {"latents": latents[0], "condition": condition[0], "text": text[0]}
        if pipe.image_encoder is not None:
            out["image"] = pipe.encode_image(first, device)[0]
        return {k: v.detach().float().cpu() for k, v in out.items()}

    def loss(self, batch: dict, u: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Flow matching: x_sigma = (1 - sigma) x0 + sigma noise, sigma = u shifted as the scheduler's
        flow_shift; the target is the velocity noise - x0."""
        dtype = self.transformer.dtype
        x0 = batch["latents"]
        sigma = self.shift * u / (1 + (self.shift - 1) * u)
        sigma = self.range[0] + (self.range[1] - self.range[0]) * sigma  # the expert's share of the schedule
        s = sigma.view(-1, 1, 1, 1, 1)
        noisy = (1 - s) * x0 + s * noise
        if self.expand:
            # TI2V: the image's latents are the first frame, its tokens at timestep 0, out of the loss
            free = torch.ones_like(x0[:, :1])
            free[:, :, 0] = 0
            noisy = (1 - free) * batch["condition"] + free * noisy
            p = self.transformer.config.patch_size
            timestep = (free[:, 0, ::p[0], ::p[1], ::p[2]] * s[:, 0] * 1000).flatten(1)
            inputs = noisy
        else:
            free, timestep, inputs = torch.ones_like(x0[:, :1]), sigma * 1000, torch.cat([noisy, batch["condition"]], 1)
        pred = self.transformer(hidden_states=inputs.to(dtype), timestep=timestep,
                                encoder_hidden_states=batch["text"].to(dtype),
                                encoder_hidden_states_image=batch["image"].to(dtype) if "image" in batch else None,
                                return_dict=False)[0]
        error = (pred.float() - (noise - x0).float()).pow(2) * free
        return error.sum((1, 2, 3, 4)) / (free.sum((1, 2, 3, 4)) * x0.shape[1])


class CogVideoXFamily(Family):
    """CogVideoX I2V: DDPM-style noising (scheduler.add_noise at an integer timestep); the transformer sees
    [noisy latents | first-frame latents, zeros after] along channels and predicts the scheduler's
    prediction type (the published checkpoints: v_prediction). An MSE on v equals the x0 loss weighted by
    1 / (1 - alpha_bar) of diffusers' train_cogvideox_image_to_video_lora.py."""

    generator_type = "cogvideox-i2v"

    def __init__(self, pipe: Any, config: FinetuneConfig):
        super().__init__(pipe, config)
        if self.transformer.config.patch_size_t is not None:
            raise ValueError("finetune: CogVideoX 1.5 (temporal patches) is not supported yet; CogVideoX 1.0 I2V is")
        self.prediction = pipe.scheduler.config.prediction_type
        if self.prediction not in ("epsilon", "v_prediction", "sample"):
            raise ValueError(f"finetune: scheduler prediction type {self.prediction!r} is not supported")

    def multiples(self) -> tuple[int, int]:
        return self.pipe.vae_scale_factor_spatial * self.transformer.config.patch_size, \
            self.pipe.vae_scale_factor_temporal

    def fixed_resolution(self) -> tuple[int, int] | None:
        config, scale = self.transformer.config, self.pipe.vae_scale_factor_spatial
        return (config.sample_height * scale, config.sample_width * scale) \
            if config.use_learned_positional_embeddings else None

    @torch.no_grad()
    def encode(self, video: np.ndarray, prompt: str, device: str) -> dict:
        from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import retrieve_latents

        pipe, vae = self.pipe, self.pipe.vae
        scale = vae.config.scaling_factor
        pixels = self.pixels(video, device)
        latents = retrieve_latents(vae.encode(pixels), sample_mode="argmax").float().permute(0, 2, 1, 3, 4) * scale
        # the pipeline's conditioning: the first frame's latents (its scaling quirk included), zeros after
        image = retrieve_latents(vae.encode(pixels[:, :, :1]), sample_mode="argmax").float().permute(0, 2, 1, 3, 4)
        image = image / scale if vae.config.invert_scale_latents else image * scale
        condition = torch.cat([image, torch.zeros_like(latents[:, 1:])], 1)
        text, _ = pipe.encode_prompt(prompt, do_classifier_free_guidance=False,
                                     max_sequence_length=self.text_length, device=device)
        out = {"latents": latents[0], "condition": condition[0], "text": text[0]}
        return {k: v.detach().float().cpu() for k, v in out.items()}

    def loss(self, batch: dict, u: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        pipe, dtype = self.pipe, self.transformer.dtype
        scheduler = pipe.scheduler
        x0 = batch["latents"]  # (B, F, C, h, w)
        steps = scheduler.config.num_train_timesteps
        t = (u * (steps - 1)).round().long().clamp(0, steps - 1).to(x0.device)
        noisy = scheduler.add_noise(x0, noise, t)
        config = self.transformer.config
        height, width = (x0.shape[-2] * pipe.vae_scale_factor_spatial, x0.shape[-1] * pipe.vae_scale_factor_spatial)
        rotary = pipe._prepare_rotary_positional_embeddings(height, width, x0.shape[1], x0.device) \
            if config.use_rotary_positional_embeddings else None
        ofs = None if config.ofs_embed_dim is None else x0.new_full((x0.shape[0],), 2.0)
        pred = self.transformer(hidden_states=torch.cat([noisy, batch["condition"]], 2).to(dtype),
                                encoder_hidden_states=batch["text"].to(dtype), timestep=t, ofs=ofs,
                                image_rotary_emb=rotary, return_dict=False)[0]
        target = {"epsilon": noise, "sample": x0}.get(self.prediction)
        if target is None:
            target = scheduler.get_velocity(x0, noise, t)
        return torch.nn.functional.mse_loss(pred.float(), target.float(), reduction="none").mean((1, 2, 3, 4))


class LTXFamily(Family):
    """LTX-Video I2V: flow matching on packed latent tokens; the first latent frame is the clean image
    (conditioning mask 1, timestep 0 for its tokens), so the loss counts the other tokens only. The
    sigmas are shifted as the pipeline shifts its schedule (exp(mu) from the token count, dynamic shifting)."""

    generator_type = "ltx-i2v"
    default_sampling = "logit_normal"

    def multiples(self) -> tuple[int, int]:
        pipe = self.pipe
        return pipe.vae_spatial_compression_ratio * pipe.transformer_spatial_patch_size, \
            pipe.vae_temporal_compression_ratio

    @torch.no_grad()
    def encode(self, video: np.ndarray, prompt: str, device: str) -> dict:
        from diffusers.pipelines.ltx.pipeline_ltx_image2video import retrieve_latents

        pipe, vae = self.pipe, self.pipe.vae
        latents = retrieve_latents(vae.encode(self.pixels(video, device)), sample_mode="argmax").float()
        latents = pipe._normalize_latents(latents, vae.latents_mean.float(), vae.latents_std.float())
        text, mask, _, _ = pipe.encode_prompt(prompt, do_classifier_free_guidance=False,
                                              max_sequence_length=self.text_length, device=device)
        out = {"latents": latents[0], "text": text[0], "text_mask": mask[0]}
        return {k: v.detach().float().cpu() for k, v in out.items()}

    def shift(self, tokens: int) -> float:
        config = self.pipe.scheduler.config
        if self.config.flow_shift:
            return self.config.flow_shift
        if not config.get("use_dynamic_shifting", False):
            return config.get("shift", 1.0)
        from diffusers.pipelines.ltx.pipeline_ltx_image2video import calculate_shift

        return math.exp(calculate_shift(tokens, config.get("base_image_seq_len", 256),
                                        config.get("max_image_seq_len", 4096), config.get("base_shift", 0.5),
                                        config.get("max_shift", 1.15)))

    def loss(self, batch: dict, u: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        pipe, dtype = self.pipe, self.transformer.dtype
        x0 = batch["latents"]  # (B, C, f, h, w)
        b, _, f, h, w = x0.shape
        shift = self.shift(f * h * w)
        sigma = (shift * u / (1 + (shift - 1) * u)).view(-1, 1, 1, 1, 1)
        first = torch.zeros_like(x0[:, :1])
        first[:, :, 0] = 1.0  # the conditioning image's latent frame stays clean
        noisy = first * x0 + (1 - first) * ((1 - sigma) * x0 + sigma * noise)
        p, pt = pipe.transformer_spatial_patch_size, pipe.transformer_temporal_patch_size
        free = 1 - pipe._pack_latents(first, p, pt).squeeze(-1)  # (B, tokens): 0 on the image's tokens
        ratio = pipe.vae_spatial_compression_ratio
        frame_rate = int(round(self.geometry.get("model_fps", 25)))
        pred = self.transformer(hidden_states=pipe._pack_latents(noisy, p, pt).to(dtype),
                                encoder_hidden_states=batch["text"].to(dtype),
                                timestep=sigma.view(-1, 1) * 1000 * free,
                                encoder_attention_mask=batch["text_mask"], num_frames=f, height=h, width=w,
                                rope_interpolation_scale=(pipe.vae_temporal_compression_ratio / frame_rate, ratio, ratio),
                                return_dict=False)[0]
        error = (pred.float() - pipe._pack_latents(noise - x0, p, pt).float()).pow(2).mean(-1)
        return (error * free).sum(1) / free.sum(1)


class CosmosFamily(Family):
    """Cosmos-Predict2 Video2World: the EDM noise x + sigma * noise with rectified-flow preconditioning
    (diffusers' pipeline and NVIDIA's trainer): the transformer sees (1 - t) x0 + t noise, t = sigma / (1 + sigma),
    at timestep t, and predicts the velocity noise - x0 (their x0 loss weighted by (1 + sigma)^2 / sigma^2 is
    exactly this velocity MSE). The conditioning frame is frame replacement: the first latent frame is the
    clean image's, flagged by the condition-mask channel, at sigma_conditional's timestep, out of the loss.
    NVIDIA's trainer draws log sigma ~ N(0, 1) scaled by sqrt(latent frames): that is t logit-normal,
    shifted by sqrt(latent frames), the `flow_shift` default here."""

    generator_type = "cosmos-predict2"
    default_sampling = "logit_normal"
    sigma_conditional = 0.0001  # NVIDIA's Video2World config and diffusers' pipeline default

    def __init__(self, pipe: Any, config: FinetuneConfig):
        super().__init__(pipe, config)
        pipe.register_modules(safety_checker=None)  # the placeholder of load_kwargs: training runs no pipeline call
        checker = config.rollout_fields.get("safety_checker", "guardrail")
        if config.rollout_episodes and checker == "guardrail":
            from diffusers.utils import is_cosmos_guardrail_available

            if not is_cosmos_guardrail_available():
                raise ValueError("finetune.rollout_fields.safety_checker: the held-out rollouts of a Cosmos model run "
                                 "the Cosmos guardrail (pip install cosmos_guardrail); name another checker "
                                 "('module:Class') or set rollout_episodes=0")

    @classmethod
    def load_kwargs(cls, model: str, dtype: Any) -> dict:
        # without a checker the pipeline builds the guardrail; training generates no video, so nothing to check
        # (the held-out rollouts load the generator stage, with its own checker); removed once loaded
        return {"safety_checker": torch.nn.Identity()}

    def save_lora(self, out: Path, layers: dict, metadata: dict) -> None:
        from diffusers.loaders import CosmosLoraLoaderMixin  # the Cosmos transformer's LoRA format

        CosmosLoraLoaderMixin.save_lora_weights(out, transformer_lora_layers=layers,
                                                transformer_lora_adapter_metadata=metadata)

    multiples = WanFamily.multiples  # the same VAE and patching

    @torch.no_grad()
    def encode(self, video: np.ndarray, prompt: str, device: str) -> dict:
        pipe = self.pipe
        # as the pipeline normalises its conditioning latents; the causal VAE's first latent frame is the
        # first frame's alone, so it is also the latent of the conditioning image
        latents = self.wan_vae_latents(video, device) * pipe.scheduler.config.sigma_data
        text, _ = pipe.encode_prompt(prompt, do_classifier_free_guidance=False,
                                     max_sequence_length=self.text_length, device=device)
        return {k: v.detach().float().cpu() for k, v in {"latents": latents[0], "text": text[0]}.items()}

    def loss(self, batch: dict, u: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        dtype = self.transformer.dtype
        x0 = batch["latents"]  # (B, C, T, h, w)
        b, _, frames, h, w = x0.shape
        shift = self.config.flow_shift or math.sqrt(frames)
        t = (shift * u / (1 + (shift - 1) * u)).view(-1, 1, 1, 1, 1)
        cond = torch.zeros_like(x0[:, :1, :, :1, :1])
        cond[:, :, 0] = 1.0  # the conditioning image's latent frame
        t_cond = self.sigma_conditional / (1 + self.sigma_conditional)
        inputs = cond * x0 + (1 - cond) * ((1 - t) * x0 + t * noise)
        timestep = cond * t_cond + (1 - cond) * t  # (B, 1, T, 1, 1): per latent frame
        pred = self.transformer(hidden_states=inputs.to(dtype), timestep=timestep.to(dtype),
                                encoder_hidden_states=batch["text"].to(dtype),
                                fps=int(round(self.geometry.get("model_fps", 16))),
                                condition_mask=cond.expand(b, 1, frames, h, w).to(dtype),
                                padding_mask=x0.new_zeros(1, 1, h, w, dtype=dtype), return_dict=False)[0]
        error = (pred.float() - (noise - x0).float()).pow(2) * (1 - cond)
        return error.sum((1, 2, 3, 4)) / ((1 - cond).expand_as(x0).sum((1, 2, 3, 4)))


class SVDFamily(Family):
    """Stable Video Diffusion: EDM (x = x0 + sigma noise) with the v-prediction preconditioning of its
    EulerDiscreteScheduler: the UNet sees x / sqrt(sigma^2 + 1) beside the conditioning image's latents
    (every frame), at timestep log(sigma) / 4, with the image's CLIP embedding and the added time ids
    (fps - 1, motion bucket, noise augmentation: the svd stage's defaults); the EDM-weighted x0 loss is the
    MSE on its output against (noise - sigma x0) / sqrt(sigma^2 + 1). log sigma ~ N(0.7, 1.6) as the
    common SVD fine-tunes draw it: u logit-normal maps to it through log sigma = 0.7 + 1.6 logit(u)."""

    generator_type = "svd"
    default_sampling = "logit_normal"
    denoiser = "unet"
    p_mean, p_std = 0.7, 1.6

    def __init__(self, pipe: Any, config: FinetuneConfig):
        super().__init__(pipe, config)
        prediction = pipe.scheduler.config.prediction_type
        if prediction != "v_prediction":
            raise ValueError(f"finetune: SVD with scheduler prediction type {prediction!r} is not supported; "
                             "the published checkpoints' v_prediction is")
        from augment.registry import spec_class

        # the micro-conditioning the rollouts will use: the stage's defaults, or what rollout_fields set
        fields = spec_class(self.generator_type).model_fields
        self.motion_bucket_id = config.rollout_fields.get("motion_bucket_id", fields["motion_bucket_id"].default)
        self.noise_aug_strength = config.rollout_fields.get("noise_aug_strength", fields["noise_aug_strength"].default)

    @classmethod
    def load_kwargs(cls, model: str, dtype: Any) -> dict:
        from generators.svd import svd_lora_classes

        _, unet = svd_lora_classes()  # the UNet with peft's adapter methods, as the svd stage loads it
        return {"unet": unet.from_pretrained(model, subfolder="unet", dtype=dtype)}

    def save_lora(self, out: Path, layers: dict, metadata: dict) -> None:
        from diffusers.loaders import StableDiffusionLoraLoaderMixin  # diffusers' UNet LoRA format (unet.*)

        StableDiffusionLoraLoaderMixin.save_lora_weights(out, unet_lora_layers=layers,
                                                         unet_lora_adapter_metadata=metadata)

    def multiples(self) -> tuple[int, int]:
        # each UNet down block halves the latent, as the svd stage reads it
        return self.pipe.vae_scale_factor * 2 ** (len(self.transformer.config.block_out_channels) - 1), 1

    @torch.no_grad()
    def encode(self, video: np.ndarray, prompt: str, device: str) -> dict:
        from PIL import Image

        pipe, vae = self.pipe, self.pipe.vae
        frames = self.pixels(video, device)[0].transpose(0, 1)  # (F, 3, H, W)
        latents = vae.encode(frames).latent_dist.mode().float() * vae.config.scaling_factor
        first = Image.fromarray(video[0])
        embedding = pipe._encode_image(first, device, 1, False)[0]  # (1, D)
        # the conditioning image as the pipeline makes it: augmented by noise (drawn from the frame itself,
        # so a clip always caches the same), encoded without the latent scaling
        image = pipe.video_processor.preprocess(first, height=video.shape[1], width=video.shape[2]).to(device)
        g = torch.Generator("cpu").manual_seed(zlib.crc32(video[0].tobytes()))
        image = image + self.noise_aug_strength * torch.randn(image.shape, generator=g).to(device)
        condition = vae.encode(image.to(vae.dtype)).latent_dist.mode()[0].float()
        fps = int(round(self.geometry.get("model_fps") or self.stage.default_fps)) - 1  # SVD's fps - 1 quirk
        time_ids = pipe._get_add_time_ids(fps, self.motion_bucket_id, self.noise_aug_strength, torch.float32,
                                          1, 1, False)[0]
        out = {"latents": latents, "condition": condition, "image": embedding, "time_ids": time_ids}
        return {k: v.detach().float().cpu() for k, v in out.items()}

    def loss(self, batch: dict, u: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        dtype = self.transformer.dtype
        x0 = batch["latents"]  # (B, F, C, h, w)
        u = u.clamp(1e-5, 1 - 1e-5)
        sigma = torch.exp(self.p_mean + self.p_std * torch.log(u / (1 - u)))
        s = sigma.view(-1, 1, 1, 1, 1)
        noisy = (x0 + s * noise) / (s ** 2 + 1).sqrt()
        condition = batch["condition"][:, None].expand_as(x0)
        pred = self.transformer(torch.cat([noisy, condition], 2).to(dtype), (0.25 * sigma.log()).to(dtype),
                                encoder_hidden_states=batch["image"].to(dtype),
                                added_time_ids=batch["time_ids"].to(dtype), return_dict=False)[0]
        target = (noise - s * x0) / (s ** 2 + 1).sqrt()
        return torch.nn.functional.mse_loss(pred.float(), target.float(), reduction="none").mean((1, 2, 3, 4))


FAMILIES = {"WanImageToVideoPipeline": WanFamily, "CogVideoXImageToVideoPipeline": CogVideoXFamily,
            "LTXImageToVideoPipeline": LTXFamily, "Cosmos2VideoToWorldPipeline": CosmosFamily,
            "StableVideoDiffusionPipeline": SVDFamily}
