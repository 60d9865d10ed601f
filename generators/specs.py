"""The YAML blocks of the video generators (`type:` wan-i2v, cosmos-predict2, ltx-i2v, cogvideox-i2v,
svd, replay).

Every spec of the package lives here and registers itself (augment/registry.py); this module imports
nothing heavier than pydantic, so a spec loads (and `augment --help` starts) without torch. A spec's
`stage_class()` imports its stage module, where the work is done, only when a job builds it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from augment.episode import INDEX_COLUMNS, VISUAL_DTYPES
from augment.registry import register
from augment.stage import StageSpec, StrictSpec
from editors.specs import BackgroundSpec


TEMPLATE_FIELDS = ("task", "edit")


class LoraAdapter(StrictSpec):  # nested blocks are as strict as the stage
    """A LoRA (e.g. robot-fine-tuned weights, as in DreamGen), loaded with the pipeline's load_lora_weights."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="a model id or a local folder / .safetensors file")
    weight_name: str | None = Field(None, description="file inside `path` when it holds several")
    scale: float = Field(1.0, description="adapter weight")
    name: str | None = Field(None, description="adapter name; default lora0, lora1, ...")
    target: Literal["transformer", "transformer_2", "both"] = Field(
        "transformer", description="the denoiser it adapts; Wan 2.2 A14B has two experts: transformer "
                                   "(high noise) and transformer_2 (low noise)")


class GeneratorSpec(StageSpec):
    """Fields shared by the diffusers image-to-video backends. None means: the model's default."""

    model: str = Field(description="a model id (Hugging Face) or a local path saved with save_pretrained")
    dtype: Literal["float32", "float16", "bfloat16"] = "bfloat16"
    device: str = Field("auto", description="'auto' (cuda when available), 'cuda', 'cuda:1', 'cpu'")
    cpu_offload: Literal["none", "model", "sequential"] = "none"
    vae_tiling: bool = False
    vae_slicing: bool = False
    lora: list[LoraAdapter] = Field(default_factory=list)

    camera: str | None = Field(None, description="the camera to generate; may be left out when there is one")
    prompt_template: str = Field("{task}. {edit}", description="placeholders: {task}, {edit}")
    negative_prompt: str | None = None
    guidance_scale: float | None = None
    num_inference_steps: int | None = Field(None, ge=1)
    num_frames: int | None = Field(None, ge=2, description="frames per clip, at the model's fps")
    height: int | None = Field(None, ge=8, description="model resolution; default: chosen from the camera's aspect")
    width: int | None = Field(None, ge=8)
    model_fps: float | None = Field(None, gt=0, description="the fps the model generates at")
    horizon: Literal["source"] | int = Field("source", description="output frames at the dataset's fps")
    max_clips: int = Field(4, ge=1, description="cap on chained clips; a longer horizon is cut short")
    conditioning_frames: int = Field(1, ge=1, description="frames a clip is conditioned on (Cosmos: several)")
    pin_first_frame: bool = Field(True, description="output frame 0 is the edited frame itself, pixel for pixel")
    samples_per_edit: int = Field(1, ge=1, description="best-of-N: rollouts per edited frame")
    batch_samples: bool = Field(False, description="run the first clips of all samples in one pipeline call")
    seed: int = 0

    @field_validator("prompt_template")
    @classmethod
    def _template_fields(cls, value: str) -> str:
        try:
            value.format(**{k: "" for k in TEMPLATE_FIELDS})
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"{value!r}: only the placeholders {{task}} and {{edit}} are known ({e})") from None
        return value

    def output_features(self, features: dict) -> dict:
        """Keep the generated camera, the index columns, and action / state (which the labeler fills);
        the other cameras' real frames and any other numeric feature would contradict the rollout."""
        cameras = [k for k, f in features.items() if f["dtype"] in VISUAL_DTYPES]
        camera = pick_camera(self.camera, cameras, where=f"{self.label}.camera")
        keep = (camera, "action", "observation.state", *INDEX_COLUMNS)
        return {k: f for k, f in features.items() if k in keep}


def pick_camera(camera: str | None, cameras: list[str], where: str) -> str:
    if camera is None:
        if len(cameras) != 1:
            raise ValueError(f"{where}: the episode has cameras {cameras}; name the one to generate")
        return cameras[0]
    if camera not in cameras:
        raise ValueError(f"{where}: camera {camera!r} is not one of {cameras}")
    return camera


@register
class WanSpec(GeneratorSpec):
    type: Literal["wan-i2v"] = "wan-i2v"
    max_sequence_length: int = 512
    guidance_scale_2: float | None = Field(None, description="Wan 2.2 A14B: the low-noise expert's guidance; "
                                                            "default: guidance_scale")

    @classmethod
    def stage_class(cls):
        from generators.wan import WanStage

        return WanStage


@register
class CosmosSpec(GeneratorSpec):
    type: Literal["cosmos-predict2"] = "cosmos-predict2"
    safety_checker: str = Field("guardrail", description="'guardrail' or 'module:Class' of another checker")
    max_sequence_length: int = 512

    @classmethod
    def stage_class(cls):
        from generators.cosmos import CosmosStage

        return CosmosStage


@register
class LTXSpec(GeneratorSpec):
    type: Literal["ltx-i2v"] = "ltx-i2v"
    max_sequence_length: int = 128
    decode_timestep: float = Field(0.0, description="0.05 for the 0.9.1+ checkpoints with a timestep-aware VAE")

    @classmethod
    def stage_class(cls):
        from generators.ltx import LTXStage

        return LTXStage


@register
class CogVideoXSpec(GeneratorSpec):
    type: Literal["cogvideox-i2v"] = "cogvideox-i2v"
    max_sequence_length: int = 226
    use_dynamic_cfg: bool = False

    @classmethod
    def stage_class(cls):
        from generators.cogvideox import CogVideoXStage

        return CogVideoXStage


@register
class SVDSpec(GeneratorSpec):
    type: Literal["svd"] = "svd"
    min_guidance_scale: float = 1.0
    max_guidance_scale: float = 3.0
    motion_bucket_id: int = Field(127, ge=0, description="more motion when higher")
    noise_aug_strength: float = Field(0.02, ge=0)
    decode_chunk_size: int | None = Field(None, ge=1, description="frames decoded at once; lower saves memory")

    @classmethod
    def stage_class(cls):
        from generators.svd import SVDStage

        return SVDStage


@register
class ReplaySpec(StageSpec):
    type: Literal["replay"] = "replay"
    edit: BackgroundSpec = Field(default_factory=BackgroundSpec, description="the background edit's settings")
    samples_per_edit: int = Field(1, ge=1)
    seed: int = 0

    @field_validator("edit")
    @classmethod
    def _one_variant(cls, value: BackgroundSpec) -> BackgroundSpec:
        if value.variants != 1:
            raise ValueError("edit.variants: use samples_per_edit for several outputs per episode")
        return value

    @classmethod
    def stage_class(cls):
        from generators.replay import ReplayStage

        return ReplayStage
