"""What every image-to-video generator shares; each backend module only says how to load its diffusers
pipeline and how to call it for one clip.

The flow for one input episode (an edited first frame on the generated camera):
    prompt    the spec's template filled with the episode's task and the edit's description
    size      a model resolution near the model's pixel budget with the camera's aspect, on the model's
              multiples; the output is resized back to the camera's resolution
    clips     the model runs at its own fps; enough clips are chained (each conditioned on the last
              frame(s) of the one before, up to `max_clips`) to cover the horizon, then the frames are
              resampled to the dataset's fps so frame_index / fps is a true timestamp
    best-of-N `samples_per_edit` rollouts, seeds derived from (source episode, edit, sample), grouped
              for ranking by provenance["rank_group"] = "{source uid}/{edit id}"

Generated episodes keep one camera and have no true actions or state yet: action and state are None
(the inverse-dynamics labeler fills them), extras are dropped. `output_features` says the same to the
sink. This module imports no torch at import time: a spec is validated without loading diffusers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from augment.episode import Episode, episode_uid, resize_frames
from augment.stage import Stage, derive_seed
from generators.specs import GeneratorSpec, pick_camera


def render_prompt(template: str, task: str, edit: str) -> str:
    text = template.format(task=task.strip().rstrip("."), edit=edit.strip().rstrip("."))
    return " ".join(text.split()).strip(" .") + ("." if text.strip() else "")


def edit_of(episode: Episode) -> tuple[str, str]:
    """(id, description) of the edit this episode carries, from the record every editor writes
    (Stage.record_edit); an unedited episode is its own edit, described by nothing."""
    edit = episode.provenance.get("edit") or {}
    return str(edit.get("id", episode.uid)), str(edit.get("description", ""))


def source_uid_of(episode: Episode) -> str:
    index = episode.provenance.get("source", {}).get("episode_index")
    return episode_uid(index) if index is not None else episode.uid


def choose_resolution(height: int, width: int, area: int, multiple: int) -> tuple[int, int]:
    """The model size nearest to `area` pixels with the camera's aspect, both sides on `multiple`."""
    aspect = width / height
    h = math.sqrt(area / aspect)
    w = h * aspect
    return max(multiple, round(h / multiple) * multiple), max(multiple, round(w / multiple) * multiple)


def valid_frame_count(frames: int, step: int) -> int:
    """Video VAEs compress time by `step` after the first frame: counts of the form step*k + 1."""
    return max(step + 1, (frames - 1) // step * step + 1) if step > 1 else frames


def clips_needed(model_frames: int, clip_frames: int, overlap: int, max_clips: int) -> int:
    """Clips so that clip_frames + (n-1)*(clip_frames-overlap) >= model_frames, at most max_clips."""
    extra = max(0, model_frames - clip_frames)
    return min(max_clips, 1 + math.ceil(extra / (clip_frames - overlap)))


def resample_indices(n_out: int, fps_out: float, fps_in: float, n_in: int | None = None) -> np.ndarray:
    """Nearest source frame for each output timestamp i / fps_out (frame 0 maps to frame 0), for as
    many of the n_out timestamps as the n_in source frames cover. Nearest, not blended: a blend of two
    frames is a ghost no camera recorded."""
    idx = np.floor(np.arange(n_out) * fps_in / fps_out + 0.5).astype(int)
    return idx if n_in is None else idx[idx < n_in]


def to_uint8(video: Any) -> np.ndarray:
    """Pipeline output (floats in [0, 1], (F, H, W, 3)) to uint8."""
    arr = np.asarray(video, dtype=np.float32)
    return (arr.clip(0, 1) * 255).round().astype(np.uint8)


class VideoGeneratorStage(Stage):
    """The shared loop. A backend sets the class attributes and implements load() and generate()."""

    spec: GeneratorSpec
    pipeline_class: str = ""          # "diffusers:WanImageToVideoPipeline"
    default_fps: float = 16.0         # the fps the published model was trained at
    default_frames: int = 81
    default_area: int = 480 * 832     # pixel budget of the published model
    uses_prompt: bool = True
    several_conditioning_frames: bool = False  # Cosmos-Predict2 conditions on a few frames, the rest on one

    # ---- what a backend provides -----------------------------------------------------------------
    def load(self, torch_dtype: Any) -> Any:
        """from_pretrained(spec.model, torch_dtype=...); override to add components (Cosmos's checker)."""
        from augment.registry import import_object

        return import_object(self.pipeline_class).from_pretrained(self.spec.model, dtype=torch_dtype)

    def constraints(self) -> tuple[int, int]:
        """(spatial multiple, temporal step) of the loaded pipeline."""
        raise NotImplementedError

    def fixed_resolution(self) -> tuple[int, int] | None:
        """A model that only works at one size (learned positional embeddings) says so here."""
        return None

    def generate(self, conditioning: np.ndarray, prompt: str, seeds: list[int], num_frames: int,
                 height: int, width: int) -> np.ndarray:
        """One clip per seed, all from the same conditioning frames (uint8 (k, h, w, 3) at the model size;
        k == 1 unless the backend takes several): floats in [0, 1], (len(seeds), num_frames, h, w, 3)."""
        raise NotImplementedError

    def common_kwargs(self) -> dict:
        """Spec fields left None fall back to the pipeline's own defaults."""
        kw: dict[str, Any] = {}
        if self.spec.num_inference_steps is not None:
            kw["num_inference_steps"] = self.spec.num_inference_steps
        if self.spec.guidance_scale is not None:
            kw["guidance_scale"] = self.spec.guidance_scale
        if self.spec.negative_prompt is not None and self.uses_prompt:
            kw["negative_prompt"] = self.spec.negative_prompt
        return kw

    def generators(self, seeds: list[int]) -> list:
        import torch

        # CPU generators: the same seed gives the same noise whatever device runs the model.
        return [torch.Generator("cpu").manual_seed(s) for s in seeds]

    # ---- setup: one pipeline per worker ------------------------------------------------------------
    def setup(self) -> None:
        import torch

        from augment.devices import resolve_device

        spec = self.spec
        self.device = resolve_device(spec.device)
        self.torch_dtype = getattr(torch, spec.dtype)
        pipe = self.load(self.torch_dtype)
        if spec.lora:
            self.load_lora(pipe)
        if spec.vae_tiling:
            pipe.vae.enable_tiling()
        if spec.vae_slicing:
            pipe.vae.enable_slicing()
        if spec.cpu_offload == "model":
            pipe.enable_model_cpu_offload(device=self.device)
        elif spec.cpu_offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=self.device)
        else:
            pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe

    def load_lora(self, pipe: Any) -> None:
        if not hasattr(pipe, "load_lora_weights"):
            raise ValueError(f"{self.spec.label}.lora: {type(pipe).__name__} has no LoRA loader in diffusers")
        names = []
        for i, adapter in enumerate(self.spec.lora):
            name = adapter.name or f"lora{i}"
            kwargs = {"weight_name": adapter.weight_name} if adapter.weight_name else {}
            components = ["transformer", "transformer_2"] if adapter.target == "both" else [adapter.target]
            missing = [c for c in components if getattr(pipe, c, None) is None]
            if missing:
                raise ValueError(f"{self.spec.label}.lora[{i}].target: {type(pipe).__name__} from "
                                 f"{self.spec.model!r} has no {' or '.join(missing)} (two experts: Wan 2.2 A14B)")
            for component in components:
                # one name in both experts: set_adapters then scales the adapter in each
                into = {"load_into_transformer_2": True} if component == "transformer_2" else {}
                self.load_one_lora(pipe, i, adapter.path, name, component, **kwargs, **into)
            names.append(name)
        pipe.set_adapters(names, [a.scale for a in self.spec.lora])

    def load_one_lora(self, pipe: Any, i: int, path: str, name: str, component: str, **kwargs) -> None:
        try:
            pipe.load_lora_weights(path, adapter_name=name, **kwargs)
        except (OSError, ValueError) as e:
            # diffusers' own messages name neither the spec field nor the real cause of a missing
            # local path ("in offline mode, you must specify a weight_name"); peft's mismatch error
            # lists module names only.
            missing = "" if Path(path).exists() else (
                " (no such local file or folder; as a model id it is not in the Hugging Face cache)")
            into = type(pipe).__name__ + ("" if component == "transformer" else f".{component}")
            raise ValueError(f"{self.spec.label}.lora[{i}]: cannot load {path!r} into {into}{missing}: {e}") from e

    # ---- the rollout -------------------------------------------------------------------------------
    def model_size(self, camera_h: int, camera_w: int) -> tuple[int, int]:
        multiple, _ = self.constraints()
        fixed = self.fixed_resolution()
        if fixed is not None:
            return fixed
        if self.spec.height is not None or self.spec.width is not None:
            h, w = self.spec.height or camera_h, self.spec.width or camera_w
            if h % multiple or w % multiple:
                raise ValueError(f"{self.spec.label}: height/width {h}x{w} must be multiples of {multiple} "
                                 f"for {type(self.pipe).__name__}")
            return h, w
        return choose_resolution(camera_h, camera_w, self.default_area, multiple)

    def __call__(self, episodes: list[Episode]) -> list[Episode]:
        return [out for episode in episodes for out in self.rollouts(episode)]

    def rollouts(self, episode: Episode) -> list[Episode]:
        spec = self.spec
        camera = pick_camera(spec.camera, list(episode.frames), where=f"{spec.label}.camera (episode {episode.uid})")
        video = episode.frames[camera]
        cam_h, cam_w = video.shape[1:3]
        height, width = self.model_size(cam_h, cam_w)
        _, step = self.constraints()
        clip_frames = valid_frame_count(spec.num_frames or self.default_frames, step)
        model_fps = spec.model_fps or self.default_fps
        if spec.conditioning_frames > 1 and not self.several_conditioning_frames:
            raise ValueError(f"{spec.label}.conditioning_frames: {type(self.pipe).__name__} conditions on one "
                             f"image; got {spec.conditioning_frames}")
        overlap = min(spec.conditioning_frames, clip_frames - 1)

        horizon = episode.length if spec.horizon == "source" else spec.horizon
        model_frames_needed = int(resample_indices(horizon, episode.fps, model_fps)[-1]) + 1
        n_clips = clips_needed(model_frames_needed, clip_frames, overlap, spec.max_clips)

        source_uid = source_uid_of(episode)
        edit_id, edit_text = edit_of(episode)
        prompt = render_prompt(spec.prompt_template, episode.task, edit_text) if self.uses_prompt else ""
        first = resize_frames(video[: min(overlap, len(video))], height, width)
        seeds = [derive_seed(spec.seed, source_uid, edit_id, k) for k in range(spec.samples_per_edit)]

        # First clips: all samples share the conditioning and the prompt, so they can share one call.
        if spec.batch_samples:
            first_clips = list(self.generate(first, prompt, seeds, clip_frames, height, width))
        else:
            first_clips = [self.generate(first, prompt, [s], clip_frames, height, width)[0] for s in seeds]

        outputs = []
        for k, (seed, clip) in enumerate(zip(seeds, first_clips)):
            model_video = to_uint8(clip)
            for c in range(1, n_clips):
                cond = model_video[-overlap:]
                nxt = to_uint8(self.generate(cond, prompt, [derive_seed(seed, c)], clip_frames, height, width)[0])
                model_video = np.concatenate([model_video, nxt[overlap:]])
            picks = resample_indices(horizon, episode.fps, model_fps, len(model_video))
            n_out = len(picks)  # short of the horizon only when max_clips cut the rollout
            frames = resize_frames(model_video[picks], cam_h, cam_w)
            if spec.pin_first_frame:
                frames[0] = video[0]
            new = episode.replace(frames={camera: frames}, uid=f"{episode.uid}-s{k}",
                                  state=None, action=None, extras={})
            new.provenance["rank_group"] = f"{source_uid}/{edit_id}"
            new.provenance["generator"] = {"type": spec.type, "model": spec.model, "seed": seed, "sample": k}
            self.record(new, sample=k, seed=seed, prompt=prompt, camera=camera, model_size=[height, width],
                        model_fps=model_fps, clip_frames=clip_frames, clips=n_clips,
                        horizon=horizon, frames=n_out, cut_short=n_out < horizon)
            outputs.append(new)
        return outputs
