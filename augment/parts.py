"""Writing one part: the episodes one writer task received (encoded, or their packets copied), the
records of dropped ones, and a manifest renamed into place last; reading back which parts are
complete. See augment/layout.py for the whole write path."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from augment import stats as stats_lib
from augment.episode import Episode
from augment.stage import is_dropped
from augment.remux import CameraWriter
from augment.layout import STAGING, Layout, atomic_write_text
from augment.storage import Store, as_store

PARTS = f"{STAGING}/parts"


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


class PartWriter:
    """Writes one part: the episodes one writer task received, and the records of dropped ones."""

    def __init__(self, root: str | Path, layout: Layout, run_id: str, writer: dict | None = None, tail=None):
        self.store = as_store(root)
        self.layout = layout
        self.run_id = run_id
        self.writer = writer or {}  # where this part is written (the runner's node id), kept in the manifest
        self.tail = tail  # the per-frame stages run here, chunk by chunk (augment/stream.py StreamTail), or None

    def write(self, rows: Iterable[dict]) -> dict:
        """Encode the rows (an iterable, consumed one at a time) into a new part; return its manifest.
        On an object store the part is written into a local temporary folder and uploaded, its
        manifest last: the mp4 muxer seeks back to write its index, which an object cannot take."""
        part = f"part-{self.run_id}-{uuid.uuid4().hex[:8]}"
        if not self.store.local:
            with tempfile.TemporaryDirectory(prefix="augment-part-") as tmp:
                manifest = self._write(part, Path(tmp), rows)
                for path in sorted(Path(tmp).rglob("*")):
                    if path.is_file():
                        self.store.upload(path, f"{PARTS}/{part}/{path.relative_to(tmp).as_posix()}")
                self.store.write_text(f"{PARTS}/{part}/manifest.json", json.dumps(manifest))
                return manifest
        part_dir = self.store.path / PARTS / part
        part_dir.mkdir(parents=True)
        try:
            manifest = self._write(part, part_dir, rows)
        except BaseException:
            shutil.rmtree(part_dir, ignore_errors=True)  # a half-written part only takes room (a full disk's)
            raise
        atomic_write_text(part_dir / "manifest.json", json.dumps(manifest))
        return manifest

    def _write(self, part: str, part_dir: Path, rows: Iterable[dict]) -> dict:
        videos = {k: CameraWriter(part_dir / "videos" / f"{k}.mp4", self.layout.fps, s)
                  for k, s in self.layout.video.items()}
        tables, kept, dropped = [], [], []
        for row in rows:
            if row["dropped"]:
                dropped.append({"uid": row["uid"], "source_uid": row["source_uid"], "share": row["share"],
                                **json.loads(row["dropped"])})
                continue
            items = [(Episode.from_bytes(row["episode"]), row["source_uid"], row["share"])]
            if self.tail is not None:
                items = self.tail.run(items[0][0], row["source_uid"], row["share"], part_dir / "stream")
            for episode, source_uid, share in items:
                entry = {"uid": episode.uid, "source_uid": source_uid, "share": share}
                if is_dropped(episode):
                    record = {"reason": episode.provenance["dropped"], "provenance": episode.provenance}
                    dropped.append({**entry, **json.loads(json.dumps(record))})
                else:
                    kept.append(self._write_episode(episode, entry, videos, tables))
                for segment in episode.passthrough.values():
                    if segment.streamed:  # its packets are in the part's file now
                        Path(segment.path).unlink(missing_ok=True)
        for writer in videos.values():
            writer.close()
        shutil.rmtree(part_dir / "stream", ignore_errors=True)
        if tables:
            pq.write_table(pa.concat_tables(tables), part_dir / "data.parquet")
        return {"part": part, "run_id": self.run_id, "episodes": kept, "dropped": dropped,
                "written_at": time.time(), **self.writer}

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
                if segment.streamed:  # packets this writer encoded, not the source's
                    outcome.update(copied=False, why="changed by a per-frame stage, encoded chunk by chunk")
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


def remove_unfinished_parts(store: Store) -> None:
    """Delete parts without a manifest (their writer was killed); only while no writer runs."""
    if store.local:
        for part_dir in (store.path / PARTS).glob("part-*"):
            if not (part_dir / "manifest.json").is_file():
                shutil.rmtree(part_dir, ignore_errors=True)
        return
    files = store.files(PARTS)
    parts = {f.split("/")[2] for f in files}
    finished = {f.split("/")[2] for f in files if f.endswith("/manifest.json")}
    for part in sorted(parts - finished):
        store.delete_dir(f"{PARTS}/{part}")


def read_manifests(store: Store) -> list[dict]:
    """Every finished part's manifest: one listing, then the manifests read (in parallel on a store)."""
    paths = store.glob(f"{PARTS}/part-*/manifest.json")
    return [json.loads(data) for data in store.read_many(paths)]


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

