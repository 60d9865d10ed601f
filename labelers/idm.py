"""`type: idm`: label generated episodes with actions and state from a trained inverse-dynamics model.

The spec stays light (pydantic + json): validating a pipeline reads the checkpoint's config.json to
declare the output features (the IDM's training dataset's "action" and "observation.state"), and only
setup(), inside the worker, imports torch and loads the weights.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from augment.episode import Episode
from augment.stage import Stage, StageSpec, derive_seed
from labelers.config import read_checkpoint_config


class IdmLabelSpec(StageSpec):
    type: Literal["idm"] = "idm"
    checkpoint: str = Field(description="folder written by `augment train-idm` (model.safetensors + config.json)")
    device: str = Field("auto", description="'auto' (cuda if available), 'cpu', 'cuda', 'cuda:1'")
    batch_size: int = Field(256, ge=1, description="windows per forward pass")
    mc_samples: int = Field(8, ge=0, description="MC-dropout passes for the uncertainty (0 or 1: none)")
    state: Literal["predict", "keep"] = Field(
        "predict", description="'keep': keep an episode's own state when it has one (e.g. replayed real motion)")
    cameras: dict[str, str] | None = Field(
        None, description="the IDM's camera -> the episode's camera, when the generator names them differently")
    max_uncertainty: float | None = Field(
        None, gt=0, description="drop episodes whose mean action spread (normalised units) exceeds this")
    seed: int = Field(0, description="seeds the MC-dropout passes, with the episode uid")

    stage_class = "labelers.idm:IdmLabelStage"
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


class IdmLabelStage(Stage):
    spec: IdmLabelSpec

    def setup(self) -> None:
        from labelers.predictor import IdmPredictor

        self.predictor = IdmPredictor.load(self.spec.checkpoint, self.spec.device, self.spec.batch_size)

    def __call__(self, episodes: list[Episode]) -> list[Episode]:
        out = []
        for episode in episodes:
            frames = episode.frames
            if self.spec.cameras:
                missing = [v for v in self.spec.cameras.values() if v not in frames]
                if missing:
                    raise ValueError(f"idm stage: episode {episode.uid} has no camera(s) {missing} named in "
                                     f"`cameras`; it has {sorted(frames)}")
                frames = {model_key: frames[key] for model_key, key in self.spec.cameras.items()}
            video = self.predictor.frames_to_video(frames, episode.uid)
            seed = derive_seed(self.spec.seed, episode.uid)
            pred = self.predictor.predict(video, self.spec.mc_samples, seed)
            keep_state = self.spec.state == "keep" and episode.state is not None
            new = episode.replace(action=pred["action"], state=episode.state if keep_state else pred["state"])
            uncertainty = _uncertainty(pred)
            new.provenance["labels"] = {"actions": "idm", "state": "recorded" if keep_state else "idm",
                                        "checkpoint": self.spec.checkpoint, "uncertainty": uncertainty}
            self.record(new, seed=seed, uncertainty=uncertainty)
            limit = self.spec.max_uncertainty
            if limit is not None and uncertainty and uncertainty["action"] > limit:
                new = self.drop(new, f"IDM action uncertainty {uncertainty['action']:.3f} > {limit}",
                                idm_uncertainty=uncertainty["action"])
            out.append(new)
        return out


def _uncertainty(pred: dict) -> dict:
    """Mean MC-dropout spread per dimension and overall, in normalised units; {} without MC passes."""
    if "action_spread" not in pred:
        return {}
    a, s = pred["action_spread"].mean(axis=0), pred["state_spread"].mean(axis=0)
    return {"method": "mc-dropout", "action": round(float(a.mean()), 5), "state": round(float(s.mean()), 5),
            "action_per_dim": np.round(a, 5).tolist(), "state_per_dim": np.round(s, 5).tolist()}
