"""A copy end to end, as a user runs it: `augment run pipelines/copy.yaml` (the embedded Ray, start-up
and reading included) against lerobot's own path (LeRobotDataset reads the source, add_frame /
save_episode / finalize write it), on the same source, in one paired, alternating run.

The source is written by lerobot (tests/corpus.py's scene) with lerobot's default codec unless
--codec says otherwise. Each round runs every arm once, in turn, each in a fresh process; the
figures are medians over rounds. The last line is `speedup: X.XX` (lerobot's median / augment's).

    python benchmarks/bench_copy.py --episodes 10 --frames 400 --size 120x160 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("SVT_LOG", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

LEROBOT_COPY = """
import sys, time
from pathlib import Path
import numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset
src = LeRobotDataset("bench/src", root=Path(sys.argv[1]))
features = {k: {kk: vv for kk, vv in f.items() if kk != "info"} for k, f in src.meta.features.items()
            if k not in ("timestamp", "frame_index", "episode_index", "index", "task_index")}
out = LeRobotDataset.create("bench/out", fps=src.fps, features=features, root=Path(sys.argv[2]),
                            robot_type=src.meta.robot_type, use_videos=bool(src.meta.video_keys))
for e in range(src.num_episodes):
    meta = src.meta.episodes[e]
    for i in range(meta["dataset_from_index"], meta["dataset_to_index"]):
        item = src[i]
        frame = {"task": item["task"]}
        for k in features:
            v = item[k].numpy()
            frame[k] = (v.transpose(1, 2, 0) * 255).round().astype(np.uint8) if k in src.meta.video_keys else \
                v.reshape(features[k]["shape"])
        out.add_frame(frame)
    out.save_episode()
out.finalize()
"""


def build_source(root: Path, episodes: int, frames: int, size: tuple[int, int], cameras: int, codec: str | None):
    from corpus import Camera, Member, build

    cams = tuple(Camera(f"observation.images.cam{i}", size, "fixed" if i == 0 else "wrist") for i in range(cameras))
    member = Member("bench", fps=30, episodes=(frames,) * episodes, cameras=cams, codec=codec,
                    numeric={"observation.state": ("float32", (6,)), "action": ("float32", (6,))})
    build(member, root)


def timed(cmd: list[str], env: dict, cwd: Path | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{done.stderr[-3000:]}")
    return elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--frames", type=int, default=400, help="frames per episode")
    p.add_argument("--size", default="120x160", help="HxW of each camera")
    p.add_argument("--cameras", type=int, default=1)
    p.add_argument("--codec", default=None, help="lerobot's vcodec for the source (default: lerobot's, AV1)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--arms", default="augment,local,lerobot", help="comma list of augment, local, lerobot")
    p.add_argument("--checkout", type=Path, default=REPO, help="the augment checkout to run (to compare two versions)")
    p.add_argument("--baseline", type=Path, default=None,
                   help="another augment checkout (e.g. main): adds arms augment-base and local-base, run from it")
    p.add_argument("--work", type=Path, default=None, help="folder for the source and outputs (default: a temp one)")
    args = p.parse_args()
    h, w = map(int, args.size.split("x"))
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_copy_"))
    source = work / "source"
    if not (source / "meta" / "info.json").is_file():
        build_source(source, args.episodes, args.frames, (h, w), args.cameras, args.codec)
    spec = str(REPO / "pipelines" / "copy.yaml")

    def run_augment(checkout: Path, *extra: str):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(checkout), os.environ.get("PYTHONPATH", "")])}
        # Run from the checkout: `python -m` puts the working folder first on the path, and Ray's workers
        # get the driver's working folder on theirs, so from any other checkout its code would run.
        return lambda out: ([sys.executable, "-m", "augment.cli", "run", spec, "--quiet", *extra,
                             "--set", f"source.root={source}", "--set", f"sink.root={out}"], env, checkout)

    arms = {"augment": run_augment(args.checkout), "local": run_augment(args.checkout, "--local"),
            "lerobot": lambda out: ([sys.executable, "-c", LEROBOT_COPY, str(source), str(out)], dict(os.environ))}
    chosen = args.arms.split(",")
    if args.baseline:
        arms.update({"augment-base": run_augment(args.baseline), "local-base": run_augment(args.baseline, "--local")})
        chosen += ["augment-base", "local-base"]
    times: dict[str, list[float]] = {a: [] for a in chosen}
    frames = args.episodes * args.frames
    print(f"augment from {args.checkout}; source: {args.episodes} episodes x {args.frames} frames, "
          f"{args.cameras} camera(s) {h}x{w}, "
          f"codec {args.codec or 'lerobot default'}; {args.rounds} alternating rounds")
    try:
        for r in range(args.rounds):
            order = chosen if r % 2 == 0 else chosen[::-1]  # alternate, so drift in machine load spreads evenly
            for arm in order:
                out = work / f"out_{arm}"
                shutil.rmtree(out, ignore_errors=True)
                times[arm].append(timed(*arms[arm](out)))
                print(f"round {r}: {arm:12s} {times[arm][-1]:7.2f} s", flush=True)
        for arm in chosen:
            m = statistics.median(times[arm])
            print(f"{arm:12s} median {m:7.2f} s  {frames / m:8.1f} frames/s  (runs: {', '.join(f'{t:.1f}' for t in times[arm])})")
        if "augment" in times and "lerobot" in times:
            print(f"speedup: {statistics.median(times['lerobot']) / statistics.median(times['augment']):.2f}")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
