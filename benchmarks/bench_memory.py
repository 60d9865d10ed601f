"""Peak memory (and CPU seconds) of every process of a job, for episodes of growing length: does it grow?

Builds (with lerobot's API, tests/corpus.py's scene) one source per episode length, each with
--cameras cameras of --size (a fixed one and wrist ones), then runs `augment run` on each with the
copy pipeline, the lighting edit (pipelines/edit_lighting.yaml: per-frame, streamed in chunks) and the
background edit (pipelines/demo.yaml: a survey of every frame, then streamed in chunks), one variant
each, and samples the resident memory (RSS) of the job's processes (the driver, Ray's raylet and
workers) every 0.2 s. RSS counts
pages of Ray's shared object store a process has touched, so a worker reading a large episode from
the store shows it; the sum over processes overstates what the machine used.

    python benchmarks/bench_memory.py --lengths 150,600 --size 480x640 --cameras 2 --episodes 1
    python benchmarks/bench_memory.py ... --checkout /work/main   # the same with another checkout (before)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("SVT_LOG", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def build_source(root: Path, length: int, episodes: int, size: tuple[int, int], cameras: int) -> None:
    from corpus import Camera, Member, build

    cams = tuple(Camera(f"observation.images.cam{i}", size, "fixed" if i == 0 else "wrist") for i in range(cameras))
    build(Member("memory", fps=30, episodes=(length,) * episodes, cameras=cams,
                 numeric={"observation.state": ("float32", (6,)), "action": ("float32", (6,))}), root)


def role(proc: psutil.Process) -> str:
    try:
        cmd = " ".join(proc.cmdline())
        name = proc.name()
    except psutil.Error:
        return "?"
    if "augment.cli" in cmd:
        return "driver"
    return name if name.startswith("ray::") else (name if "raylet" in name or "gcs" in name else name[:20])


def run_sampled(cmd: list[str], env: dict, cwd: Path) -> tuple[float, dict[str, float], dict[str, float], int]:
    """Run cmd; return (seconds, peak RSS in MB per process role (the largest process of each role),
    CPU seconds per role (summed over its processes, as last sampled), rc)."""
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peaks: dict[int, tuple[str, float]] = {}
    cpu: dict[int, float] = {}
    stop = threading.Event()

    def sample():
        root = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            for p in procs:
                try:
                    rss = p.memory_info().rss / 2**20
                    times = p.cpu_times()
                    cpu[p.pid] = times.user + times.system
                except psutil.Error:
                    continue
                label = role(p)
                old = peaks.get(p.pid, (label, 0.0))
                # a Ray worker renames itself while it runs a task (ray::IDLE between): keep the task's name
                telling = label.startswith("ray::") and label != "ray::IDLE"
                peaks[p.pid] = (label if telling or old[0] in ("?", "ray::IDLE") else old[0], max(old[1], rss))
            time.sleep(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    thread.start()
    _, err = proc.communicate()
    elapsed = time.perf_counter() - start
    stop.set()
    thread.join()
    if proc.returncode != 0:
        print(err[-3000:], file=sys.stderr)
    by_role: dict[str, float] = {}
    cpu_by_role: dict[str, float] = {}
    for pid, (label, peak) in peaks.items():
        by_role[label] = max(by_role.get(label, 0.0), peak)
        cpu_by_role[label] = cpu_by_role.get(label, 0.0) + cpu.get(pid, 0.0)
    return elapsed, by_role, cpu_by_role, proc.returncode


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", default="150,450", help="frames per episode, one source per length")
    p.add_argument("--episodes", type=int, default=2)
    p.add_argument("--size", default="480x640")
    p.add_argument("--cameras", type=int, default=2)
    p.add_argument("--pipelines", default="copy,light,edit")
    p.add_argument("--local", action="store_true", help="run in one process (--local) instead of the embedded Ray")
    p.add_argument("--checkout", type=Path, default=REPO, help="the augment checkout to run (to compare versions)")
    p.add_argument("--work", type=Path, default=None, help="keeps the sources between runs when given")
    args = p.parse_args()
    h, w = map(int, args.size.split("x"))
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_memory_"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(args.checkout), os.environ.get("PYTHONPATH", "")])}
    # Runs start in the checkout: `python -m` puts the working folder first on the path, and Ray's
    # workers get the driver's working folder on theirs, so from another checkout its code would run.
    print(f"augment from {args.checkout}{', --local' if args.local else ', embedded Ray'}")
    # copy: no frame decoded; light: a per-frame edit of every camera (streamed in chunks through the
    # writer); edit: the background edit (its segmenter surveys every frame, then masks chunk by chunk).
    specs = {"copy": ("copy.yaml", []),
             "light": ("edit_lighting.yaml", ["stages.0.variants=1"]),
             "edit": ("demo.yaml", ["stages.0.variants=1", "stages.0.review_dir=null"])}
    try:
        for length in map(int, args.lengths.split(",")):
            source = work / f"source_{length}"
            if not (source / "meta" / "info.json").is_file():
                build_source(source, length, args.episodes, (h, w), args.cameras)
            raw = args.episodes * length * args.cameras * h * w * 3 / 2**20
            for name in args.pipelines.split(","):
                spec, extra = specs[name]
                out = work / f"out_{name}_{length}"
                shutil.rmtree(out, ignore_errors=True)
                cmd = [sys.executable, "-m", "augment.cli", "run", str(REPO / "pipelines" / spec), "--quiet",
                       *(["--local"] if args.local else []), "--set", f"source.root={source}",
                       "--set", f"sink.root={out}", *[a for e in extra for a in ("--set", e)]]
                seconds, peaks, cpu, rc = run_sampled(cmd, env, args.checkout)
                top = sorted(peaks.items(), key=lambda kv: -kv[1])
                print(f"{name:4s} {args.episodes} x {length} frames, {args.cameras} x {h}x{w} "
                      f"({raw:.0f} MB raw): {seconds:6.1f} s, rc {rc}; peak RSS per process (MB): "
                      + ", ".join(f"{k} {v:.0f}" for k, v in top[:8]), flush=True)
                print(f"     CPU seconds per process kind ({sum(cpu.values()):.1f} in all): "
                      + ", ".join(f"{k} {v:.1f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])), flush=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
