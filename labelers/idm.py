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
            mc_samples = 0 if self.predictor.has_error_head else self.spec.mc_samples
            pred = self.predictor.predict(video, mc_samples, seed)
            keep_state = self.spec.state == "keep" and episode.state is not None
            new = episode.replace(action=pred["action"], state=episode.state if keep_state else pred["state"])
            uncertainty = _uncertainty(pred)
            new.provenance["labels"] = {"actions": "idm", "state": "recorded" if keep_state else "idm",
                                        "checkpoint": self.spec.checkpoint, "uncertainty": uncertainty}
            self.record(new, seed=seed, uncertainty={k: v for k, v in uncertainty.items() if k != "action_per_step"})
            limit = self.spec.max_uncertainty
            if limit is not None and uncertainty["action"] > limit:
                new = self.drop(new, f"IDM action uncertainty {uncertainty['action']:.3f} > {limit}",
                                idm_uncertainty=uncertainty["action"])
            out.append(new)
        return out


def _uncertainty(pred: dict) -> dict:
    """The per-step action uncertainty (step_uncertainty) in normalised units: its mean
    over the episode (what max_uncertainty gates), per dimension, and per step (mean over dimensions)."""
    per_step, method = step_uncertainty(pred)
    out = {"method": method, "action": round(float(per_step.mean()), 5),
           "action_per_dim": np.round(per_step.mean(axis=0), 5).tolist(),
           "action_per_step": np.round(per_step.mean(axis=1), 4).tolist()}
    if "state_spread" in pred:
        s = pred["state_spread"].mean(axis=0)
        out.update(state=round(float(s.mean()), 5), state_per_dim=np.round(s, 5).tolist())
    return out


def step_uncertainty(pred: dict) -> tuple[np.ndarray, str]:
    """The per-step action uncertainty (T, A): with an error head, the std of the label's error it and
    the overlapping windows' disagreement give (labelers/predictor.py); without one, the MC-dropout spread,
    or the windows' disagreement alone."""
    if "action_uncertainty" in pred:
        return pred["action_uncertainty"], "error-head"
    if "action_spread" in pred:
        return pred["action_spread"], "mc-dropout"
    return pred["action_disagreement"], "disagreement"
