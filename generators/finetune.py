"""`augment finetune`: a LoRA on an image-to-video model's transformer, trained on the user's episodes.

The recipe (DreamGen fine-tunes the video model on the target robot before any rollout), in one process:
    clips    from every source episode, the named camera resampled (nearest frame) to the model's fps,
             resized to the model's size and multiple, cut into clips of the model's frame count; the
             episode's task through the generator's prompt template is the prompt
    cache    VAE latents, the first-frame conditioning and the text (and CLIP image) embeddings are
             computed once and saved (DIR/cache/clips.pt); the VAE and the text encoder never run per step
    train    a peft LoRA on the transformer, the family's own objective (Wan: flow matching, the
             velocity noise - x0 at sigma drawn by diffusers' compute_density_for_timestep_sampling and
             shifted as the scheduler's flow_shift), AdamW on the adapter only
    resume   DIR/checkpoints/step-N (adapter, optimizer, step) every `checkpoint_every` steps, written
             atomically; a rerun of the same command continues from the last one. Every step's batch,
             noise and sigmas are drawn from (seed, step), so a resumed run is the uninterrupted run.
    output   DIR/pytorch_lora_weights.safetensors (diffusers' format: the generator's `lora:` field
             loads it), DIR/finetune.json (settings, clip geometry, split) and DIR/report.json (the
             held-out episodes' denoising loss at fixed noise levels and fixed noise, before and after)
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from augment.devices import resolve_device
from augment.stage import derive_seed
from generators.base import (choose_resolution, pick_camera, render_prompt, resample_indices, resize_video,
                             valid_frame_count)
from generators.finetune_config import CONFIG_FILE, LORA_FILE, REPORT_FILE, FinetuneConfig

CACHE_FILE = "cache/clips.pt"
CHECKPOINTS = "checkpoints"


# ---- model families ----------------------------------------------------------------------------------
class Family:
    """What differs between model families: the stage whose defaults a clip follows, how a clip is encoded
    (once, then cached), and the training loss at a noise level u in [0, 1] (the same u, 0 = clean,
    1 = pure noise, for training draws and for the report's fixed levels)."""

    generator_type = ""
    default_sampling = "uniform"

    def __init__(self, pipe: Any, config: FinetuneConfig):
        from augment.registry import import_object, spec_class

        spec = spec_class(self.generator_type)
        self.pipe, self.config, self.transformer = pipe, config, pipe.transformer
        self.stage = import_object(spec.stage_class)
        self.text_length = config.max_sequence_length or spec.model_fields["max_sequence_length"].default

    def multiples(self) -> tuple[int, int]:
        """(spatial multiple, temporal step), as the generator stage reads them."""
        raise NotImplementedError

    def fixed_resolution(self) -> tuple[int, int] | None:
        return None

    def pixels(self, video: np.ndarray, device: str) -> torch.Tensor:
        return torch.from_numpy(video).permute(3, 0, 1, 2)[None].to(device, self.pipe.vae.dtype) / 127.5 - 1.0


class WanFamily(Family):
    """Wan 2.1 I2V / Wan 2.2 one-expert I2V: the transformer sees [noisy latents | mask + first-frame
    latents] (36 channels) and predicts the flow velocity noise - x0 at timestep sigma * 1000."""

    generator_type = "wan-i2v"
    default_sampling = "logit_normal"

    def __init__(self, pipe: Any, config: FinetuneConfig):
        super().__init__(pipe, config)
        if pipe.config.expand_timesteps:
            raise ValueError("finetune: Wan 2.2 TI2V-5B (expand_timesteps) is not supported yet; Wan 2.1 I2V and "
                             "one-expert Wan 2.2 I2V are")
        if getattr(pipe, "transformer_2", None) is not None or pipe.transformer is None:
            raise ValueError("finetune: Wan 2.2 A14B (two experts) is not supported yet: each expert needs its own "
                             "LoRA on its own noise range")
        if pipe.image_encoder is not None and self.text_length != 512:
            raise ValueError("finetune.max_sequence_length: a Wan 2.1 I2V model (CLIP image tokens) needs 512; "
                             f"got {self.text_length}")
        scheduler_shift = getattr(pipe.scheduler.config, "flow_shift", None) or 1.0
        self.shift = config.flow_shift or scheduler_shift

    def multiples(self) -> tuple[int, int]:
        return self.pipe.vae_scale_factor_spatial * self.transformer.config.patch_size[1], \
            self.pipe.vae_scale_factor_temporal

    @torch.no_grad()
    def encode(self, video: np.ndarray, prompt: str, device: str) -> dict:
        """One clip (uint8 (F, H, W, 3)) -> what the training step needs, on the CPU in float32."""
        from diffusers.pipelines.wan.pipeline_wan_i2v import retrieve_latents
        from PIL import Image

        pipe, vae = self.pipe, self.pipe.vae
        frames, height, width = video.shape[:3]
        mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1).to(device)
        std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1).to(device)
        # the mode of the posterior, as the pipeline encodes its condition: cached once, deterministic
        latents = (retrieve_latents(vae.encode(self.pixels(video, device)), sample_mode="argmax").float() - mean) / std
        first = Image.fromarray(video[0])
        image = pipe.video_processor.preprocess(first, height=height, width=width).to(device, torch.float32)
        # the pipeline's own conditioning (first-frame mask + latents of [frame 0, zeros...]): zero noise in
        _, condition = pipe.prepare_latents(image, 1, vae.config.z_dim, height, width, frames, torch.float32,
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
        s = sigma.view(-1, 1, 1, 1, 1)
        noisy = (1 - s) * x0 + s * noise
        pred = self.transformer(hidden_states=torch.cat([noisy, batch["condition"]], 1).to(dtype),
                                timestep=sigma * 1000, encoder_hidden_states=batch["text"].to(dtype),
                                encoder_hidden_states_image=batch["image"].to(dtype) if "image" in batch else None,
                                return_dict=False)[0]
        return torch.nn.functional.mse_loss(pred.float(), (noise - x0).float(), reduction="none").mean((1, 2, 3, 4))


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


FAMILIES = {"WanImageToVideoPipeline": WanFamily, "CogVideoXImageToVideoPipeline": CogVideoXFamily}


# ---- clips -------------------------------------------------------------------------------------------
def episode_clips(frames: np.ndarray, fps: float, model_fps: float, clip_frames: int, height: int, width: int,
                  most: int) -> list[np.ndarray]:
    """Consecutive, non-overlapping clips of clip_frames frames at model_fps (nearest source frame)."""
    n_model = int(math.floor((len(frames) - 1) * model_fps / fps)) + 1
    picks = resample_indices(n_model, model_fps, fps, len(frames))
    starts = range(0, len(picks) - clip_frames + 1, clip_frames)
    return [resize_video(frames[picks[s:s + clip_frames]], height, width) for s in list(starts)[:most]]


def split_episodes(indices: list[int], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    if val_fraction <= 0 or len(indices) < 2:
        return list(indices), []
    order = np.random.default_rng(derive_seed(seed, "split")).permutation(indices).tolist()
    n_val = min(len(indices) - 1, max(1, round(val_fraction * len(indices))))
    return sorted(order[n_val:]), sorted(order[:n_val])


def build_clips(root: str, family: Family, config: FinetuneConfig, log) -> tuple[list[dict], dict]:
    from augment.source import LeRobotSource

    probe = LeRobotSource(root)
    camera = pick_camera(config.camera, probe.cameras, where="finetune.camera")
    source = LeRobotSource(root, [camera])
    multiple, step = family.multiples()
    stage = family.stage
    clip_frames = valid_frame_count(config.num_frames or stage.default_frames, step)
    model_fps = config.model_fps or stage.default_fps
    shape = source.features[camera]["shape"]  # (H, W, C) as lerobot records it
    if family.fixed_resolution() is not None:  # learned positional embeddings: one size only
        height, width = family.fixed_resolution()
    elif config.height or config.width:
        height, width = config.height or shape[0], config.width or shape[1]
        if height % multiple or width % multiple:
            raise ValueError(f"finetune: height/width {height}x{width} must be multiples of {multiple}")
    else:
        height, width = choose_resolution(shape[0], shape[1], stage.default_area, multiple)
    indices = source.select(None)
    train, val = split_episodes(indices, config.val_fraction, config.seed)
    clips, short = [], []
    for index in indices:
        ep = source.read_episode(index)
        prompt = render_prompt(config.prompt_template, ep.task, "")
        cut = episode_clips(ep.frames[camera], ep.fps, model_fps, clip_frames, height, width, config.clips_per_episode)
        if not cut:
            short.append(index)
        clips += [{"episode": index, "clip": k, "prompt": prompt, "video": v, "held_out": index in val}
                  for k, v in enumerate(cut)]
    log(f"{len(clips)} clips of {clip_frames} frames at {model_fps:g} fps, {height}x{width}, from "
        f"{len(indices) - len(short)} episodes ({len(short)} shorter than a clip)")
    geometry = {"camera": camera, "num_frames": clip_frames, "model_fps": model_fps, "height": height,
                "width": width, "train_episodes": train, "held_out_episodes": val, "too_short": short}
    if not any(not c["held_out"] for c in clips):
        raise ValueError(f"finetune: no training clip: every training episode of {root} is shorter than "
                         f"{clip_frames} frames at {model_fps:g} fps (set num_frames or model_fps)")
    return clips, geometry


def encoded_clips(root: str, model: str, out: Path, family: Family, config: FinetuneConfig, device: str,
                  log) -> tuple[list[dict], dict]:
    """The cached encodings, or encode every clip once (VAE + text encoder) and cache them."""
    key = {"dataset": str(Path(root).resolve()) if Path(root).exists() else root, "model": model,
           **config.model_dump(include={"camera", "prompt_template", "num_frames", "height", "width", "model_fps",
                                        "clips_per_episode", "max_sequence_length", "val_fraction", "seed"})}
    path = out / CACHE_FILE
    if path.is_file():
        cached = torch.load(path, weights_only=False)
        if cached["key"] == key:
            log(f"cached encodings: {path}")
            return cached["clips"], cached["geometry"]
    clips, geometry = build_clips(root, family, config, log)
    started = time.perf_counter()
    encoded = [{**family.encode(c.pop("video"), c["prompt"], device), **c} for c in clips]
    log(f"encoded {len(clips)} clips in {time.perf_counter() - started:.1f}s")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"key": key, "clips": encoded, "geometry": geometry}, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    return encoded, geometry


def collate(clips: list[dict], device: str) -> dict:
    keys = [k for k, v in clips[0].items() if isinstance(v, torch.Tensor)]
    return {k: torch.stack([c[k] for c in clips]).to(device) for k in keys}


# ---- checkpoints ---------------------------------------------------------------------------------------
def last_checkpoint(out: Path) -> Path | None:
    done = sorted(p for p in (out / CHECKPOINTS).glob("step-*") if (p / "state.json").is_file())
    return done[-1] if done else None


def save_checkpoint(out: Path, step: int, transformer, optimizer, keep: int) -> None:
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    folder = out / CHECKPOINTS / f"step-{step:08d}"
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in get_peft_model_state_dict(transformer).items()}, tmp / "adapter.safetensors")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step}))  # last: a folder without it is incomplete
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)
    done = sorted(p for p in (out / CHECKPOINTS).glob("step-*") if p.suffix != ".tmp")
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(folder: Path, transformer, optimizer) -> int:
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(transformer, load_file(folder / "adapter.safetensors"))
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=False))
    return json.loads((folder / "state.json").read_text())["step"]


# ---- evaluation ----------------------------------------------------------------------------------------
@torch.no_grad()
def denoising_loss(family: Family, clips: list[dict], sigmas: list[float], seed: int, device: str) -> dict:
    """Mean flow-matching loss at fixed noise levels with fixed noise per clip: before and after compare."""
    if not clips:
        return {}
    per_sigma = {}
    for s in sigmas:
        losses = []
        for i, clip in enumerate(clips):
            batch = collate([clip], device)
            g = torch.Generator("cpu").manual_seed(derive_seed(seed, "eval", i))
            noise = torch.randn(batch["latents"].shape, generator=g).to(device)
            losses.append(float(family.loss(batch, torch.tensor([s], device=device), noise)[0]))
        per_sigma[f"{s:g}"] = float(np.mean(losses))
    return {"mean": float(np.mean(list(per_sigma.values()))), "per_sigma": per_sigma, "clips": len(clips)}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def rollout_comparison(root: str, model: str, out: Path, family_type: str, text_length: int, geometry: dict,
                       config: FinetuneConfig, log) -> dict:
    """Held-out episodes rolled out by the generator stage itself (one clip from the recorded first frame,
    the episode's task as the prompt) without and with the LoRA, against the recorded continuation:
    PSNR and mean absolute error over the frames after the first (a weight-free measure; a rollout is one
    sample of many futures, so this tracks looking like the robot more than matching one motion)."""
    from augment.registry import spec_class
    from augment.source import LeRobotSource

    episodes = geometry["held_out_episodes"][:config.rollout_episodes]
    if not episodes:
        return {}
    camera = geometry["camera"]
    source = LeRobotSource(root, [camera])
    fields = {"type": family_type, "model": model, "dtype": config.dtype, "device": config.device, "camera": camera,
              "max_clips": 1, "num_frames": geometry["num_frames"], "model_fps": geometry["model_fps"],
              "height": geometry["height"], "width": geometry["width"], "seed": config.seed,
              "prompt_template": config.prompt_template, "max_sequence_length": text_length}
    if config.rollout_steps:
        fields["num_inference_steps"] = config.rollout_steps
    if config.rollout_guidance is not None:
        fields["guidance_scale"] = config.rollout_guidance
    real = [source.read_episode(i) for i in episodes]
    result = {"episodes": episodes}
    for name, lora in (("before", []), ("after", [{"path": str(out)}])):
        stage = spec_class(family_type).model_validate({**fields, "lora": lora}).build()
        stage.setup()
        scores = []
        for ep in real:
            span = int(math.floor((geometry["num_frames"] - 1) * ep.fps / geometry["model_fps"])) + 1
            ep = ep.replace(frames={camera: ep.frames[camera][:span]}, state=None, action=None, extras={})
            video = stage([ep])[0].frames[camera]
            scores.append((psnr(video[1:], ep.frames[camera][1:len(video)]),
                           float(np.abs(video[1:].astype(int) - ep.frames[camera][1:len(video)]).mean())))
        result[name] = {"psnr": float(np.mean([s[0] for s in scores])), "mae": float(np.mean([s[1] for s in scores]))}
        del stage
    log(f"held-out rollouts PSNR {result['before']['psnr']:.2f} -> {result['after']['psnr']:.2f} dB")
    return result


# ---- the run -------------------------------------------------------------------------------------------
def load_pipeline(model: str, dtype: torch.dtype, encoders: bool = True):
    """The pipeline; without its text / image encoders (a training worker reads their cached outputs)."""
    from diffusers import DiffusionPipeline

    try:
        drop = {}
        if not encoders:
            parts = DiffusionPipeline.load_config(model)
            drop = {k: None for k in ("text_encoder", "tokenizer", "image_encoder", "image_processor") if k in parts}
        return DiffusionPipeline.from_pretrained(model, dtype=dtype, **drop)
    except (OSError, ValueError) as e:
        raise ValueError(f"finetune: cannot load {model!r}: {e}") from e


def family_of(pipe: Any, model: str, config: FinetuneConfig) -> Family:
    name = type(pipe).__name__
    if name not in FAMILIES:
        raise ValueError(f"finetune: {name} from {model!r} is not supported; supported: {', '.join(FAMILIES)}")
    family = FAMILIES[name](pipe, config)
    if config.family and config.family != family.generator_type:
        raise ValueError(f"finetune.family: {model!r} is a {family.generator_type} model, not {config.family}")
    return family


def attach_lora(transformer, config: FinetuneConfig) -> list:
    """A peft LoRA on the frozen transformer, A drawn from the seed (B starts at zero: the base model);
    returns its parameters, in float32 whatever the frozen weights are."""
    from peft import LoraConfig

    transformer.requires_grad_(False)
    torch.manual_seed(derive_seed(config.seed, "lora"))
    transformer.add_adapter(LoraConfig(r=config.rank, lora_alpha=config.alpha or config.rank,
                                       init_lora_weights=True, target_modules=config.target_modules))
    params = [p for p in transformer.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()
    if config.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    return params


def train_loop(family: Family, params: list, train: list[dict], out: Path, config: FinetuneConfig, device: str,
               log, on_step=None, rank: int = 0, world: int = 1) -> dict:
    """The optimisation, the same in one process and on every Ray Train worker. Step s's batch, noise and
    noise levels come from (seed, step[, rank]); with several workers the LoRA gradients are averaged
    (all_reduce: the adapter is all that trains, so no DDP wrapper is needed) and rank 0 writes checkpoints."""
    from diffusers.training_utils import compute_density_for_timestep_sampling

    transformer = family.transformer
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    start = 0
    resumed = last_checkpoint(out)
    if resumed is not None:
        start = load_checkpoint(resumed, transformer, optimizer)
        log(f"resumed from {resumed} (step {start})")
    if world > 1:
        import torch.distributed as dist
    sampling = config.timestep_sampling or family.default_sampling
    transformer.train()
    losses, started = [], time.perf_counter()
    for step in range(start, config.steps):
        g = torch.Generator("cpu").manual_seed(derive_seed(config.seed, "step", step, *([rank] if world > 1 else [])))
        picks = torch.randint(len(train), (config.batch_size,), generator=g).tolist()
        batch = collate([train[i] for i in picks], device)
        u = compute_density_for_timestep_sampling(sampling, config.batch_size, logit_mean=0.0, logit_std=1.0,
                                                  mode_scale=1.29, generator=g)
        noise = torch.randn(batch["latents"].shape, generator=g).to(device)
        for group in optimizer.param_groups:
            group["lr"] = config.lr * min(1.0, (step + 1) / max(1, config.warmup_steps))
        loss = family.loss(batch, u.to(device), noise).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if world > 1:
            for p in params:
                dist.all_reduce(p.grad)
                p.grad /= world
        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step + 1, losses[-1])
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
            if rank == 0:
                save_checkpoint(out, step + 1, transformer, optimizer, config.keep_checkpoints)
            if world > 1:
                dist.barrier()  # no worker runs ahead of a checkpoint a restart would resume from
        if (step + 1) % max(1, config.steps // 10) == 0:
            log(f"step {step + 1}/{config.steps} loss {np.mean(losses[-10:]):.4f}")
    transformer.eval()
    return {"start": start, "losses": losses, "seconds": time.perf_counter() - started}


def _ray_worker(job: dict) -> None:
    """One Ray Train worker: the transformer (no text encoder: the cache holds its outputs), the cached
    clips from the shared --out folder, the same loop; rank 0 reports its losses through a file."""
    import ray.train
    import ray.train.torch

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    config, out = FinetuneConfig(**job["config"]), Path(job["out"])
    torch.set_num_threads(config.num_threads)
    device = str(ray.train.torch.get_device()) if config.device != "cpu" else "cpu"
    pipe = load_pipeline(job["model"], getattr(torch, config.dtype), encoders=False)
    family = family_of(pipe, job["model"], config)
    family.transformer.to(device)
    clips = torch.load(out / CACHE_FILE, weights_only=False)["clips"]
    params = attach_lora(family.transformer, config)
    result = train_loop(family, params, [c for c in clips if not c["held_out"]], out, config, device,
                        log=print if rank == 0 else (lambda _m: None), rank=rank, world=world)
    if rank == 0:
        (out / "ray_train.json").write_text(json.dumps({**result, "workers": world}))


def train_on_ray(address: str, workers: int | None, model: str, out: Path, config: FinetuneConfig, log) -> dict:
    """Data-parallel over a Ray cluster's GPUs (or CPUs when it has none): Ray Train runs the same loop on
    every worker. --out must be a folder every worker sees (one machine, or a shared file system)."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=None if address == "local" else address, include_dashboard=False)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    use_gpu = gpus > 0 and config.device != "cpu"
    workers = workers or (gpus if use_gpu else 1)
    log(f"Ray Train: {workers} worker(s), {'one GPU each' if use_gpu else 'on CPUs'}")
    trainer = TorchTrainer(_ray_worker, train_loop_config={"config": config.model_dump(mode="json"), "out": str(out),
                                                           "model": model},
                           scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                                                        resources_per_worker=None if use_gpu else {"CPU": 1}),
                           run_config=RunConfig(storage_path=str((out / "ray").resolve()), name="finetune"))
    try:
        trainer.fit()
    finally:
        if started_here:
            ray.shutdown()
    return json.loads((out / "ray_train.json").read_text())


def finetune(root: str, model: str, out: str | Path, config: FinetuneConfig, log=print, on_step=None,
             address: str | None = None, workers: int | None = None) -> dict:
    """Train (or resume) the LoRA; returns the report. on_step(step, loss) is called after each step (one
    process only). address: a Ray cluster ('auto', 'ray://...', 'local' to start one) to train on with
    Ray Train, data-parallel over `workers` workers (default: one per GPU)."""
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.num_threads)
    device = resolve_device(config.device)
    pipe = load_pipeline(model, getattr(torch, config.dtype))
    family = family_of(pipe, model, config)
    pipe.to(device)
    clips, geometry = encoded_clips(root, model, out, family, config, device, log)
    # the frozen encoders are done: only the transformer stays on the device
    for part in ("vae", "text_encoder", "image_encoder"):
        if getattr(pipe, part, None) is not None:
            getattr(pipe, part).to("cpu")
    train = [c for c in clips if not c["held_out"]]
    held_out = [c for c in clips if c["held_out"]]
    (out / CONFIG_FILE).write_text(json.dumps({"model": model, "dataset": root, "family": family.generator_type,
                                               "settings": config.model_dump(mode="json"), **geometry}, indent=2))
    transformer = family.transformer
    params = attach_lora(transformer, config)
    if address is None:
        result = train_loop(family, params, train, out, config, device, log, on_step)
    else:
        transformer.to("cpu")  # the workers train; this process only evaluates afterwards
        result = train_on_ray(address, workers, model, out, config, log)
        transformer.to(device)
        set_peft_model_state_dict(transformer, load_file(last_checkpoint(out) / "adapter.safetensors"))
    start, losses, seconds = result["start"], result["losses"], result["seconds"]
    transformer.eval()

    from peft.utils import get_peft_model_state_dict

    type(pipe).save_lora_weights(out, transformer_lora_layers=get_peft_model_state_dict(transformer))
    transformer.disable_adapters()
    before = {"held_out": denoising_loss(family, held_out, config.eval_sigmas, config.seed, device),
              "train": denoising_loss(family, train, config.eval_sigmas, config.seed, device)}
    transformer.enable_adapters()
    after = {"held_out": denoising_loss(family, held_out, config.eval_sigmas, config.seed, device),
             "train": denoising_loss(family, train, config.eval_sigmas, config.seed, device)}
    report_type, text_length = family.generator_type, family.text_length
    del family, transformer, pipe, params  # the stages load their own pipeline
    rollouts = rollout_comparison(root, model, out, report_type, text_length, geometry, config, log)
    report = {
        "model": model, "dataset": root, "family": report_type, "lora": str(out / LORA_FILE),
        "steps": config.steps, "resumed_from": start, "seconds": round(seconds, 2),
        "workers": result.get("workers", 1),
        "seconds_per_step": round(seconds / max(1, config.steps - start), 4), "device": device,
        "train_clips": len(train), "held_out_clips": len(held_out),
        "denoising_loss": {"before": before, "after": after},
        "rollouts": rollouts,
        "train_loss_curve": losses,
        "use": {"type": report_type, "model": model, "lora": [{"path": str(out)}],
                "camera": geometry["camera"], "num_frames": geometry["num_frames"],
                "model_fps": geometry["model_fps"], "height": geometry["height"], "width": geometry["width"]},
    }
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2))
    held = (before["held_out"] or {}).get("mean"), (after["held_out"] or {}).get("mean")
    log(f"held-out denoising loss {held[0]} -> {held[1]}" if held[0] is not None else "no held-out episodes")
    return report
