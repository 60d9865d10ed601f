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


def write_with_lerobot(source, episodes, layout, root: Path) -> float:
    from lerobot.configs.video import RGBEncoderConfig
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from augment.episode import INDEX_COLUMNS

    features = {k: {kk: vv for kk, vv in f.items() if kk != "info"} for k, f in source.features.items()
                if k not in INDEX_COLUMNS}
    encoder = None
    if layout.video:  # the same settings as our sink: the source's, read from the stream where info.json is silent
        settings = next(iter(layout.video.values()))
        encoder = RGBEncoderConfig(vcodec={"av1": "libsvtav1"}.get(settings.codec, settings.codec),
                                   pix_fmt=settings.pix_fmt, g=settings.gop, crf=settings.crf, preset=settings.preset)
    numeric = {k: tuple(f["shape"]) for k, f in features.items() if f["dtype"] not in ("video", "image")}
    start = time.perf_counter()
    ds = LeRobotDataset.create("bench/lerobot", fps=source.fps, features=features, root=root,
                               robot_type=source.info.get("robot_type"), use_videos=bool(layout.video),
                               rgb_encoder=encoder)
    for ep in episodes:
        arrays = {"observation.state": ep.state, "action": ep.action, **ep.extras}
        for t in range(ep.length):
            frame = {k: v[t] for k, v in ep.frames.items()}
            frame.update({k: np.asarray(arrays[k][t]).reshape(shape) for k, shape in numeric.items()})
            frame["task"] = ep.task
            ds.add_frame(frame)
        ds.save_episode()
    ds.finalize()
    return time.perf_counter() - start


def source_layout(source):
    from augment.layout import Layout

    first = source.select(None)[0]
    videos = {k: source.video_file(first, k) for k in source.cameras if source.is_video(k)}
    return Layout.from_source(source.info, dict(source.features), video_files=videos)


def write_with_augment(episodes, layout, root: Path, writers: int) -> float:
    import ray

    from augment.pipeline import episode_row
    from augment.runner import _datasink_class, init_ray
    from augment.commit import commit

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
    layout = source_layout(source)
    frames = sum(e.length for e in episodes)
    sizes = {k: v.shape[1:3] for k, v in episodes[0].frames.items()}
    print(f"{len(episodes)} episodes, {frames} frames, cameras {sizes}, "
          f"video {({k: v.codec for k, v in layout.video.items()}) or 'none'} (the source's settings)")
    work = Path(tempfile.mkdtemp(prefix="bench_writer_"))
    try:
        ours = write_with_augment(episodes, layout, work / "augment", args.writers)
        print(f"augment (Ray sink, {args.writers} writers): {ours:7.2f} s  {frames / ours:7.1f} frames/s")
        theirs = write_with_lerobot(source, episodes, layout, work / "lerobot")
        print(f"lerobot add_frame/save_episode:       {theirs:7.2f} s  {frames / theirs:7.1f} frames/s")
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        a, b = LeRobotDataset("a", root=work / "augment"), LeRobotDataset("b", root=work / "lerobot")
        assert len(a) == len(b) == frames and a.num_episodes == b.num_episodes == len(episodes)
        for key in layout.numeric_keys():  # the same values, as lerobot loads them
            assert np.array_equal(np.asarray(a[len(a) - 1][key]), np.asarray(b[len(b) - 1][key])), key
        print(f"speedup: {theirs / ours:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
