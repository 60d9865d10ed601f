#!/usr/bin/env python
"""Acceptance benchmark for the consistency verifier: real simulator videos, clean and corrupted.

Takes MetaWorld episodes (scripts/make_sim_dataset.py, the scripted expert rendered by MuJoCo),
makes one corrupted copy per hallucination kind a video model is known for, and runs the
`consistency` checks with their default limits on everything. Reports, per kind, the fraction caught
(should be >= 90 %), and the false-positive rate on the clean videos (should be <= 10 %).

    python benchmarks/bench_consistency.py --source /tmp/mw      # an existing sim dataset
    python benchmarks/bench_consistency.py --work /tmp/bc --tasks pick-place-v3,door-open-v3
        # builds one dataset per MetaWorld task into --work (cached: reused when already there)
        # and prints one table per scene, so the limits are seen to transfer between scenes

The object corruptions pick a small, strongly coloured object of the first frame (not the robot)
and start at a seeded random frame before the robot reaches it: a corruption of a box the gripper
has already carried the object out of would change nothing visible.

Corruption kinds (each from a seeded random frame t0, on the frames as decoded):
    duplicate     a copy of an object appears next to it and stays
    vanish        an object is painted out (inpainted) and stays gone
    appear        a new coloured object appears on the table and stays
    morph_colour  an object's colour turns into another hue over 6 frames
    morph_shape   an object grows to 1.8x its size over 6 frames
    freeze        the video stops: frame t0 repeats to the end
    cut           a quarter of the episode is skipped: the robot teleports
    teleport      an object jumps to another place on the table
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KINDS = ("duplicate", "vanish", "appear", "morph_colour", "morph_shape", "freeze", "cut", "teleport")
RAMP = 6  # frames over which morphs happen


def object_box(frames: np.ndarray, rng: np.random.Generator, size: int) -> tuple[int, int, int, int]:
    """A box (y0, x0, y1, x1) around a small, strongly coloured blob of the first frame (the task's
    objects, goal markers), not the largest one (the robot); a table-area box when there is none."""
    h, w = frames.shape[1:3]
    hsv = cv2.cvtColor(frames[0], cv2.COLOR_RGB2HSV)
    coloured = ((hsv[..., 1] > 115) & (hsv[..., 2] > 40)).astype(np.uint8)
    n, _, stats, centroids = cv2.connectedComponentsWithStats(coloured, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    largest = int(np.argmax(areas)) if len(areas) else -1
    candidates = [i + 1 for i in range(len(areas)) if 3 <= areas[i] <= 0.02 * h * w and i != largest]
    if candidates:
        cx, cy = centroids[candidates[int(rng.integers(len(candidates)))]]
    else:
        cy, cx = rng.uniform(0.5, 0.8) * h, rng.uniform(0.3, 0.7) * w
    half = size // 2
    y0 = int(np.clip(cy - half, 0, h - size))
    x0 = int(np.clip(cx - half, 0, w - size))
    return y0, x0, y0 + size, x0 + size


def free_spot(box, shape, rng, min_shift: int) -> tuple[int, int]:
    """Top-left of a box of the same size, shifted by at least min_shift pixels, inside the lower
    two-thirds of the image (where the table is)."""
    y0, x0, y1, x1 = box
    bh, bw = y1 - y0, x1 - x0
    h, w = shape
    for _ in range(100):
        ny, nx = int(rng.integers(h // 3, h - bh)), int(rng.integers(0, w - bw))
        if abs(ny - y0) + abs(nx - x0) >= min_shift:
            return ny, nx
    return (y0 + min_shift) % (h - bh), x0


def resting_until(frames: np.ndarray, box, level: float = 8.0) -> int:
    """First frame at which the box no longer looks like it did in frame 0 (the robot reaches it or
    moves the object): until then the object rests there, visible."""
    y0, x0, y1, x1 = box
    crops = frames[:, y0:y1, x0:x1].astype(np.int16)
    change = np.abs(crops - crops[:1]).max(axis=-1).mean(axis=(1, 2))
    moved = np.nonzero(change > level)[0]
    return int(moved[0]) if len(moved) else len(frames)


def start_frame(frames: np.ndarray, box, rng: np.random.Generator) -> int:
    """A seeded random start in [T/8, T/2), before the robot reaches the object: a corruption of a
    box the gripper has already carried the object out of would change nothing visible."""
    t_len = len(frames)
    lo = max(2, t_len // 8)
    hi = min(t_len // 2, resting_until(frames, box) - 2)
    return int(rng.integers(lo, hi)) if hi > lo else lo


def corrupt(frames: np.ndarray, kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = frames.copy()
    t_len, h, w = frames.shape[:3]
    size = max(8, round(0.09 * max(h, w)))
    box = object_box(frames, rng, size)
    t0 = start_frame(frames, box, rng) if kind not in ("freeze", "cut") else int(rng.integers(t_len // 4, t_len // 2))
    y0, x0, y1, x1 = box
    if kind == "freeze":
        out[t0:] = frames[t0]
    elif kind == "cut":
        k = max(2, t_len // 4)
        out = np.concatenate([frames[:t0], frames[t0 + k:]])
    elif kind in ("duplicate", "teleport"):
        ny, nx = free_spot(box, (h, w), rng, min_shift=2 * size)
        for t in range(t0, t_len):
            patch = frames[t, y0:y1, x0:x1].copy()
            if kind == "teleport":
                out[t] = _paint_out(out[t], box)
            out[t, ny:ny + size, nx:nx + size] = patch
    elif kind == "vanish":
        for t in range(t0, t_len):
            out[t] = _paint_out(frames[t], box)
    elif kind == "appear":
        ny, nx = free_spot(box, (h, w), rng, min_shift=size)
        colour = cv2.cvtColor(np.uint8([[[int(rng.integers(0, 180)), 220, 220]]]), cv2.COLOR_HSV2RGB)[0, 0]
        radius = max(3, size // 3)
        for t in range(t0, t_len):
            cv2.circle(out[t], (nx + size // 2, ny + size // 2), radius, tuple(int(c) for c in colour), -1)
    elif kind == "morph_colour":
        shift = int(rng.integers(45, 135))
        for t in range(t0, t_len):
            amount = min(1.0, (t - t0 + 1) / RAMP)
            hsv = cv2.cvtColor(frames[t, y0:y1, x0:x1], cv2.COLOR_RGB2HSV).astype(np.int32)
            hsv[..., 0] = (hsv[..., 0] + round(shift * amount)) % 180
            hsv[..., 1] = np.maximum(hsv[..., 1], round(150 * amount))  # dull objects get a colour too
            out[t, y0:y1, x0:x1] = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    elif kind == "morph_shape":
        for t in range(t0, t_len):
            scale = 1.0 + 0.8 * min(1.0, (t - t0 + 1) / RAMP)
            grown = cv2.resize(frames[t, y0:y1, x0:x1], None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
            gh, gw = grown.shape[:2]
            cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
            ty0, tx0 = max(0, cy - gh // 2), max(0, cx - gw // 2)
            ty1, tx1 = min(h, ty0 + gh), min(w, tx0 + gw)
            out[t, ty0:ty1, tx0:tx1] = grown[: ty1 - ty0, : tx1 - tx0]
    else:
        raise ValueError(f"unknown corruption {kind!r}; valid: {KINDS}")
    return out


def _paint_out(frame: np.ndarray, box) -> np.ndarray:
    y0, x0, y1, x1 = box
    mask = np.zeros(frame.shape[:2], np.uint8)
    mask[y0:y1, x0:x1] = 1
    return cv2.inpaint(frame, mask, 3, cv2.INPAINT_TELEA)


def load_videos(root: Path, limit: int | None) -> list[tuple[str, np.ndarray]]:
    from augment.source import LeRobotSource

    source = LeRobotSource(root)
    videos = []
    for index in source.select(None)[:limit]:
        episode = source.read_episode(index)
        for camera, frames in episode.frames.items():
            videos.append((f"{episode.uid}:{camera.split('.')[-1]}", frames))
    return videos


def run(videos: list[tuple[str, np.ndarray]], seed: int = 0, verbose: bool = False) -> dict:
    from verifiers.consistency import video_checks
    from verifiers.specs import ConsistencySpec

    spec = ConsistencySpec()
    minimum = spec.thresholds.min_check
    results: dict[str, list[dict]] = {"clean": [], **{k: [] for k in KINDS}}
    for n, (name, frames) in enumerate(videos):
        for kind in ("clean", *KINDS):
            video = frames if kind == "clean" else corrupt(frames, kind, seed * 1000 + n * 17 + KINDS.index(kind))
            scores, details = video_checks(video, spec)
            failed = sorted(c for c, s in scores.items() if s < minimum.get(c, 0.0))
            results[kind].append({"video": name, "flagged": bool(failed), "failed": failed,
                                  "stats": {c: round(d["stat"], 5) for c, d in details.items()}})
            if verbose:
                print(f"{name:28s} {kind:13s} {'FLAG' if failed else 'ok  '} {failed} "
                      f"{ {c: round(d['stat'], 4) for c, d in details.items()} }")
    table = {}
    for kind, rows in results.items():
        rate = float(np.mean([r["flagged"] for r in rows])) if rows else float("nan")
        by_check: dict[str, int] = {}
        for r in rows:
            for c in r["failed"]:
                by_check[c] = by_check.get(c, 0) + 1
        table[kind] = {"videos": len(rows), "flagged": sum(r["flagged"] for r in rows), "rate": rate,
                       "by_check": by_check}
    caught = [r["flagged"] for k in KINDS for r in results[k]]
    return {"table": table, "detection_rate": float(np.mean(caught)),
            "false_positive_rate": table["clean"]["rate"], "results": results}


def print_table(summary: dict) -> None:
    print(f"{'kind':14s} {'videos':>6s} {'flagged':>7s} {'rate':>6s}  checks that fired")
    for kind, row in summary["table"].items():
        label = "clean (FP)" if kind == "clean" else kind
        print(f"{label:14s} {row['videos']:6d} {row['flagged']:7d} {row['rate']:6.1%}  {row['by_check']}")
    print(f"detection rate over all corruptions: {summary['detection_rate']:.1%}; "
          f"false positives on clean: {summary['false_positive_rate']:.1%}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, help="an existing LeRobot dataset of sim episodes")
    p.add_argument("--work", type=Path, default=Path("/tmp/bench_consistency"), help="where to build one")
    p.add_argument("--episodes", type=int, default=12)
    p.add_argument("--tasks", default="pick-place-v3,door-open-v3", help="MetaWorld tasks, one scene each")
    p.add_argument("--cameras", default="corner")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="write the full results here")
    p.add_argument("--verbose", action="store_true", help="one line per video and kind")
    args = p.parse_args(argv)
    scenes = {args.source.name: args.source} if args.source else {}
    for task in ([] if args.source else args.tasks.split(",")):
        root = args.work / task
        if not (root / "meta" / "info.json").is_file():
            import subprocess

            script = Path(__file__).resolve().parents[1] / "scripts" / "make_sim_dataset.py"
            subprocess.run([sys.executable, str(script), "--sim", "metaworld", "--out", str(root), "--overwrite",
                            "--episodes", str(args.episodes), "--task", task, "--cameras", args.cameras,
                            "--size", str(args.size)], check=True)
        scenes[task] = root
    ok, summaries = True, {}
    for scene, root in scenes.items():
        start = time.perf_counter()
        summary = run(load_videos(root, args.episodes), args.seed, args.verbose)
        print(f"== {scene} ({root})")
        print_table(summary)
        print(f"({time.perf_counter() - start:.1f}s)")
        summaries[scene] = summary
        ok &= summary["detection_rate"] >= 0.9 and summary["false_positive_rate"] <= 0.1
    if args.json:
        args.json.write_text(json.dumps(summaries, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
