"""Writing LeRobot v3.0 datasets in parallel parts, committed once at the end.

Layout while a job runs (nothing here looks like a dataset yet):
    ROOT/.augment/parts/part-<run>-<id>/{data.parquet, videos/<camera>.mp4, manifest.json}
Each writer task encodes its own part; manifest.json is renamed into place last, so a part without
one is unfinished and ignored. The commit then gives every episode its final index, writes the
data files and meta/ (episodes, tasks, stats, info.json last), hard-links the videos into
videos/<camera>/chunk-XXX/file-YYY.mp4 and drops a completion marker. A job killed before that
leaves no meta/info.json, so no loader mistakes it for a dataset; a rerun reuses the finished parts.

This module is Ray-free: augment/runner.py wraps it in a Ray Datasink.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from augment import stats as stats_lib
from augment.episode import VISUAL_DTYPES, Episode, frame_shape, numeric_features
from augment.remux import CameraWriter
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


def _episode_arrays(episode: Episode, layout: Layout) -> dict[str, np.ndarray]:
    arrays = {"observation.state": episode.state, "action": episode.action, **episode.extras}
    out = {}
    for key in layout.numeric_keys():
        arr = arrays.get(key)
        if arr is None:
            raise ValueError(f"episode {episode.uid}: no values for feature {key!r}, which the output dataset has")
        want = tuple(layout.features[key]["shape"])
        try:
            arr = np.asarray(arr, dtype=layout.features[key]["dtype"]).reshape(len(arr), *want)
        except ValueError:
            raise ValueError(f"episode {episode.uid}: feature {key!r} has shape {np.shape(arr)[1:]} per frame, "
                             f"the dataset declares {list(want)}") from None
        out[key] = arr
    return out


def _column(arr: np.ndarray, arrow_type: pa.DataType) -> pa.Array:
    """(T, *shape) values as a column of the schema's type (scalar, fixed-size list, or nested lists)."""
    if pa.types.is_fixed_size_list(arrow_type):
        flat = pa.array(arr.reshape(-1), type=arrow_type.value_type)
        return pa.FixedSizeListArray.from_arrays(flat, type=arrow_type)
    if isinstance(arrow_type, pa.ExtensionType):  # lerobot's 2-D..5-D features (datasets' ArrayND)
        return pa.ExtensionArray.from_storage(arrow_type, pa.array(arr.tolist(), type=arrow_type.storage_type))
    if pa.types.is_list(arrow_type):
        return pa.array(arr.tolist(), type=arrow_type)
    return pa.array(arr.reshape(len(arr)), type=arrow_type)


def _png_cells(frames: np.ndarray) -> list[dict]:
    import io

    from PIL import Image

    cells = []
    for image in frames:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG")
        cells.append({"bytes": buf.getvalue(), "path": None})
    return cells


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(text)
    os.replace(tmp, path)


class PartWriter:
    """Writes one part: the episodes one writer task received, and the records of dropped ones."""

    def __init__(self, root: Path, layout: Layout, run_id: str):
        self.root = Path(root)
        self.layout = layout
        self.run_id = run_id

    def write(self, rows: Iterable[dict]) -> dict:
        """Encode the rows (an iterable, consumed one at a time) into a new part; return its manifest."""
        part = f"part-{self.run_id}-{uuid.uuid4().hex[:8]}"
        part_dir = self.root / STAGING / "parts" / part
        part_dir.mkdir(parents=True)
        try:
            return self._write(part, part_dir, rows)
        except BaseException:
            shutil.rmtree(part_dir, ignore_errors=True)  # a half-written part only takes room (a full disk's)
            raise

    def _write(self, part: str, part_dir: Path, rows: Iterable[dict]) -> dict:
        videos = {k: CameraWriter(part_dir / "videos" / f"{k}.mp4", self.layout.fps, s)
                  for k, s in self.layout.video.items()}
        tables, kept, dropped = [], [], []
        for row in rows:
            entry = {"uid": row["uid"], "source_uid": row["source_uid"], "share": row["share"]}
            if row["dropped"]:
                dropped.append({**entry, **json.loads(row["dropped"])})
                continue
            episode = Episode.from_bytes(row["episode"])
            kept.append(self._write_episode(episode, entry, videos, tables))
        for writer in videos.values():
            writer.close()
        if tables:
            pq.write_table(pa.concat_tables(tables), part_dir / "data.parquet")
        manifest = {"part": part, "run_id": self.run_id, "episodes": kept, "dropped": dropped,
                    "written_at": time.time()}
        _atomic_write_text(part_dir / "manifest.json", json.dumps(manifest))
        return manifest

    def _write_episode(self, episode: Episode, entry: dict, videos: dict, tables: list) -> dict:
        layout, n = self.layout, episode.length
        copyable = {k: s for k, s in episode.passthrough.items() if k in videos}
        missing = [k for k in layout.cameras if k not in episode.frames and k not in copyable]
        if missing:
            raise ValueError(f"episode {episode.uid}: no frames for camera(s) {missing}")
        ep_stats = {}
        spans = {}
        columns = {}
        for key in layout.cameras:
            frames, segment = episode.frames.get(key), copyable.get(key)
            if segment is not None:  # the source's packets, copied when they can be (augment/remux.py)
                spans[key], outcome = videos[key].append(frames, segment)
                episode.provenance.setdefault("video", {})[key] = outcome  # updated in place until the part closes
                ep_stats[key] = (stats_lib.image_stats(frames) if segment.stats is None
                                 else {s: np.asarray(v) for s, v in segment.stats.items()})
                continue
            if tuple(frames.shape[1:3]) != layout.frame_shape(key):
                raise ValueError(
                    f"episode {episode.uid}: camera {key} frames are {frames.shape[1:3]}, the dataset's are "
                    f"{layout.frame_shape(key)}; a stage that changes resolution must resize back"
                )
            if key in videos:
                spans[key], _ = videos[key].append(frames, None)
            else:
                columns[key] = pa.array(_png_cells(frames), type=layout.schema.field(key).type)
            ep_stats[key] = stats_lib.image_stats(frames)
        for key, arr in _episode_arrays(episode, layout).items():
            columns[key] = _column(arr, layout.schema.field(key).type)
            ep_stats[key] = stats_lib.vector_stats(arr)
        frame_index = np.arange(n, dtype=np.int64)
        timestamp = (frame_index / layout.fps).astype(np.float32)
        columns["timestamp"] = _column(timestamp, layout.schema.field("timestamp").type)
        columns["frame_index"] = _column(frame_index, layout.schema.field("frame_index").type)
        columns["augment_uid"] = pa.array([episode.uid] * n)
        ep_stats["timestamp"] = stats_lib.vector_stats(timestamp)
        ep_stats["frame_index"] = stats_lib.vector_stats(frame_index)
        tables.append(pa.table(columns))
        return {**entry, "length": n, "task": episode.task, "video": spans,
                "stats": stats_lib.to_json(ep_stats), "provenance": episode.provenance}


# ---------------------------------------------------------------------------------------------
# Reading back what the parts hold, and committing


def remove_unfinished_parts(root: Path) -> None:
    """Delete parts without a manifest (their writer was killed); only while no writer runs."""
    for part_dir in (Path(root) / STAGING / "parts").glob("part-*"):
        if not (part_dir / "manifest.json").is_file():
            shutil.rmtree(part_dir, ignore_errors=True)


def read_manifests(root: Path) -> list[dict]:
    parts = sorted((Path(root) / STAGING / "parts").glob("part-*/manifest.json"))
    return [json.loads(p.read_text()) for p in parts]


def select_complete(manifests: list[dict]) -> tuple[list[tuple[dict, dict]], list[dict], set[str]]:
    """Pick, per source episode, the newest run whose outputs (kept + dropped) add up to the whole
    episode; return (kept (part, entry) pairs, dropped entries, done source uids).

    Each output carries its `share` of its source episode (a stage that makes N outputs gives each
    1/N of its input's share), so a source episode is done exactly when its shares sum to 1. This is
    what lets a rerun skip finished episodes and redo half-written ones without duplicates.
    """
    by_source: dict[str, dict[str, list]] = {}
    for manifest in manifests:
        for entry in manifest["episodes"]:
            by_source.setdefault(entry["source_uid"], {}).setdefault(manifest["run_id"], []).append((manifest, entry))
        for entry in manifest["dropped"]:
            by_source.setdefault(entry["source_uid"], {}).setdefault(manifest["run_id"], []).append((None, entry))
    kept, dropped, done = [], [], set()
    for source_uid, runs in by_source.items():
        for run_id in sorted(runs, reverse=True):
            items = runs[run_id]
            if sum(Fraction(e["share"]) for _, e in items) == 1:
                done.add(source_uid)
                kept.extend((m, e) for m, e in items if m is not None)
                dropped.extend(e for m, e in items if m is None)
                break
    return kept, dropped, done


def rank(kept: list[tuple[dict, dict]], top_k: int) -> tuple[list[tuple[dict, dict]], list[dict]]:
    """Best-of-N: per rank group (provenance["rank_group"], default the source episode), keep the
    top_k episodes by provenance["scores"]["total"]; the rest are dropped with their rank."""
    groups: dict[str, list[tuple[dict, dict]]] = {}
    for item in kept:
        prov = item[1]["provenance"]
        groups.setdefault(prov.get("rank_group", item[1]["source_uid"]), []).append(item)
    survivors, dropped = [], []
    for group, items in groups.items():
        items.sort(key=lambda it: (-it[1]["provenance"].get("scores", {}).get("total", float("-inf")), it[1]["uid"]))
        survivors.extend(items[:top_k])
        for position, (_, entry) in enumerate(items[top_k:], start=top_k + 1):
            scores = entry["provenance"].get("scores", {})
            reason = {"stage": "rank", "reason": f"rank {position} of {len(items)} in {group} (top_k={top_k})",
                      "scores": scores}
            dropped.append({**entry, "reason": reason})
    return survivors, dropped


def commit(root: Path, layout: Layout, top_k: int | None = None, extra_meta: dict[str, str] | None = None,
           report: Callable[[dict], dict] | None = None) -> dict:
    """Turn the finished parts under root into a LeRobot v3.0 dataset. Returns a summary.

    report(summary) -> the job report, written to meta/augment_report.json before the completion
    marker: a job killed anywhere in here is not finished, and its rerun commits again."""
    root = Path(root)
    kept, dropped, done = select_complete(read_manifests(root))
    if top_k is not None:
        kept, ranked_out = rank(kept, top_k)
        dropped = dropped + ranked_out
    for stale in ("meta/info.json", COMPLETE_MARKER):
        (root / stale).unlink(missing_ok=True)  # from here on, the folder does not look finished
    remove_ours(root, keep_staging=True)  # a user's own files under meta/ etc. survive a re-commit
    (root / "meta").mkdir(parents=True, exist_ok=True)

    # Group episodes by part (one data file and one video file per camera each), in uid order.
    parts: dict[str, tuple[dict, list[dict]]] = {}
    for manifest, entry in kept:
        parts.setdefault(manifest["part"], (manifest, []))[1].append(entry)
    ordered = sorted(parts.values(), key=lambda p: min(e["uid"] for e in p[1]))

    tasks: dict[str, int] = {}
    episode_rows, all_stats = [], []
    episode_index = frame_offset = 0
    for file_number, (manifest, entries) in enumerate(ordered):
        chunk, file = divmod(file_number, CHUNKS_SIZE)
        part_dir = root / STAGING / "parts" / manifest["part"]
        table = pq.read_table(part_dir / "data.parquet")
        wanted = {e["uid"] for e in entries}
        order = [e for e in manifest["episodes"] if e["uid"] in wanted]  # file order
        pieces = []
        for entry in order:
            rows = table.filter(pc.equal(table["augment_uid"], entry["uid"])).drop(["augment_uid"])
            n = entry["length"]
            task_index = tasks.setdefault(entry["task"], len(tasks))
            index = np.arange(frame_offset, frame_offset + n, dtype=np.int64)
            rows = rows.append_column("episode_index", pa.array(np.full(n, episode_index, dtype=np.int64)))
            rows = rows.append_column("index", pa.array(index))
            rows = rows.append_column("task_index", pa.array(np.full(n, task_index, dtype=np.int64)))
            pieces.append(rows)
            ep_stats = _stats_from_json(entry["stats"])
            ep_stats["episode_index"] = stats_lib.vector_stats(np.full(n, episode_index))
            ep_stats["index"] = stats_lib.vector_stats(index)
            ep_stats["task_index"] = stats_lib.vector_stats(np.full(n, task_index))
            all_stats.append(ep_stats)
            row = {"episode_index": episode_index, "tasks": [entry["task"]], "length": n,
                   "data/chunk_index": chunk, "data/file_index": file,
                   "dataset_from_index": frame_offset, "dataset_to_index": frame_offset + n}
            for key in layout.video:
                start, stop = entry["video"][key]
                row.update({f"videos/{key}/chunk_index": chunk, f"videos/{key}/file_index": file,
                            f"videos/{key}/from_timestamp": start, f"videos/{key}/to_timestamp": stop})
            for key, values in ep_stats.items():
                for stat, value in values.items():
                    row[f"stats/{key}/{stat}"] = np.asarray(value).tolist()
            row["meta/episodes/chunk_index"] = 0
            row["meta/episodes/file_index"] = 0
            row["augment/uid"] = entry["uid"]
            row["augment/provenance"] = json.dumps(entry["provenance"])
            episode_rows.append(row)
            episode_index += 1
            frame_offset += n
        data_path = root / DATA_PATH.format(chunk_index=chunk, file_index=file)
        data_path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.concat_tables(pieces)
        pq.write_table(pa.Table.from_arrays([table[name] for name in layout.schema.names], schema=layout.schema),
                       data_path)
        for key in layout.video:
            dest = root / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
            dest.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(part_dir / "videos" / f"{key}.mp4", dest)

    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    if episode_rows:
        pq.write_table(pa.Table.from_pylist(episode_rows), root / "meta/episodes/chunk-000/file-000.parquet")
    # lerobot reads tasks.parquet with pandas, the task text being the index.
    task_frame = pd.DataFrame({"task_index": np.array(list(tasks.values()), dtype=np.int64)},
                              index=pd.Index(list(tasks.keys()), name="task"))
    task_frame.to_parquet(root / "meta" / "tasks.parquet")
    (root / "meta" / "stats.json").write_text(
        json.dumps(stats_lib.to_json(stats_lib.aggregate(all_stats)) if all_stats else {}, indent=2)
    )
    for name, text in (extra_meta or {}).items():
        (root / "meta" / name).write_text(text)

    info = {
        "codebase_version": "v3.0", "robot_type": layout.robot_type, "total_episodes": episode_index,
        "total_frames": frame_offset, "total_tasks": len(tasks), "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": 100, "video_files_size_in_mb": 200, "fps": layout.fps,
        "splits": {"train": f"0:{episode_index}"}, "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if layout.video else None, "features": layout.features,
    }
    _atomic_write_text(root / "meta" / "info.json", json.dumps(info, indent=4))
    summary = {"episodes": episode_index, "frames": frame_offset, "tasks": len(tasks),
               "dropped": dropped, "source_episodes_done": sorted(done)}
    if report is not None:
        summary["report"] = report(summary)
        _atomic_write_text(root / REPORT, json.dumps(summary["report"], indent=2))
    marker = {k: v for k, v in summary.items() if k != "report"}
    _atomic_write_text(root / COMPLETE_MARKER, json.dumps({"committed_at": time.time(), **marker}))
    return summary


def _stats_from_json(data: dict) -> dict[str, dict[str, np.ndarray]]:
    return {k: {s: np.asarray(v) for s, v in d.items()} for k, d in data.items()}


def _link_or_copy(src: Path, dest: Path) -> None:
    dest.unlink(missing_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def is_committed(root: Path) -> bool:
    return (Path(root) / COMPLETE_MARKER).is_file() and (Path(root) / "meta" / "info.json").is_file()


# ---------------------------------------------------------------------------------------------
# Ownership: what in an output folder we wrote, so overwrite never deletes anything else

# Paths our commit writes (relative to root), as globs; everything under .augment/ is ours too.
OUR_FILES = ("data/chunk-*/file-*.parquet", "videos/*/chunk-*/file-*.mp4", "meta/info.json", "meta/stats.json",
             "meta/tasks.parquet", "meta/episodes/chunk-*/file-*.parquet", "meta/augment_spec.yaml", REPORT,
             "meta/*.tmp-*")  # _atomic_write_text's temporary, left by a kill mid-write


def read_owner(root: Path) -> dict | None:
    """Our marker's content, or None when the folder carries none (or a broken one): not ours."""
    try:
        owner = json.loads((Path(root) / OWNER_MARKER).read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) and owner.get("tool") == "augment" else None


def write_owner(root: Path, owner: dict) -> None:
    (Path(root) / STAGING).mkdir(parents=True, exist_ok=True)
    _atomic_write_text(Path(root) / OWNER_MARKER, json.dumps({"tool": "augment", **owner}, indent=2))


def foreign_files(root: Path) -> list[str]:
    """Files under root that we did not write (relative paths, sorted)."""
    root = Path(root)
    out = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if path.is_dir() or rel.parts[0] == STAGING or any(rel.match(p) and len(rel.parts) == len(Path(p).parts)
                                                             for p in OUR_FILES):
            continue
        out.append(rel.as_posix())
    return sorted(out)


def remove_ours(root: Path, keep_staging: bool = False) -> None:
    """Delete the files we wrote under data/, videos/, meta/ (and .augment/ unless kept), then the
    folders left empty; anything else stays where it is."""
    root = Path(root)
    for pattern in OUR_FILES:
        for path in root.glob(pattern):
            path.unlink(missing_ok=True)
    for sub in ("data", "videos", "meta"):  # deepest first, so emptied parents go too
        for folder in sorted((p for p in (root / sub).rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            if not any(folder.iterdir()):
                folder.rmdir()
        if (root / sub).is_dir() and not any((root / sub).iterdir()):
            (root / sub).rmdir()
    if not keep_staging:
        shutil.rmtree(root / STAGING, ignore_errors=True)
