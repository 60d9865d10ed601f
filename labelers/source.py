"""`type: source`: the structure-preserving mode's labeller. The video was edited around the real
motion, so the recorded actions and state stay true; this stage checks they are there and sound, and
says so in the provenance (a trainer can tell recorded labels from IDM labels)."""

from __future__ import annotations


import numpy as np

from augment.episode import Episode
from augment.stage import Stage
from labelers.specs import SourceLabelSpec


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
