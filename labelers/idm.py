"""`type: idm`: label generated episodes with actions and state from a trained inverse-dynamics model.

The spec stays light (pydantic + json): validating a pipeline reads the checkpoint's config.json to
declare the output features (the IDM's training dataset's "action" and "observation.state"), and only
setup(), inside the worker, imports torch and loads the weights.
"""

from __future__ import annotations


import numpy as np

from augment.episode import Episode
from augment.stage import Stage, derive_seed
from labelers.specs import IdmLabelSpec


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
