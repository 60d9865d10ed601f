"""Per-frame stages on chunks of an episode: decode a chunk, run the stages on it, encode it, next
chunk; a worker holds a chunk's frames, never an episode's.

A stage says whether it needs whole episodes (StageSpec.whole_episode, True unless it says
otherwise). The per-frame stages after the last whole-episode stage (the tail) run inside the sink's
writer (augment/parts.py), like Ray Data fuses a map into the write that follows it: no episode
of decoded frames is pickled between processes. A camera that only the tail reads or changes is not
decoded by the reader either: the episode carries its encoded segment (Episode.passthrough) and the
writer decodes it a chunk at a time. The stages before, and a whole-episode stage itself, get whole
episodes, as they declare they need.

Each chunk is a short Episode (frames, state, action and extras of frames [start, start + n)) that
goes through the tail's stages as a batch of one (pipeline.RunStage: lineage, shares, validation);
output i of every chunk is a chunk of output i (a stage that makes variants makes them of every
chunk), and the last chunk's provenance is the output's (timings summed over the chunks), so a stage
records there what it gathered over the episode. A camera the tail changes (or one that must be
re-encoded anyway) is encoded chunk by chunk into a file of its own with the output's settings, and
the writer then copies that file's packets into its part like any passed-through camera.

A stage that must look at every frame before it edits any (StageSpec.surveys: background's plate and
motion counts) opens the tail, and its survey() gets the episode's chunks first, as many passes as it
needs (each decodes anew): two passes more over the video, but never the episode in memory.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from augment.episode import VISUAL_DTYPES, Episode, VideoSegment
from augment.stage import is_dropped
from augment.stats import ImageStats
from augment.video import VideoWriter, decode_chunks

# 32 frames of 480x640 RGB are 29 MB per camera, and a stage's own float intermediates are several times
# that (lighting: ~700 MB at 32 frames of two cameras); Ray's workers inherit the variable from the driver.
CHUNK_FRAMES = int(os.environ.get("AUGMENT_CHUNK_FRAMES", 32))


def streamed_cameras(head, features: dict, decoded: list[str], video: dict) -> list[str]:
    """Of the cameras the reader would decode, the video ones that no stage before the tail reads
    or changes: the writer decodes them itself, chunk by chunk."""
    touched = set()
    for stage in head:
        present = [k for k, f in features.items() if f["dtype"] in VISUAL_DTYPES]
        touched.update(stage.read_cameras(present), stage.changed_cameras(present))
        features = stage.output_features(features)
    return [k for k in decoded if k in video and k not in touched]


def _part(episode: Episode, start: int, stop: int, frames: dict[str, np.ndarray]) -> Episode:
    """Frames [start, stop) of an episode as an Episode of its own; times stay with the first chunk."""
    provenance = copy.deepcopy(episode.provenance)
    if start:
        provenance.pop("timings", None)
    cut = lambda a: None if a is None else a[start:stop]  # noqa: E731
    return episode.replace(frames=frames, state=cut(episode.state), action=cut(episode.action),
                           extras={k: cut(v) for k, v in episode.extras.items()}, provenance=provenance,
                           passthrough={})


class _Output:
    """One output episode of the tail, assembled chunk by chunk."""

    def __init__(self, first: Episode, source_uid: str, share: str, n: int):
        self.episode, self.source_uid, self.share, self.n = first, source_uid, share, n  # episode: the latest chunk's
        self.numeric: list[Episode] = []  # every chunk's output, frames dropped (state, action, extras)
        self.frames: dict[str, list[np.ndarray]] = {}  # cameras kept in memory (image cameras)
        self.writers: dict[str, tuple[VideoWriter, ImageStats]] = {}
        self.dropped = None

    def add(self, chunk: Episode, start: int, encode: dict, folder: Path, keep: list[str]) -> None:
        if is_dropped(chunk) and self.dropped is None:
            self.dropped = chunk.provenance["dropped"]
        if start:
            timings = self.episode.provenance.get("timings", {})
            for label, seconds in chunk.provenance.get("timings", {}).items():
                timings[label] = timings.get(label, 0.0) + seconds
            self.episode = chunk.replace(frames={})
            self.episode.provenance["timings"] = timings
        self.numeric.append(chunk.replace(frames={}, provenance={}))
        for key in keep:
            self.frames.setdefault(key, []).append(chunk.frames[key])
        for key, settings in encode.items():
            if key not in self.writers:
                path = folder / f"{uuid.uuid4().hex[:12]}.mp4"
                self.writers[key] = (VideoWriter(path, chunk.fps, settings), ImageStats(self.n))
            writer, stats = self.writers[key]
            writer.append(chunk.frames[key], new_episode=start == 0)
            stats.add(chunk.frames[key], start)

    def finish(self, source: Episode) -> Episode:
        for writer, _ in self.writers.values():
            writer.close()
        episode = self.episode
        if self.dropped is not None:
            episode.provenance["dropped"] = self.dropped
            return episode
        glue = lambda arrays: None if arrays[0] is None else np.concatenate(arrays)  # noqa: E731
        frames = {k: v for k, v in source.frames.items() if k not in self.writers}  # not streamed: as they were
        frames.update({k: np.concatenate(v) for k, v in self.frames.items()})
        passthrough = {k: v for k, v in source.passthrough.items() if k not in self.writers and k not in frames}
        passthrough.update({k: VideoSegment(str(w.path), 0.0, self.n, stats.result(), streamed=True)
                            for k, (w, stats) in self.writers.items()})
        return episode.replace(frames=frames, passthrough=passthrough,
                               state=glue([c.state for c in self.numeric]),
                               action=glue([c.action for c in self.numeric]),
                               extras={k: np.concatenate([c.extras[k] for c in self.numeric]) for k in episode.extras})


class StreamTail:
    """The tail's stages (pipeline.RunStage each, set up once), run on an episode chunk by chunk.

    streamed: the cameras the episode may carry as segments that the tail needs as frames;
    copied:   those whose source packets the sink may copy when the tail leaves them unchanged;
    video:    the output's video settings per camera (Layout.video)."""

    def __init__(self, stages: list, streamed: list[str], copied: list[str], video: dict, chunk: int | None = None):
        self.stages, self.streamed, self.copied, self.video = stages, list(streamed), set(copied), video
        self.chunk = chunk or CHUNK_FRAMES

    def run(self, episode: Episode, source_uid: str, share: str, folder: Path) -> list[tuple[Episode, str, str]]:
        """The tail's outputs of one episode, as (episode, source_uid, share): a camera the tail
        changed (or that cannot be copied) is a segment of a file in `folder`, encoded chunk by chunk."""
        n = episode.length
        lazy = [k for k in self.streamed if k in episode.passthrough and k not in episode.frames]
        cameras = [*episode.frames, *lazy]
        changed = set()
        for run in self.stages:
            changed.update(run.spec.changed_cameras(cameras))
        # Written from frames: what the tail changes, and streamed cameras whose packets cannot be copied.
        encode = {k: self.video[k] for k in cameras if k in self.video and
                  (k in changed or (k in lazy and k not in self.copied))}
        keep = [k for k in cameras if k in changed and k not in self.video]  # image cameras: PNGs need them whole
        measure = {k: ImageStats(n) for k in lazy if k not in encode and episode.passthrough[k].stats is None}
        folder.mkdir(parents=True, exist_ok=True)
        first = self.stages[0] if self.stages and self.stages[0].spec.surveys else None
        if first is not None:
            read = first.spec.read_cameras(cameras)
            first.survey(episode, lambda: (_part(episode, start, stop, frames)
                                           for start, stop, frames in self.chunks(episode, read, lazy, n)))
        outputs: list[_Output] | None = None
        for start, stop, frames in self.chunks(episode, cameras, lazy, n):
            for key, stats in measure.items():
                stats.add(frames[key], start)
            items = [(_part(episode, start, stop, frames), source_uid, share)]
            for run in self.stages:
                items = run.run(items)
            if outputs is None:
                outputs = [_Output(ep, uid, sh, n) for ep, uid, sh in items]
            elif [ep.uid for ep, _, _ in items] != [o.episode.uid for o in outputs]:
                raise RuntimeError(f"stage(s) {[r.spec.label for r in self.stages]} gave other outputs for frames "
                                   f"{start}.. of {episode.uid} than for its first frames; a stage that does "
                                   "not map frames one to one must declare whole_episode = True")
            for out, (ep, _, _) in zip(outputs, items):
                if ep.length != stop - start:
                    raise RuntimeError(f"stage(s) {[r.spec.label for r in self.stages]} changed the number of "
                                       "frames of a chunk; a stage that does must declare whole_episode = True")
                out.add(ep, start, encode, folder, keep)
        for key, stats in measure.items():
            episode.passthrough[key] = dataclasses.replace(episode.passthrough[key], stats=stats.result())
        return [(out.finish(episode), out.source_uid, out.share) for out in outputs]

    def chunks(self, episode: Episode, cameras: list[str], lazy: list[str], n: int):
        """(start, stop, {camera: its frames [start, stop)}) for `cameras`: those in memory sliced, the
        streamed ones (`lazy`) decoded here a chunk at a time."""
        decoders = {k: decode_chunks(s.path, s.start, s.start + n / episode.fps, episode.fps, expected=n,
                                     chunk=self.chunk)
                    for k, s in episode.passthrough.items() if k in lazy and k in cameras}
        for start in range(0, n, self.chunk):
            stop = min(n, start + self.chunk)
            frames = {k: v[start:stop] for k, v in episode.frames.items() if k in cameras}
            frames.update({k: next(d) for k, d in decoders.items()})
            yield start, stop, frames


def remove_streamed(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
