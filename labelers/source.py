"""`type: source`: the structure-preserving mode's labeller. The video was edited around the real
motion, so the recorded actions and state stay true; this stage checks they are there and sound, and
says so in the provenance (a trainer can tell recorded labels from IDM labels)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from augment.episode import Episode
from augment.stage import Stage, StageSpec


class SourceLabelSpec(StageSpec):
    type: Literal["source"] = "source"
    require_action: bool | None = Field(
        None, description="require recorded actions; null: when the dataset has an `action` feature")
    require_state: bool | None = Field(
        None, description="require the recorded observation.state; null: when the dataset has one")
    on_missing: Literal["error", "drop"] = Field(
        "error", description="an episode without recorded actions: stop the job ('error') or drop it")

    stage_class = "labelers.source:SourceLabelStage"
    changes_frames = False  # it scores or labels; the frames go on as they came
    reads_frames = False  # it copies the recorded labels

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


class SourceLabelStage(Stage):
    spec: SourceLabelSpec

    def __call__(self, episodes: list[Episode]) -> list[Episode]:
        out = []
        for episode in episodes:
            problem = self._problem(episode)
            if problem:
                if self.spec.on_missing == "error":
                    raise ValueError(f"source labeller: episode {episode.uid}: {problem}; the structure-preserving "
                                     "mode needs the recorded labels (use `type: idm` for generated motion)")
                out.append(self.drop(episode, problem))
                continue
            labels = {"actions": "none"}
            if episode.action is not None:
                labels = {"actions": "recorded", "action_dims": int(episode.action.shape[1])}
            if episode.state is not None:
                labels.update(state="recorded", state_dims=int(episode.state.shape[1]))
            episode.provenance["labels"] = labels
            self.record(episode, **labels)
            out.append(episode)
        return out

    def _problem(self, episode: Episode) -> str | None:
        named = {}  # null (a spec not resolved against a dataset) counts as required
        if self.spec.require_action is not False:
            named["action"] = episode.action
        if self.spec.require_state is not False:
            named["observation.state"] = episode.state
        for name, values in named.items():
            if values is None:
                return f"has no recorded {name}"
            if values.ndim != 2 or values.shape[0] != episode.length:
                return f"{name} has shape {values.shape}, expected ({episode.length}, D)"
            if not np.isfinite(values).all():
                return f"{name} holds NaN or inf values"
        return None
