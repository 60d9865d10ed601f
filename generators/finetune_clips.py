"""Training clips for `augment finetune`: cut from the source episodes at the model's fps and size, encoded
once by the family (VAE + text encoder) and cached in DIR/cache/ as shards, keyed by what they depend on.

The cache holds a dataset of any size: each shard is the encoded clips of `shard_episodes` consecutive
episodes (a safetensors file: one clip's tensors are read without the rest), written atomically as soon as
its episodes are encoded, so neither encoding nor training holds more than a shard's clips, and an
interrupted encoding resumes at the first missing shard. cache/index.json (written last) lists them.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from augment.episode import resize_frames
from augment.stage import derive_seed
from generators.base import choose_resolution, render_prompt, resample_indices, valid_frame_count
from generators.specs import pick_camera
from generators.finetune_config import FinetuneConfig
from generators.finetune_families import Family

CACHE_DIR = "cache"
INDEX_FILE = "index.json"  # written last: a cache without it is incomplete
KEY_FILE = "key.json"  # what the shards were encoded from; another key empties the folder


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
    editor's weight-free recipe; a view with no backdrop, pusht's, gets a new table surface), so the LoRA
    learns the robot and its motion, not one room. None of a view the edit leaves as recorded (nothing
    found to change), rather than the same clips encoded again."""
    if count == 0:
        return []
    from editors.background import procedural_variants

    copies = procedural_variants(frames, [derive_seed(seed, uid, "finetune-edit", k) for k in range(count)])
    return [c for c in copies if not np.array_equal(c, frames)]


def split_episodes(indices: list[int], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    if val_fraction <= 0 or len(indices) < 2:
        return list(indices), []
    order = np.random.default_rng(derive_seed(seed, "split")).permutation(indices).tolist()
    n_val = min(len(indices) - 1, max(1, round(val_fraction * len(indices))))
    return sorted(order[n_val:]), sorted(order[:n_val])


def clip_plan(root: str, family: Family, config: FinetuneConfig):
    """(source, geometry): the camera, clip size, frame count and fps, and the train / held-out split,
    from the dataset's metadata alone (no episode is read)."""
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
    return source, {"camera": camera, "num_frames": clip_frames, "model_fps": model_fps, "height": height,
                    "width": width, "train_episodes": train, "held_out_episodes": val, "episodes": indices}


def clips_of_episode(source, index: int, geometry: dict, config: FinetuneConfig) -> list[dict]:
    """One episode's clips (and its edited variants' unless it is held out); [] when it is shorter than a clip."""
    camera = geometry["camera"]
    held_out = index in geometry["held_out_episodes"]
    ep = source.read_episode(index)
    prompt = render_prompt(config.prompt_template, ep.task, "")
    variants = [ep.frames[camera]]
    if not held_out:  # held-out episodes stay as recorded: the report measures the robot's own scenes
        variants += background_edits(ep.frames[camera], config.edit_variants, config.seed, ep.uid)
    clips = []
    for edit, frames in enumerate(variants):
        cut = episode_clips(frames, ep.fps, geometry["model_fps"], geometry["num_frames"], geometry["height"],
                            geometry["width"], config.clips_per_episode)
        if not cut:
            return []
        clips += [{"episode": index, "clip": k, "edit": edit, "prompt": prompt, "video": v, "held_out": held_out}
                  for k, v in enumerate(cut)]
    return clips


class ClipCache(Sequence):
    """The encoded clips of a cache folder: their metadata in memory, their tensors read from the shard
    when an item is asked for (a training batch, one evaluation clip). `where(held_out=...)` is a view."""

    def __init__(self, folder: Path, clips: list[dict], rows: list[int] | None = None):
        self.folder, self.clips = folder, clips
        self.rows = list(range(len(clips))) if rows is None else rows

    @classmethod
    def open(cls, out: Path) -> "ClipCache":
        index = json.loads((out / CACHE_DIR / INDEX_FILE).read_text())
        return cls(out / CACHE_DIR, index["clips"])

    def where(self, held_out: bool) -> "ClipCache":
        return ClipCache(self.folder, self.clips, [r for r in self.rows if self.clips[r]["held_out"] == held_out])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        from safetensors import safe_open

        meta = self.clips[self.rows[i]]
        with safe_open(self.folder / meta["shard"], framework="pt") as f:
            tensors = {name: f.get_tensor(f"{meta['row']}.{name}") for name in meta["tensors"]}
        return {**meta, **tensors}


def encode_shard(path: Path, clips: list[dict], family: Family, device: str) -> list[dict]:
    """Encode clips into one shard file (atomically); returns their metadata (the tensors stay on disk)."""
    from safetensors.torch import save_file

    tensors, meta = {}, []
    for row, clip in enumerate(clips):
        encoded = family.encode(clip.pop("video"), clip["prompt"], device)
        tensors.update({f"{row}.{name}": t.contiguous() for name, t in encoded.items()})
        meta.append({**clip, "shard": path.name, "row": row, "tensors": sorted(encoded)})
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, tmp, metadata={"clips": json.dumps(meta)})
    tmp.replace(path)
    return meta


def encoded_clips(root: str, model: str, out: Path, family: Family, config: FinetuneConfig, device: str,
                  log) -> tuple[ClipCache, dict]:
    """The cached encodings, or encode the clips once (VAE + text encoder), shard by shard, reusing the
    shards an interrupted run left."""
    from safetensors import safe_open

    key = {"dataset": str(Path(root).resolve()) if Path(root).exists() else root, "model": model,
           **config.model_dump(include={"camera", "prompt_template", "num_frames", "height", "width", "model_fps",
                                        "clips_per_episode", "max_sequence_length", "val_fraction", "seed",
                                        "edit_variants", "shard_episodes", "rollout_fields"})}
    folder = out / CACHE_DIR
    index_path = folder / INDEX_FILE
    if index_path.is_file() and json.loads(index_path.read_text())["key"] == key:
        log(f"cached encodings: {folder}")
        index = json.loads(index_path.read_text())
        return ClipCache(folder, index["clips"]), index["geometry"]
    if not (folder / KEY_FILE).is_file() or json.loads((folder / KEY_FILE).read_text()) != key:
        shutil.rmtree(folder, ignore_errors=True)  # shards of other settings: encode again
        folder.mkdir(parents=True)
        (folder / KEY_FILE).write_text(json.dumps(key))
    source, geometry = clip_plan(root, family, config)
    family.geometry = geometry  # SVD's time ids and LTX's rotary scale read the fps
    episodes = geometry.pop("episodes")
    groups = [episodes[i:i + config.shard_episodes] for i in range(0, len(episodes), config.shard_episodes)]
    clips, short, reused, started = [], [], 0, time.perf_counter()
    for s, group in enumerate(groups):
        path = folder / f"shard-{s:05d}.safetensors"
        if path.is_file():
            with safe_open(path, framework="pt") as f:
                meta = json.loads(f.metadata()["clips"])
            reused += 1
        else:
            cut = {index: clips_of_episode(source, index, geometry, config) for index in group}
            meta = encode_shard(path, [c for index in group for c in cut[index]], family, device)
        clips += meta
        short += [index for index in group if not any(c["episode"] == index for c in meta)]
    geometry["too_short"] = short
    log(f"{len(clips)} clips of {geometry['num_frames']} frames at {geometry['model_fps']:g} fps, "
        f"{geometry['height']}x{geometry['width']}, from {len(episodes) - len(short)} episodes ({len(short)} shorter "
        f"than a clip); {len(groups)} shards, {reused} reused, encoded in {time.perf_counter() - started:.1f}s")
    if not any(not c["held_out"] for c in clips):
        raise ValueError(f"finetune: no training clip: every training episode of {root} is shorter than "
                         f"{geometry['num_frames']} frames at {geometry['model_fps']:g} fps (set num_frames or model_fps)")
    tmp = index_path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"key": key, "geometry": geometry, "clips": clips}))
    tmp.replace(index_path)
    return ClipCache(folder, clips), geometry


def collate(clips: list[dict], device: str) -> dict:
    keys = [k for k, v in clips[0].items() if isinstance(v, torch.Tensor)]
    return {k: torch.stack([c[k] for c in clips]).to(device) for k in keys}
