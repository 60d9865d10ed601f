"""Write the same episodes with augment's Ray sink and with lerobot's add_frame/save_episode.

Both start from episodes already in memory, use the same codec settings (the source's), and end
with a finished LeRobot v3.0 dataset that lerobot loads. Ray's start-up is not timed (a batch job
pays it once); the commit is. The last line is `speedup: X.XX` (lerobot's time / ours).

    python benchmarks/bench_writer.py --source data/sim --copies 4
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("SVT_LOG", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def load_episodes(source_root: Path, copies: int):
    from augment.source import LeRobotSource

    source = LeRobotSource(source_root)
    base = [source.read_episode(i) for i in source.select(None)]
    episodes = []
    for c in range(copies):
        for ep in base:
            episodes.append(ep.replace(uid=f"{ep.uid}-c{c}"))
    return source, episodes


def write_with_lerobot(source, episodes, root: Path) -> float:
    from lerobot.configs.video import VideoEncoderConfig
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {k: {kk: vv for kk, vv in f.items() if kk != "info"} for k, f in source.features.items()
                if k not in ("timestamp", "frame_index", "episode_index", "index", "task_index")}
    cam = next(k for k, f in source.features.items() if f["dtype"] == "video")
    info = source.features[cam]["info"]
    encoder = VideoEncoderConfig(vcodec={"av1": "libsvtav1"}.get(info["video.codec"], info["video.codec"]),
                                 pix_fmt=info["video.pix_fmt"], g=info["video.g"], crf=info["video.crf"],
                                 preset=info.get("video.preset"))
    start = time.perf_counter()
    ds = LeRobotDataset.create("bench/lerobot", fps=source.fps, features=features, root=root,
                               robot_type=source.info.get("robot_type"), rgb_encoder=encoder)
    for ep in episodes:
        for t in range(ep.length):
            frame = {k: v[t] for k, v in ep.frames.items()}
            frame.update({"observation.state": ep.state[t], "action": ep.action[t], "task": ep.task})
            frame.update({k: v[t] for k, v in ep.extras.items()})
            ds.add_frame(frame)
        ds.save_episode()
    ds.finalize()
    return time.perf_counter() - start


def write_with_augment(source, episodes, root: Path, writers: int) -> float:
    import ray

    from augment.pipeline import episode_row
    from augment.runner import _datasink_class, init_ray
    from augment.writer import Layout, commit

    features = {k: f for k, f in source.features.items()}
    layout = Layout.from_source(source.info, features)
    init_ray(None)
    rows = [episode_row(ep, ep.uid, "1") for ep in episodes]
    per_file = max(1, len(rows) // writers)
    ds = ray.data.from_items(rows, override_num_blocks=writers)
    ds = ds.materialize()  # the episodes sit in the object store before the clock starts, as after a stage
    root.mkdir(parents=True)
    start = time.perf_counter()
    sink = _datasink_class()(str(root), layout.to_json(), "bench", per_file)
    ds.write_datasink(sink, ray_remote_args={"num_cpus": 1})
    commit(root, layout)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, required=True, help="a LeRobot v3.0 dataset whose episodes are written")
    p.add_argument("--copies", type=int, default=3, help="write each source episode this many times")
    p.add_argument("--writers", type=int, default=os.cpu_count() or 2, help="parallel write tasks for augment")
    args = p.parse_args()

    source, episodes = load_episodes(args.source, args.copies)
    frames = sum(e.length for e in episodes)
    print(f"{len(episodes)} episodes, {frames} frames, cameras {list(episodes[0].frames)}, "
          f"{episodes[0].frames[next(iter(episodes[0].frames))].shape[1:3]} px, codec from the source")
    work = Path(tempfile.mkdtemp(prefix="bench_writer_"))
    try:
        ours = write_with_augment(source, episodes, work / "augment", args.writers)
        print(f"augment (Ray sink, {args.writers} writers): {ours:7.2f} s  {frames / ours:7.1f} frames/s")
        theirs = write_with_lerobot(source, episodes, work / "lerobot")
        print(f"lerobot add_frame/save_episode:       {theirs:7.2f} s  {frames / theirs:7.1f} frames/s")
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        a, b = LeRobotDataset("a", root=work / "augment"), LeRobotDataset("b", root=work / "lerobot")
        assert len(a) == len(b) == frames and a.num_episodes == b.num_episodes == len(episodes)
        assert np.array_equal(a[len(a) - 1]["action"].numpy(), b[len(b) - 1]["action"].numpy())
        print(f"speedup: {theirs / ours:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
