"""The commit: turn the finished parts into a LeRobot v3.0 dataset (best-of-N ranking, final
indices, data files, meta/, video hard links, the completion marker last), and ownership: what in an
output folder we wrote, so overwrite never deletes anything else. See augment/layout.py."""

from __future__ import annotations

import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from augment import stats as stats_lib
from augment.layout import CHUNKS_SIZE, COMPLETE_MARKER, DATA_PATH, OWNER_MARKER, REPORT, STAGING, VIDEO_PATH, Layout
from augment.parts import PARTS, read_manifests, select_complete
from augment.storage import Store, as_store


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


def commit(root: str | Path | Store, layout: Layout, top_k: int | None = None, extra_meta: dict[str, str] | None = None,
           report: Callable[[dict], dict] | None = None, still_ours: Callable[[], bool] | None = None) -> dict:
    """Turn the finished parts under root into a LeRobot v3.0 dataset. Returns a summary.

    report(summary) -> the job report, written to meta/augment_report.json before the completion
    marker: a job killed anywhere in here is not finished, and its rerun commits again.
    still_ours() is asked before anything is written (an object-store lease may have been lost)."""
    store = as_store(root)
    kept, dropped, done = select_complete(read_manifests(store))
    if top_k is not None:
        kept, ranked_out = rank(kept, top_k)
        dropped = dropped + ranked_out
    if still_ours is not None and not still_ours():
        raise RuntimeError(f"{store}: this job lost its lock on the sink (another job took it over); not committing")
    store.delete(["meta/info.json", COMPLETE_MARKER])  # from here on, the folder does not look finished
    remove_ours(store, keep_staging=True)  # a user's own files under meta/ etc. survive a re-commit
    store.makedirs("meta")

    # Group episodes by part (one data file and one video file per camera each), in uid order.
    parts: dict[str, tuple[dict, list[dict]]] = {}
    for manifest, entry in kept:
        parts.setdefault(manifest["part"], (manifest, []))[1].append(entry)
    ordered = sorted(parts.values(), key=lambda p: min(e["uid"] for e in p[1]))

    tasks: dict[str, int] = {}
    episode_rows, all_stats, videos = [], [], []
    episode_index = frame_offset = 0
    # On a store each part's data file is a GET and each output file a PUT: WINDOW parts are read ahead
    # and written behind in parallel (bounded, so memory does not grow with the job).
    pool = ThreadPoolExecutor(1 if store.local else 8)
    tables = _read_ahead(pool, store, [f"{PARTS}/{m['part']}/data.parquet" for m, _ in ordered])
    writes = []
    for file_number, ((manifest, entries), table) in enumerate(zip(ordered, tables)):
        chunk, file = divmod(file_number, CHUNKS_SIZE)
        part_dir = f"{PARTS}/{manifest['part']}"
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
            ep_stats["episode_index"] = stats_lib.range_stats(episode_index, n)
            ep_stats["index"] = stats_lib.range_stats(frame_offset, n, 1)
            ep_stats["task_index"] = stats_lib.range_stats(task_index, n)
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
        table = pa.concat_tables(pieces)
        writes.append(pool.submit(store.write_table, DATA_PATH.format(chunk_index=chunk, file_index=file),
                                  pa.Table.from_arrays([table[name] for name in layout.schema.names], schema=layout.schema)))
        while len(writes) > WINDOW:
            writes.pop(0).result()
        videos.extend((f"{part_dir}/videos/{key}.mp4", VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file))
                      for key in layout.video)
    for write in writes:
        write.result()
    pool.shutdown()
    store.copy_many(videos)  # hard links locally, server-side copies on a store: no video byte goes through here

    store.makedirs("meta/episodes/chunk-000")
    if episode_rows:
        store.write_table("meta/episodes/chunk-000/file-000.parquet", pa.Table.from_pylist(episode_rows))
    # lerobot reads tasks.parquet with pandas, the task text being the index.
    task_frame = pd.DataFrame({"task_index": np.array(list(tasks.values()), dtype=np.int64)},
                              index=pd.Index(list(tasks.keys()), name="task"))
    buffer = io.BytesIO()
    task_frame.to_parquet(buffer)
    store.write_bytes("meta/tasks.parquet", buffer.getvalue())
    store.write_text("meta/stats.json",
                     json.dumps(stats_lib.to_json(stats_lib.aggregate(all_stats)) if all_stats else {}, indent=2))
    for name, text in (extra_meta or {}).items():
        store.write_text(f"meta/{name}", text)

    info = {
        "codebase_version": "v3.0", "robot_type": layout.robot_type, "total_episodes": episode_index,
        "total_frames": frame_offset, "total_tasks": len(tasks), "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": 100, "video_files_size_in_mb": 200, "fps": layout.fps,
        "splits": {"train": f"0:{episode_index}"}, "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if layout.video else None, "features": layout.features,
    }
    store.write_text("meta/info.json", json.dumps(info, indent=4))
    summary = {"episodes": episode_index, "frames": frame_offset, "tasks": len(tasks),
               "dropped": dropped, "source_episodes_done": sorted(done)}
    if report is not None:
        summary["report"] = report(summary)
        store.write_text(REPORT, json.dumps(summary["report"], indent=2))
    marker = {k: v for k, v in summary.items() if k != "report"}
    store.write_text(COMPLETE_MARKER, json.dumps({"committed_at": time.time(), **marker}))
    return summary


WINDOW = 32


def _read_ahead(pool: ThreadPoolExecutor, store: Store, paths: list[str]):
    """The parquet tables at `paths` in order, at most WINDOW of them read ahead."""
    pending = [pool.submit(store.read_table, p) for p in paths[:WINDOW]]
    for i in range(len(paths)):
        if i + WINDOW < len(paths):
            pending.append(pool.submit(store.read_table, paths[i + WINDOW]))
        yield pending[i].result()
        pending[i] = None


def _stats_from_json(data: dict) -> dict[str, dict[str, np.ndarray]]:
    return {k: {s: np.asarray(v) for s, v in d.items()} for k, d in data.items()}


def is_committed(root: str | Path | Store) -> bool:
    store = as_store(root)
    return store.is_file(COMPLETE_MARKER) and store.is_file("meta/info.json")


# ---------------------------------------------------------------------------------------------
# Ownership: what in an output folder we wrote, so overwrite never deletes anything else

# Paths our commit writes (relative to root), as globs; everything under .augment/ is ours too.
OUR_FILES = ("data/chunk-*/file-*.parquet", "videos/*/chunk-*/file-*.mp4", "meta/info.json", "meta/stats.json",
             "meta/tasks.parquet", "meta/episodes/chunk-*/file-*.parquet", "meta/augment_spec.yaml", REPORT,
             "meta/*.tmp-*")  # atomic_write_text's temporary, left by a kill mid-write


def read_owner(root: str | Path | Store) -> dict | None:
    """Our marker's content, or None when the folder carries none (or a broken one): not ours."""
    try:
        owner = json.loads(as_store(root).read_text(OWNER_MARKER))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, ValueError):
        return None
    return owner if isinstance(owner, dict) and owner.get("tool") == "augment" else None


def write_owner(root: str | Path | Store, owner: dict) -> None:
    as_store(root).write_text(OWNER_MARKER, json.dumps({"tool": "augment", **owner}, indent=2))


def _ours(rel: str) -> bool:
    parts = rel.split("/")
    return parts[0] == STAGING or any(len(parts) == p.count("/") + 1 and Path(rel).match(p) for p in OUR_FILES)


def foreign_files(root: str | Path | Store) -> list[str]:
    """Files under root that we did not write (relative paths, sorted)."""
    return sorted(rel for rel in as_store(root).files() if not _ours(rel))


def remove_ours(root: str | Path | Store, keep_staging: bool = False) -> None:
    """Delete the files we wrote under data/, videos/, meta/ (and .augment/ unless kept), then the
    folders left empty; anything else stays where it is."""
    store = as_store(root)
    store.delete([rel for sub in ("data", "videos", "meta") for rel in store.files(sub) if _ours(rel)])
    for sub in ("data", "videos", "meta"):
        store.remove_empty_dirs(sub)
    if not keep_staging:
        store.delete_dir(STAGING)
