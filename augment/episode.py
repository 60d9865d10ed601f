"""The unit of work that flows between stages: one episode, all of its frames in memory."""

from __future__ import annotations

import copy
import pickle
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Columns lerobot derives per frame; the sink writes them anew, so they are not episode data.
INDEX_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")
# Feature dtypes that are cameras: "video" (an mp4 per camera) or "image" (PNG bytes in the parquet).
VISUAL_DTYPES = ("video", "image")


@dataclass(frozen=True)
class VideoSegment:
    """Where a camera's frames of an episode are, still encoded: `frames` frames of the mp4 at `path`
    from `start` seconds. An episode carries one per camera that no stage has changed, so the sink
    copies the encoded packets instead of re-encoding (augment/remux.py). `stats`: the source's
    per-episode stats of the camera (lerobot's layout), so the frames need not be decoded to write them."""

    path: str
    start: float
    frames: int
    stats: dict | None = None
    streamed: bool = False  # encoded by this job's writer chunk by chunk (augment/stream.py), not the source's


def numeric_features(features: dict) -> list[str]:
    """The per-frame values an episode carries (state, action, rewards, extras): no camera, text or index column."""
    return [k for k, f in features.items() if f["dtype"] not in (*VISUAL_DTYPES, "string") and k not in INDEX_COLUMNS]


def episode_uid(index: int) -> str:
    """The uid of a source episode (its outputs' uids extend it: "ep000003-bg1")."""
    return f"ep{index:06d}"


def resize_frames(frames: np.ndarray, height: int, width: int, interpolation: int | None = None) -> np.ndarray:
    """(T, H, W, C) frames at another size; by default area averaging to shrink, bicubic to grow."""
    import cv2

    if frames.shape[1:3] == (height, width):
        return frames
    if interpolation is None:
        interpolation = cv2.INTER_AREA if height * width < frames.shape[1] * frames.shape[2] else cv2.INTER_CUBIC
    return np.stack([cv2.resize(f, (width, height), interpolation=interpolation) for f in frames])


def frame_shape(feature: dict) -> tuple[int, int]:
    """(height, width) of a camera feature: lerobot writes (height, width, channels), some datasets
    (channels, height, width) with names saying so."""
    shape, names = feature["shape"], feature.get("names") or []
    return tuple(shape[1:3]) if names and names[0] in ("channels", "channel") else tuple(shape[:2])


@dataclass
class Episode:
    """One robot episode.

    frames:     camera key -> uint8 array (T, H, W, 3); keys are the dataset's feature names
                ("observation.images.top").
    state:      float32 (T, S) or None when the dataset has no "observation.state".
    action:     float32 (T, A) or None when the dataset has no "action" (e.g. before labelling).
    extras:     any other per-frame numeric feature, kept as (T, ...) arrays and written back as is.
    task:       the natural-language task.
    fps:        frames per second; timestamps are always frame_index / fps.
    uid:        a stable, unique name ("ep000012", "ep000012-bg1-s0"); the sink orders by it and a
                rerun skips the uids that are already written.
    provenance: where it came from and what was done to it (JSON-serialisable); stages append to
                provenance["stages"] and may write provenance["scores"].
    passthrough: camera key -> VideoSegment, for cameras whose frames are still the source's; such a
                camera may be left out of `frames` when no stage reads it (it is then never decoded).
                The runner drops a camera's entry after a stage that declares it changes that camera.
    surfaces:   camera key -> bool (H, W), the work surface (the table the objects rest on) found on
                the source's own frames by an edit that kept it pixel for pixel (`background`'s survey),
                so a later edit of the table (`surface`) need not find it again on frames whose new
                backdrop may look like a table. The runner drops a camera's entry after a stage that
                changes that camera, unless the stage says it keeps it (Stage.keeps_surfaces).
    """

    frames: dict[str, np.ndarray]
    task: str
    fps: int
    uid: str
    state: np.ndarray | None = None
    action: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    passthrough: dict[str, VideoSegment] = field(default_factory=dict)
    surfaces: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def length(self) -> int:
        for arr in (*self.frames.values(), self.state, self.action, *self.extras.values()):
            if arr is not None:
                return int(arr.shape[0])
        return next((s.frames for s in self.passthrough.values()), 0)

    def validate(self) -> None:
        """Fail early, naming the field, when a stage hands on something the sink cannot write."""
        n = self.length
        for key, arr in self.frames.items():
            if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
                raise ValueError(
                    f"episode {self.uid}: frames[{key!r}] must be uint8 (T, H, W, 3), "
                    f"got {arr.dtype} {arr.shape}"
                )
        named = {f"frames[{k!r}]": v for k, v in self.frames.items()}
        named.update({"state": self.state, "action": self.action})
        named.update({f"extras[{k!r}]": v for k, v in self.extras.items()})
        for name, arr in named.items():
            if arr is not None and arr.shape[0] != n:
                raise ValueError(f"episode {self.uid}: {name} has {arr.shape[0]} frames, expected {n}")
        for key, segment in self.passthrough.items():
            if segment.frames != n:
                raise ValueError(f"episode {self.uid}: camera {key!r} is passed through with its source's "
                                 f"{segment.frames} frames, the episode has {n}; a stage that changes the "
                                 "length must declare that it changes every camera (StageSpec.changed_cameras)")
        for key, surface in self.surfaces.items():
            if surface.dtype != bool or surface.ndim != 2:
                raise ValueError(f"episode {self.uid}: surfaces[{key!r}] must be bool (H, W), got {surface.dtype} "
                                 f"{surface.shape}")
        if self.fps <= 0:
            raise ValueError(f"episode {self.uid}: fps must be positive, got {self.fps}")

    def replace(self, **changes: Any) -> Episode:
        """A copy with some fields changed; provenance is deep-copied so stages never share it."""
        fields = {
            "frames": dict(self.frames),
            "task": self.task,
            "fps": self.fps,
            "uid": self.uid,
            "state": self.state,
            "action": self.action,
            "extras": dict(self.extras),
            "provenance": copy.deepcopy(self.provenance),
            "passthrough": dict(self.passthrough),
            "surfaces": dict(self.surfaces),
        }
        fields.update(changes)
        return Episode(**fields)

    def add_stage_record(self, record: dict[str, Any]) -> None:
        self.provenance.setdefault("stages", []).append(record)

    # Transport between processes: pickle protocol 5 keeps the arrays as raw buffers.
    def to_bytes(self) -> bytes:
        return pickle.dumps(self, protocol=5)

    @staticmethod
    def from_bytes(data: bytes) -> Episode:
        episode = pickle.loads(data)
        if not isinstance(episode, Episode):
            raise TypeError(f"expected a pickled Episode, got {type(episode).__name__}")
        return episode
