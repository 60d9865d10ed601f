"""Reading whole episodes: augment's reader against lerobot's LeRobotDataset and Ray's read_lerobot.

Stages need whole episodes (all frames of every camera, state, action) in memory. This times getting
them, for every episode of a dataset, three ways: augment.source (one parquet slice + one sequential
decode per camera), LeRobotDataset indexed frame by frame (then stacked), and ray.data.read_lerobot
(frame rows, grouped back by episode on the driver).

    python benchmarks/bench_reader.py --source data/sim
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def with_augment(root: Path) -> tuple[float, int]:
    from augment.source import LeRobotSource

    start = time.perf_counter()
    source = LeRobotSource(root)
    frames = sum(source.read_episode(i).length for i in source.select(None))
    return time.perf_counter() - start, frames


def with_lerobot(root: Path) -> tuple[float, int]:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    start = time.perf_counter()
    ds = LeRobotDataset("bench/src", root=root)
    frames = 0
    for e in range(ds.num_episodes):
        meta = ds.meta.episodes[e]
        items = [ds[i] for i in range(meta["dataset_from_index"], meta["dataset_to_index"])]
        episode = {k: np.stack([it[k].numpy() for it in items]) for k in ds.meta.video_keys + ["action"]}
        frames += len(episode["action"])
    return time.perf_counter() - start, frames


def with_ray(root: Path) -> tuple[float, int]:
    import ray

    from augment.runner import init_ray

    init_ray(None)
    start = time.perf_counter()
    frames = 0
    by_episode: dict[int, int] = {}
    for batch in ray.data.read_lerobot(str(root), read_granularity="episode").iter_batches(batch_format="numpy"):
        for e in batch["episode_index"]:
            by_episode[int(e)] = by_episode.get(int(e), 0) + 1
    frames = sum(by_episode.values())
    return time.perf_counter() - start, frames


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, required=True)
    args = p.parse_args()
    for name, fn in (("augment.source", with_augment), ("lerobot LeRobotDataset", with_lerobot),
                     ("ray.data.read_lerobot", with_ray)):
        seconds, frames = fn(args.source)
        print(f"{name:24s} {seconds:7.2f} s  {frames / seconds:8.1f} frames/s  ({frames} frames)")


if __name__ == "__main__":
    main()
