"""`augment finetune`: a LoRA on an image-to-video model's transformer, trained on the user's episodes.

The recipe (DreamGen fine-tunes the video model on the target robot before any rollout):
    clips    from every source episode, the named camera resampled (nearest frame) to the model's fps,
             resized to the model's size and multiple, cut into clips of the model's frame count; the
             episode's task through the generator's prompt template is the prompt
    cache    VAE latents, the first-frame conditioning and the text (and CLIP image) embeddings are
             computed once and saved in shards (DIR/cache/shard-*.safetensors, finetune_clips.py), read per
             batch; the VAE and the text encoder never run per step
    train    a peft LoRA on the transformer (SVD: UNet), the family's own objective (finetune_families.py:
             Wan and LTX flow matching, Cosmos EDM sigma with rectified-flow preconditioning, CogVideoX
             the scheduler's prediction type, SVD EDM v-prediction) at noise levels drawn by
             diffusers' compute_density_for_timestep_sampling, AdamW on the adapter only; in this
             process, or data-parallel on Ray Train workers (--address) running the same loop
    resume   DIR/checkpoints/step-N (adapter, optimizer, step) every `checkpoint_every` steps, written
             atomically; a rerun of the same command continues from the last one. Every step's batch,
             noise and sigmas are drawn from (seed, step), so a resumed run is the uninterrupted run.
    output   DIR/pytorch_lora_weights.safetensors (diffusers' format: the generator's `lora:` field
             loads it), DIR/finetune.json (settings, clip geometry, split) and DIR/report.json (the
             held-out episodes' denoising loss at fixed noise levels and fixed noise, and their rollouts
             against the recorded frames, before and after)
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
from generators.finetune_clips import ClipCache, collate, encoded_clips
from generators.finetune_config import CONFIG_FILE, LORA_FILE, REPORT_FILE, FinetuneConfig
from generators.finetune_families import FAMILIES, Family

CHECKPOINTS = "checkpoints"


# ---- checkpoints ---------------------------------------------------------------------------------------
def last_checkpoint(out: Path) -> Path | None:
    done = sorted(p for p in (out / CHECKPOINTS).glob("step-*") if (p / "state.json").is_file())
    return done[-1] if done else None


# what a checkpoint's adapter and optimizer state depend on: resuming with others would mix two runs
RESUME_KEYS = ("rank", "alpha", "target_modules", "seed", "lr", "batch_size", "timestep_sampling", "flow_shift")


def resume_settings(config: FinetuneConfig) -> dict:
    return config.model_dump(mode="json", include=set(RESUME_KEYS))


def save_checkpoint(out: Path, step: int, transformer, optimizer, config: FinetuneConfig) -> None:
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    folder = out / CHECKPOINTS / f"step-{step:08d}"
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in get_peft_model_state_dict(transformer).items()}, tmp / "adapter.safetensors")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    # last: a folder without it is incomplete
    (tmp / "state.json").write_text(json.dumps({"step": step, "settings": resume_settings(config)}))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)
    done = sorted(p for p in (out / CHECKPOINTS).glob("step-*") if p.suffix != ".tmp")
    for old in done[:-config.keep_checkpoints]:
        shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(folder: Path, transformer, optimizer, config: FinetuneConfig) -> int:
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    saved = json.loads((folder / "state.json").read_text()).get("settings", {})
    changed = {k: (saved[k], v) for k, v in resume_settings(config).items() if k in saved and saved[k] != v}
    if changed:
        raise ValueError(f"finetune: {folder} was trained with other settings ("
                         + ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in changed.items())
                         + "); resume with the same ones or write to another --out")
    set_peft_model_state_dict(transformer, load_file(folder / "adapter.safetensors"))
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=False))
    return json.loads((folder / "state.json").read_text())["step"]


# ---- evaluation ----------------------------------------------------------------------------------------
@torch.no_grad()
def denoising_loss(family: Family, clips: ClipCache, sigmas: list[float], seed: int, device: str) -> dict:
    """Mean flow-matching loss at fixed noise levels with fixed noise per clip: before and after compare."""
    if not clips:
        return {}
    losses = {f"{s:g}": [] for s in sigmas}
    for i, clip in enumerate(clips):  # each clip read once
        batch = collate([clip], device)
        g = torch.Generator("cpu").manual_seed(derive_seed(seed, "eval", i))
        noise = torch.randn(batch["latents"].shape, generator=g).to(device)
        for s in sigmas:
            losses[f"{s:g}"].append(float(family.loss(batch, torch.tensor([s], device=device), noise)[0]))
    per_sigma = {k: float(np.mean(v)) for k, v in losses.items()}
    return {"mean": float(np.mean(list(per_sigma.values()))), "per_sigma": per_sigma, "clips": len(clips)}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two uint8 videos (T, H, W, 3) on luma, 7x7 Gaussian windows (Wang et al. 2004's constants)."""
    import cv2

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    scores = []
    for x, y in zip(a, b):
        x = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(np.float64)
        y = cv2.cvtColor(y, cv2.COLOR_RGB2GRAY).astype(np.float64)

        def blur(z):
            return cv2.GaussianBlur(z, (7, 7), 1.5)

        mx, my = blur(x), blur(y)
        vx, vy, cov = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
        scores.append(float((((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))).mean()))
    return float(np.mean(scores))


def rollout_comparison(root: str, model: str, out: Path, family_type: str, text_length: int, lora_target: str,
                       geometry: dict, config: FinetuneConfig, log) -> dict:
    """Held-out episodes rolled out by the generator stage itself (one clip from the recorded first frame,
    the episode's task as the prompt) without and with the LoRA, against the recorded continuation:
    PSNR, SSIM and mean absolute error over the frames after the first (a weight-free measure; a rollout is one
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
              "prompt_template": config.prompt_template, **config.rollout_fields}
    if text_length is not None:  # SVD has no text
        fields["max_sequence_length"] = text_length
    if config.rollout_steps:
        fields["num_inference_steps"] = config.rollout_steps
    if config.rollout_guidance is not None:
        fields["guidance_scale"] = config.rollout_guidance
    real = [source.read_episode(i) for i in episodes]
    result = {"episodes": episodes}
    for name, lora in (("before", []), ("after", [{"path": str(out), "target": lora_target}])):
        stage = spec_class(family_type).model_validate({**fields, "lora": lora}).build()
        stage.setup()
        scores = []
        for ep in real:
            span = int(math.floor((geometry["num_frames"] - 1) * ep.fps / geometry["model_fps"])) + 1
            ep = ep.replace(frames={camera: ep.frames[camera][:span]}, state=None, action=None, extras={})
            video = stage([ep])[0].frames[camera]
            real_frames = ep.frames[camera][1:len(video)]
            scores.append((psnr(video[1:], real_frames), ssim(video[1:], real_frames),
                           float(np.abs(video[1:].astype(int) - real_frames).mean())))
        result[name] = {k: float(np.mean([s[i] for s in scores])) for i, k in enumerate(("psnr", "ssim", "mae"))}
        del stage
    log(f"held-out rollouts PSNR {result['before']['psnr']:.2f} -> {result['after']['psnr']:.2f} dB")
    return result


# ---- the run -------------------------------------------------------------------------------------------
def load_pipeline(model: str, dtype: torch.dtype, encoders: bool = True):
    """The pipeline, with what its family adds to from_pretrained; without its text / image encoders (a
    training worker reads their cached outputs)."""
    from diffusers import DiffusionPipeline

    try:
        parts = DiffusionPipeline.load_config(model)
        family = FAMILIES.get(parts.get("_class_name"))
        extra = family.load_kwargs(model, dtype) if family else {}
        if not encoders:
            extra.update({k: None for k in ("text_encoder", "tokenizer", "image_encoder", "image_processor",
                                            "feature_extractor") if k in parts})
        return DiffusionPipeline.from_pretrained(model, dtype=dtype, **extra)
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


def train_loop(family: Family, params: list, train: ClipCache, out: Path, config: FinetuneConfig, device: str,
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
        start = load_checkpoint(resumed, transformer, optimizer, config)
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
                save_checkpoint(out, step + 1, transformer, optimizer, config)
            if world > 1:
                dist.barrier()  # no worker runs ahead of a checkpoint a restart would resume from
        if (step + 1) % max(1, config.steps // 10) == 0:
            log(f"step {step + 1}/{config.steps} loss {np.mean(losses[-10:]):.4f}")
    transformer.eval()
    return {"start": start, "losses": losses, "seconds": time.perf_counter() - started}


def data_parallel_worker(job: dict, rank: int, world: int, device: str | None) -> None:
    """One data-parallel worker (augment/runner.py runs it under Ray Train): the transformer (no text
    encoder: the cache holds its outputs), the cached clips from the shared --out folder, the same
    loop; rank 0 reports its losses through a file. device: the worker's accelerator, None on CPUs."""
    config, out = FinetuneConfig(**job["config"]), Path(job["out"])
    torch.set_num_threads(config.num_threads)
    device = device if device and config.device != "cpu" else "cpu"
    pipe = load_pipeline(job["model"], getattr(torch, config.dtype), encoders=False)
    family = family_of(pipe, job["model"], config)
    family.transformer.to(device)
    clips = ClipCache.open(out)
    family.geometry = json.loads((out / CONFIG_FILE).read_text())
    params = attach_lora(family.transformer, config)
    result = train_loop(family, params, clips.where(held_out=False), out, config, device,
                        log=print if rank == 0 else (lambda _m: None), rank=rank, world=world)
    if rank == 0:
        (out / "ray_train.json").write_text(json.dumps({**result, "workers": world}))


def train_on_ray(address: str, workers: int | None, model: str, out: Path, config: FinetuneConfig, log) -> dict:
    """Data-parallel over a Ray cluster's GPUs (or CPUs when it has none): Ray Train runs the same loop on
    every worker. --out must be a folder every worker sees (one machine, or a shared file system)."""
    from augment.runner import run_data_parallel

    job = {"config": config.model_dump(mode="json"), "out": str(out), "model": model}
    run_data_parallel("generators.finetune:data_parallel_worker", job, address, workers,
                      use_gpu=config.device != "cpu", storage=out / "ray", name="finetune", log=log)
    return json.loads((out / "ray_train.json").read_text())


def finetune(root: str, model: str, out: str | Path, config: FinetuneConfig, log=print, on_step=None,
             address: str | None = None, workers: int | None = None) -> dict:
    """Train (or resume) the LoRA; returns the report. on_step(step, loss) is called after each step (one
    process only). address: a Ray cluster ('auto', 'ray://...', 'local' to start one) to train on with
    Ray Train, data-parallel over `workers` workers (default: one per GPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads)
    try:
        return _finetune(root, model, Path(out), config, log, on_step, address, workers)
    finally:
        torch.set_num_threads(threads)  # a caller's (a test session's) setting is its own


def _finetune(root: str, model: str, out: Path, config: FinetuneConfig, log, on_step, address: str | None,
              workers: int | None) -> dict:
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    pipe = load_pipeline(model, getattr(torch, config.dtype))
    family = family_of(pipe, model, config)
    if config.rollout_episodes:  # a wrong rollout field fails now, not after the training
        from augment.registry import spec_class

        try:
            spec_class(family.generator_type).model_validate(
                {"type": family.generator_type, "model": model, **config.rollout_fields})
        except ValueError as e:
            raise ValueError(f"finetune.rollout_fields: not {family.generator_type} fields: {e}") from None
    pipe.to(device)
    clips, geometry = encoded_clips(root, model, out, family, config, device, log)
    family.geometry = geometry  # LTX's rotary scale depends on the clips' fps
    # the frozen encoders are done: only the transformer stays on the device
    for part in ("vae", "text_encoder", "image_encoder", "transformer", "transformer_2"):
        if getattr(pipe, part, None) is not None and getattr(pipe, part) is not family.transformer:
            getattr(pipe, part).to("cpu")
    train, held_out = clips.where(held_out=False), clips.where(held_out=True)
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

    family.save_lora(out, get_peft_model_state_dict(transformer), transformer.peft_config["default"].to_dict())
    transformer.disable_adapters()
    before = {"held_out": denoising_loss(family, held_out, config.eval_sigmas, config.seed, device),
              "train": denoising_loss(family, train, config.eval_sigmas, config.seed, device)}
    transformer.enable_adapters()
    after = {"held_out": denoising_loss(family, held_out, config.eval_sigmas, config.seed, device),
             "train": denoising_loss(family, train, config.eval_sigmas, config.seed, device)}
    report_type, text_length, lora_target = family.generator_type, family.text_length, family.lora_target
    del family, transformer, pipe, params  # the stages load their own pipeline
    rollouts = rollout_comparison(root, model, out, report_type, text_length, lora_target, geometry, config,
                                  log)
    report = {
        "model": model, "dataset": root, "family": report_type, "lora": str(out / LORA_FILE),
        "steps": config.steps, "resumed_from": start, "seconds": round(seconds, 2),
        "workers": result.get("workers", 1),
        "seconds_per_step": round(seconds / max(1, config.steps - start), 4), "device": device,
        "train_clips": len(train), "held_out_clips": len(held_out),
        "denoising_loss": {"before": before, "after": after},
        "rollouts": rollouts,
        "train_loss_curve": losses,
        "use": {"type": report_type, "model": model, "lora": [{"path": str(out), "target": lora_target}],
                "camera": geometry["camera"], "num_frames": geometry["num_frames"],
                "model_fps": geometry["model_fps"], "height": geometry["height"], "width": geometry["width"]},
    }
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2))
    held = (before["held_out"] or {}).get("mean"), (after["held_out"] or {}).get("mean")
    log(f"held-out denoising loss {held[0]:.4f} -> {held[1]:.4f}" if held[0] is not None else "no held-out episodes")
    return report
