"""Reading episodes from a LeRobot v3.0 dataset, one whole episode at a time.

Why our own reader: the stages need whole episodes, while lerobot's LeRobotDataset and Ray's
read_lerobot both hand out frames (rows), which would have to be regrouped. Reading an episode is
one slice of one parquet file plus one sequential decode of each camera's mp4 segment; lerobot
remains the oracle in the tests.
"""

from __future__ import annotations

import io
import json
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from augment.episode import VISUAL_DTYPES, Episode, VideoSegment, episode_uid, frame_shape, numeric_features
from augment.storage import StorageError, Store
from augment.video import decode_segment


EPISODES_GLOB = "meta/episodes/chunk-*/file-*.parquet"


class DatasetError(ValueError):
    """A dataset folder that cannot be read; the message names the folder or file and the fix."""


class LeRobotSource:
    def __init__(self, root: str | Path, cameras: list[str] | None = None):
        self.store = Store(root)  # a local folder or a URI (s3://...): augment/storage.py
        self.root = self.store.root  # what messages name
        self.info = load_info(self.store)
        visual = [k for k, f in self.info["features"].items() if f["dtype"] in VISUAL_DTYPES]
        if cameras is not None:
            unknown = [c for c in cameras if c not in visual]
            if unknown:
                raise DatasetError(f"{self.root}: unknown camera(s) {unknown}; the dataset has {visual}")
        self.cameras = list(cameras) if cameras is not None else visual
        self._table_cache: tuple[str, object] | None = None
        self._checked_streams: set[tuple[str, str]] = set()

    @property
    def fps(self) -> int:
        return int(self.info["fps"])

    @property
    def features(self) -> dict:
        return self.info["features"]

    def is_video(self, key: str) -> bool:
        return self.features[key]["dtype"] == "video"

    @cached_property
    def episodes(self) -> list[dict]:
        """One dict per episode from meta/episodes (stats columns left out), ordered by episode_index."""
        files = self.store.glob(EPISODES_GLOB)
        if not files:
            raise DatasetError(f"{self.root}: meta/episodes/ has no parquet files; not a complete LeRobot v3.0 dataset")
        rows = []
        for f in files:
            schema = self.store.read_schema(f)
            cols = [c for c in schema.names if not c.startswith("stats/")]
            rows.extend(self.store.read_table(f, columns=cols).to_pylist())
        return sorted(rows, key=lambda r: r["episode_index"])

    def select(self, selection: list[int | str] | None) -> list[int]:
        """Episode indices from a selection like [0, 3, "10:20"] (end excluded); None means all."""
        available = [r["episode_index"] for r in self.episodes]
        if selection is None:
            return available
        have = set(available)
        chosen: list[int] = []
        for item in selection:
            if isinstance(item, str):
                a, _, b = item.partition(":")
                lo = int(a) if a.strip() else 0
                hi = int(b) if b.strip() else max(available) + 1
                picked = [i for i in available if lo <= i < hi]
            else:
                if item not in have:
                    raise DatasetError(
                        f"{self.root}: episode {item} does not exist; the dataset has episodes "
                        f"{min(available)}..{max(available)}"
                    )
                picked = [item]
            chosen.extend(i for i in picked if i not in chosen)
        return chosen

    def _data_table(self, rel: str):
        if self._table_cache is None or self._table_cache[0] != rel:
            try:
                self._table_cache = (rel, self.store.read_table(rel))
            except StorageError:
                raise
            except Exception as e:  # pyarrow raises several types for broken files
                raise DatasetError(f"{self.store.uri(rel)}: cannot read parquet ({e})") from None
        return self._table_cache[1]

    def _rows(self, index: int):
        """(meta/episodes row, data file (its URI), the episode's rows of it)."""
        meta = self.episodes[self._position(index)]
        rel = self.info["data_path"].format(chunk_index=meta["data/chunk_index"], file_index=meta["data/file_index"])
        table = self._data_table(rel)
        data_path = self.store.uri(rel)
        rows = table.filter(pc.equal(table["episode_index"], index))
        n = int(meta["length"])
        if rows.num_rows != n:
            raise DatasetError(f"{data_path}: episode {index} has {rows.num_rows} rows, meta/episodes says {n}")
        return meta, data_path, rows

    def _camera_frames(self, index: int, key: str, meta: dict, data_path: str, rows, keep=None) -> np.ndarray:
        n = int(meta["length"])
        if not self.is_video(key):
            where = f"{data_path}:{key}"
            cells = rows[key].to_pylist()
            frames = _decode_images(cells if keep is None else [cells[i] for i in keep], where)
        else:
            rel = self._video_path(meta, key)
            where = self.store.uri(rel)
            if not self.store.is_file(rel):
                raise DatasetError(f"{where}: video file is missing (episode {index}, camera {key})")
            start = meta[f"videos/{key}/from_timestamp"]
            frames = decode_segment(where, start, start + n / self.fps, self.fps, expected=n, keep=keep)
        declared = frame_shape(self.features[key])
        if frames.shape[1:3] != declared:
            raise DatasetError(f"{where}: camera {key} of episode {index} decodes to {frames.shape[1]}x{frames.shape[2]} "
                               f"frames (height x width), meta/info.json declares {declared[0]}x{declared[1]}")
        return frames

    def video_file(self, index: int, key: str) -> str:
        """The mp4 that holds episode `index` of camera `key`: a local path or a URI."""
        return self.store.uri(self._video_path(self.episodes[self._position(index)], key))

    def _video_path(self, meta: dict, key: str) -> str:
        return self.info["video_path"].format(
            video_key=key, chunk_index=meta[f"videos/{key}/chunk_index"], file_index=meta[f"videos/{key}/file_index"]
        )

    def read_frames(self, index: int, key: str, max_frames: int) -> np.ndarray:
        """At most max_frames frames of one camera, evenly spaced over the episode (a sample to measure)."""
        meta, data_path, rows = self._rows(index)
        n = int(meta["length"])
        keep = sorted(set(np.linspace(0, n - 1, min(n, max_frames)).round().astype(int).tolist()))
        return self._camera_frames(index, key, meta, data_path, rows, keep)

    def read_episode(self, index: int, decode: list[str] | None = None, segments: list[str] = (),
                     streamed: list[str] = ()) -> Episode:
        """decode: the cameras to decode (default all); segments: video cameras whose encoded segment
        the episode carries (Episode.passthrough), for the sink to copy; streamed: video cameras that
        are carried as segments too, never decoded here: the sink's writer decodes them a chunk at a
        time (augment/stream.py)."""
        meta, data_path, rows = self._rows(index)
        n = int(meta["length"])
        passthrough = {key: VideoSegment(self.store.uri(self._video_path(meta, key)), meta[f"videos/{key}/from_timestamp"],
                                         n, self._camera_stats(index, key)) for key in [*segments, *streamed]}
        for key in passthrough:  # copied, not decoded: the stream must be what info.json says
            self._check_stream_size(self._video_path(meta, key), key, index)
        # A camera without recorded stats is decoded too: the sink measures them on the frames.
        decode = [k for k in self.cameras if k not in streamed and (decode is None or k in decode or k not in passthrough
                                                                     or passthrough[k].stats is None)]
        frames = {key: self._camera_frames(index, key, meta, data_path, rows) for key in decode}

        def column(name: str) -> np.ndarray:
            feature = self.features[name]
            shape = tuple(feature["shape"])
            try:  # fixed-size lists flatten without a copy per row; scalars (shape [1]) stay (T,)
                values = rows[name].combine_chunks()
                flat = values.flatten() if pa.types.is_fixed_size_list(values.type) else values
                arr = np.asarray(flat.to_numpy(zero_copy_only=False))
                arr = arr.reshape(n) if shape == (1,) else arr.reshape(n, *shape)
            except (ValueError, pa.ArrowInvalid, NotImplementedError):
                arr = np.array(rows[name].to_pylist())
                if arr.shape[1:] != shape and not (shape == (1,) and arr.ndim == 1):
                    raise DatasetError(f"{data_path}: column {name!r} holds values of shape {list(arr.shape[1:])}, "
                                       f"meta/info.json declares {list(shape)}") from None
            return arr.astype(feature["dtype"], copy=False)

        arrays = {k: column(k) for k in numeric_features(self.features) if k in rows.column_names}
        tasks = meta.get("tasks") or [""]
        return Episode(
            frames=frames,
            task=tasks[0],
            fps=self.fps,
            uid=episode_uid(index),
            state=arrays.pop("observation.state", None),
            action=arrays.pop("action", None),
            extras=arrays,
            provenance={"source": {"root": self.store.uri(), "episode_index": index,
                                   **({"generated": True} if _generated(meta) else {})}},
            passthrough=passthrough,
        )

    def _camera_stats(self, index: int, key: str) -> dict | None:
        """The source's per-episode stats of a camera (meta/episodes' stats/<key>/* columns), or None."""
        return self._stats_columns.get(index, {}).get(key)

    @cached_property
    def _stats_columns(self) -> dict[int, dict[str, dict]]:
        """Per episode and video camera, the stats lerobot recorded; read once, only these columns."""
        out: dict[int, dict[str, dict]] = {}
        videos = [k for k in self.cameras if self.is_video(k)]
        for f in self.store.glob(EPISODES_GLOB):
            names = self.store.read_schema(f).names
            cols = [c for c in names if c.startswith("stats/") and c.split("/")[1] in videos]
            for row in self.store.read_table(f, columns=["episode_index", *cols]).to_pylist():
                per_key = out.setdefault(row.pop("episode_index"), {})
                for col, value in row.items():
                    _, key, stat = col.split("/")
                    per_key.setdefault(key, {})[stat] = value
        return out

    def verify(self, episodes: list[int], progress: bool = True, limit: int = 20) -> list[str]:
        """Read every episode as a run would (decoding every frame) and check it against info.json:
        rows per episode, value shapes, frame sizes and counts, the videos' fps, the timestamps.
        Returns the problems found (at most `limit`), each naming its file; [] when all is well."""
        from tqdm.auto import tqdm

        from augment.video import VideoError

        problems: list[str] = []
        checked_files: set[str] = set()
        for index in tqdm(episodes, desc="verifying", unit="ep", disable=not progress):
            try:
                meta, data_path, rows = self._rows(index)
                for path in sorted({self._video_path(meta, k) for k in self.cameras if self.is_video(k)} - checked_files):
                    checked_files.add(path)
                    self._check_video_rate(self.store.uri(path))
                self.read_episode(index)
                self._check_timestamps(index, data_path, rows)
            except (DatasetError, VideoError) as e:
                problems.append(str(e))
                if len(problems) >= limit:
                    problems.append(f"(stopped after {limit} problems)")
                    break
        return problems

    def _check_stream_size(self, rel: str, key: str, index: int) -> None:
        from augment.video import stream_info

        if (rel, key) not in self._checked_streams:
            path = self.store.uri(rel)
            if not self.store.is_file(rel):
                raise DatasetError(f"{path}: video file is missing (episode {index}, camera {key})")
            size, declared = stream_info(path)[:2], frame_shape(self.features[key])
            if size != declared:
                raise DatasetError(f"{path}: camera {key} of episode {index} has {size[0]}x{size[1]} frames (height x width), "
                                   f"meta/info.json declares {declared[0]}x{declared[1]}")
            self._checked_streams.add((rel, key))

    def _check_video_rate(self, path: str) -> None:
        from augment.video import stream_info

        rate = stream_info(path)[2]
        if rate is not None and abs(rate - self.fps) > 0.01 * self.fps:
            raise DatasetError(f"{path}: the video runs at {rate:g} fps, meta/info.json says fps {self.fps}")

    def _check_timestamps(self, index: int, data_path: str, rows) -> None:
        if "timestamp" not in rows.column_names or "frame_index" not in rows.column_names:
            return
        stamps = rows["timestamp"].to_numpy().astype(np.float64)
        frames = rows["frame_index"].to_numpy()
        if not np.array_equal(frames, np.arange(len(frames))):
            raise DatasetError(f"{data_path}: episode {index}'s frame_index is not 0, 1, 2, ... in order")
        off = np.abs(stamps - frames / self.fps)
        if len(off) and off.max() > 1e-4:  # lerobot's own tolerance_s
            worst = int(off.argmax())
            raise DatasetError(f"{data_path}: episode {index}, frame {worst}: timestamp {stamps[worst]:.4f}s, "
                               f"fps {self.fps} puts it at {frames[worst] / self.fps:.4f}s")

    def _position(self, index: int) -> int:
        for pos, row in enumerate(self.episodes):
            if row["episode_index"] == index:
                return pos
        raise DatasetError(f"{self.root}: no episode {index}")


def _generated(meta: dict) -> bool:
    """Whether a meta/episodes row is of an episode a video model made (a dataset this tool wrote keeps
    each episode's provenance in its `augment/provenance` column): its state does not measure its video."""
    made = meta.get("augment/provenance")
    if not made:
        return False
    try:
        return "generator" in json.loads(made)
    except (TypeError, ValueError):
        return False


def _decode_images(cells: list[dict], where: str) -> np.ndarray:
    from PIL import Image

    out = []
    for cell in cells:
        if not cell or cell.get("bytes") is None:
            raise DatasetError(f"{where}: image cell without embedded bytes")
        out.append(np.asarray(Image.open(io.BytesIO(cell["bytes"])).convert("RGB")))
    return np.stack(out)


def load_info(root: str | Path | Store) -> dict:
    """meta/info.json of a v3.0 dataset, or a DatasetError that says what is wrong and how to fix it
    (for a store: an unreachable endpoint, refused credentials, a missing bucket, first)."""
    store = root if isinstance(root, Store) else Store(root)
    store.check()
    root = store.root
    if not store.is_dir():
        raise DatasetError(f"{root}: no such dataset folder")
    info_path = store.uri("meta/info.json")
    if not store.is_file("meta/info.json"):
        raise DatasetError(f"{root}: not a LeRobot dataset (no meta/info.json)")
    try:
        info = json.loads(store.read_text("meta/info.json"))
    except json.JSONDecodeError as e:
        raise DatasetError(f"{info_path}: not valid JSON ({e})") from None
    version = str(info.get("codebase_version", "unknown"))
    if not version.startswith("v3"):
        raise DatasetError(
            f"{root}: LeRobot dataset format {version}; augment reads v3.0. Convert it with lerobot's converter:\n"
            f"  python -m lerobot.scripts.convert_dataset_v21_to_v30 --repo-id=<repo_id> --root={root}"
        )
    for field in ("fps", "features", "data_path"):
        if field not in info:
            raise DatasetError(f"{info_path}: missing field {field!r}")
    return info
