"""The output dataset's layout: where things go (LeRobot v3.0 paths, our staging folder and markers)
and what they hold (Layout: fps, features, encodings, the data files' Arrow schema).

A job writes in three steps, each in its own module, all Ray-free (augment/runner.py wraps them):
    augment/parts.py   each writer task encodes its own part under ROOT/.augment/parts/part-<run>-<id>/
                       {data.parquet, videos/<camera>.mp4, manifest.json}; the manifest is renamed into
                       place last, so a part without one is unfinished and ignored;
    augment/commit.py  once every part is written: every episode gets its final index, the data files
                       and meta/ are written (episodes, tasks, stats, info.json, the report), the videos
                       hard-linked into videos/<camera>/chunk-XXX/file-YYY.mp4, and a completion marker
                       dropped last. A job killed before that is not finished; its rerun reuses the
                       finished parts and commits again.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from augment.episode import VISUAL_DTYPES, frame_shape, numeric_features
from augment.video import VideoSettings

STAGING = ".augment"
COMPLETE_MARKER = f"{STAGING}/complete.json"
OWNER_MARKER = f"{STAGING}/owner.json"  # written when we create the folder: only then is it ours
REPORT = "meta/augment_report.json"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
CHUNKS_SIZE = 1000


@dataclass
class Layout:
    """What the output dataset looks like: the source's features, fps and encodings unless overridden."""

    fps: int
    features: dict  # lerobot feature dict, index columns included
    video: dict[str, VideoSettings] = field(default_factory=dict)
    robot_type: str | None = None
    schema: pa.Schema | None = None  # the data files' schema; default: data_schema(features)

    def __post_init__(self) -> None:
        if self.schema is None:
            self.schema = data_schema(self.features)

    @classmethod
    def from_source(cls, info: dict, features: dict, codec: str | None = None,
                    crf: int | None = None, gop: int | None = None, video_files: dict | None = None,
                    schema: pa.Schema | None = None) -> Layout:
        """`features`: the source's, as the stages transform them (StageSpec.output_features);
        `video_files`: one of the source's mp4s per camera, read where info.json leaves settings out;
        `schema`: the data files' schema when known (default: data_schema(features))."""
        features = json.loads(json.dumps(features))
        video = {}
        for key, feat in features.items():
            if feat["dtype"] == "video":
                settings = VideoSettings.from_feature_info(feat.get("info") or {}, (video_files or {}).get(key))
                overrides = {k: v for k, v in (("codec", codec), ("crf", crf), ("gop", gop)) if v is not None}
                if overrides:
                    if "codec" in overrides and overrides["codec"] != settings.codec:
                        overrides.setdefault("preset", 12 if overrides["codec"] == "av1" else None)
                    settings = VideoSettings(**{**settings.__dict__, **overrides})
                    settings.encoder()  # fail now on an unknown codec, not inside a worker
                    h, w = frame_shape(feat)
                    feat["info"] = settings.feature_info(h, w, int(info["fps"]))
                video[key] = settings
        return cls(fps=int(info["fps"]), features=features, video=video, robot_type=info.get("robot_type"),
                   schema=schema)

    @property
    def cameras(self) -> list[str]:
        return [k for k, f in self.features.items() if f["dtype"] in VISUAL_DTYPES]

    def frame_shape(self, key: str) -> tuple[int, int]:
        return frame_shape(self.features[key])

    def numeric_keys(self) -> list[str]:
        return numeric_features(self.features)

    def to_json(self) -> dict:
        # The schema travels as Arrow IPC bytes, so workers need not import lerobot to rebuild it.
        return {"fps": self.fps, "features": self.features, "robot_type": self.robot_type,
                "video": {k: v.__dict__ for k, v in self.video.items()},
                "schema": base64.b64encode(self.schema.serialize().to_pybytes()).decode()}

    @classmethod
    def from_json(cls, data: dict) -> Layout:
        return cls(fps=data["fps"], features=data["features"], robot_type=data.get("robot_type"),
                   video={k: VideoSettings(**v) for k, v in data["video"].items()},
                   schema=pa.ipc.read_schema(pa.py_buffer(base64.b64decode(data["schema"]))))


def data_schema(features: dict) -> pa.Schema:
    """The Arrow schema of the data files, from lerobot's own feature definitions: exactly what
    lerobot writes (shape [1] features as scalars, images as {bytes, path}, the Hugging Face metadata)."""
    from lerobot.datasets.feature_utils import get_hf_features_from_features

    as_loaded = {k: {**f, "shape": tuple(f["shape"])} for k, f in features.items()}  # lerobot compares tuples
    return get_hf_features_from_features(as_loaded).arrow_schema



def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(text)
    os.replace(tmp, path)
