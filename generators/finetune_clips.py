"""Training clips for `augment finetune`: cut from the source episodes at the model's fps and size, encoded
once by the family (VAE + text encoder) and cached in DIR/cache/clips.pt, keyed by what they depend on."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from augment.episode import resize_frames
from augment.stage import derive_seed
from generators.base import choose_resolution, render_prompt, resample_indices, valid_frame_count
from generators.specs import pick_camera
from generators.finetune_config import FinetuneConfig
from generators.finetune_families import Family

CACHE_FILE = "cache/clips.pt"


# ---- clips -------------------------------------------------------------------------------------------
def episode_clips(frames: np.ndarray, fps: float, model_fps: float, clip_frames: int, height: int, width: int,
                  most: int) -> list[np.ndarray]:
    """Consecutive, non-overlapping clips of clip_frames frames at model_fps (nearest source frame)."""
    n_model = int(math.floor((len(frames) - 1) * model_fps / fps)) + 1
    picks = resample_indices(n_model, model_fps, fps, len(frames))
    starts = range(0, len(picks) - clip_frames + 1, clip_frames)
    return [resize_frames(frames[picks[s:s + clip_frames]], height, width) for s in list(starts)[:most]]


def background_edits(frames: np.ndarray, count: int, seed: int, uid: str) -> list[np.ndarray]:
    """`count` copies of one camera's video with a new procedural background each (the background
    editor's weight-free recipe), so the LoRA learns the robot and its motion, not one room."""
    if count == 0:
        return []
    from editors.background import procedural_variants

    return procedural_variants(frames, [derive_seed(seed, uid, "finetune-edit", k) for k in range(count)])


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
        variants = [ep.frames[camera]]
        if index not in val:  # held-out episodes stay as recorded: the report measures the robot's own scenes
            variants += background_edits(ep.frames[camera], config.edit_variants, config.seed, ep.uid)
        for edit, frames in enumerate(variants):
            cut = episode_clips(frames, ep.fps, model_fps, clip_frames, height, width, config.clips_per_episode)
            if not cut:
                short.append(index)
                break
            clips += [{"episode": index, "clip": k, "edit": edit, "prompt": prompt, "video": v,
                       "held_out": index in val} for k, v in enumerate(cut)]
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
                                        "clips_per_episode", "max_sequence_length", "val_fraction", "seed",
                                        "edit_variants"})}
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
