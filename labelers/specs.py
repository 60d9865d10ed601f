"""The YAML blocks of the labellers (`type:` idm, source).

Every spec of the package lives here and registers itself (augment/registry.py); this module imports
nothing heavier than pydantic, so a spec loads (and `augment --help` starts) without torch. A spec's
`stage_class()` imports its stage module, where the work is done, only when a job builds it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from augment.registry import register
from augment.stage import StageSpec
from labelers.config import read_checkpoint_config


@register
class IdmLabelSpec(StageSpec):
    type: Literal["idm"] = "idm"
    checkpoint: str = Field(description="folder written by `augment train-idm` (model.safetensors + config.json)")
    device: str = Field("auto", description="'auto' (cuda if available), 'cpu', 'cuda', 'cuda:1'")
    batch_size: int = Field(256, ge=1, description="windows per forward pass")
    mc_samples: int = Field(8, ge=0, description=(
        "MC-dropout passes for the uncertainty of checkpoints trained without an error head (0 or 1: the "
        "overlapping windows' disagreement alone); checkpoints with one need no extra pass"))
    state: Literal["predict", "keep"] = Field(
        "predict", description="'keep': keep an episode's own state when it has one (e.g. replayed real motion)")
    cameras: dict[str, str] | None = Field(
        None, description="the IDM's camera -> the episode's camera, when the generator names them differently")
    max_uncertainty: float | None = Field(
        None, gt=0, description=(
            "drop episodes whose mean per-step action uncertainty (normalised units; provenance "
            "labels.uncertainty) exceeds this"))
    seed: int = Field(0, description="seeds the MC-dropout passes, with the episode uid")

    changes_frames = False  # it scores or labels; the frames go on as they came

    @field_validator("checkpoint")
    @classmethod
    def _is_checkpoint(cls, value: str) -> str:
        config = read_checkpoint_config(value)  # raises, naming the folder and the missing file
        if "features" not in config:
            raise ValueError(f"{value}/config.json has no 'features'; retrain with `augment train-idm`")
        return value

    def output_features(self, features: dict) -> dict:
        trained = read_checkpoint_config(self.checkpoint)["features"]
        out = dict(features)
        for key in ("action", "observation.state"):
            if self.state == "keep" and key == "observation.state" and key in features:
                if list(features[key]["shape"]) != list(trained[key]["shape"]):
                    raise ValueError(f"idm stage: state='keep' but the episodes' observation.state has shape "
                                     f"{features[key]['shape']} and the IDM's {trained[key]['shape']}")
                continue
            out[key] = dict(trained[key])
        return out

    @classmethod
    def stage_class(cls):
        from labelers.idm import IdmLabelStage

        return IdmLabelStage


@register
class SourceLabelSpec(StageSpec):
    type: Literal["source"] = "source"
    require_action: bool | None = Field(
        None, description="require recorded actions; null: when the dataset has an `action` feature")
    require_state: bool | None = Field(
        None, description="require the recorded observation.state; null: when the dataset has one")
    on_missing: Literal["error", "drop"] = Field(
        "error", description="an episode without recorded actions: stop the job ('error') or drop it")

    changes_frames = False  # it scores or labels; the frames go on as they came
    reads_frames = False  # it copies the recorded labels
    whole_episode = False  # it checks that labels are there, in any stretch of frames alike

    def required_features(self) -> list[str]:
        return [key for key, required in (("action", self.require_action), ("observation.state", self.require_state))
                if required]

    def resolve(self, features: dict, measure_cameras):
        spec, note = super().resolve(features, measure_cameras)
        # null: require what the dataset records, so the same spec runs on datasets with and without state.
        update = {field: key in features for field, key in (("require_action", "action"),
                                                            ("require_state", "observation.state"))
                  if getattr(spec, field) is None}
        return spec.model_copy(update=update), note

    @classmethod
    def stage_class(cls):
        from labelers.source import SourceLabelStage

        return SourceLabelStage
