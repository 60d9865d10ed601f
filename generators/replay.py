"""The structure-preserving generator: no video model, the real video with the edit applied to every
frame (editors/background.py, called as is), so the recorded actions and state stay true.

It has the generators' shape — `samples_per_edit` outputs per input, uids "{uid}-s{k}", seeds from
(source episode, edit, sample), provenance["rank_group"] — so a rollout spec and a replay spec run
through the same label / verify / sink stages (the labeler has nothing to do: actions are kept).
"""

from __future__ import annotations



from augment.episode import Episode
from augment.stage import Stage, derive_seed
from editors.background import BackgroundStage
from generators.base import edit_of, source_uid_of
from generators.specs import ReplaySpec


class ReplayStage(Stage):
    spec: ReplaySpec

    def setup(self) -> None:
        self.editor = BackgroundStage(self.spec.edit)
        self.editor.setup()

    def __call__(self, episodes: list[Episode]) -> list[Episode]:
        out = []
        for episode in episodes:
            source_uid = source_uid_of(episode)
            edit_id, _ = edit_of(episode)
            seeds = [derive_seed(self.spec.seed, source_uid, edit_id, k) for k in range(self.spec.samples_per_edit)]
            # the backdrop an editor seeded with `seed` draws for its one variant; masks once: the
            # samples differ only in their backdrop
            self.editor.survey(episode, lambda: iter([episode]))
            edited = self.editor.edit(episode, [(derive_seed(seed, episode.uid, 0), episode.uid, {"variant": 0})
                                                for seed in seeds])
            for k, (seed, one) in enumerate(zip(seeds, edited)):
                new = one.replace(uid=f"{episode.uid}-s{k}")
                new.provenance["rank_group"] = f"{source_uid}/{edit_id}"
                new.provenance["generator"] = {"type": "replay", "seed": seed, "sample": k}
                self.record(new, sample=k, seed=seed)
                out.append(new)
        return out
