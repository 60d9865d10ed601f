#!/usr/bin/env python
"""How far is the keep-mask from what a pixel can tell? The truth (make_sim_dataset.py --masks) is
MuJoCo's segmentation: one sample per pixel, the thing that covers its centre; the frame is rendered
with 4x multisampling, so an outline pixel's colour is a blend of both sides by how much of it each
covers. This renders the truth of the same MetaWorld episodes again at `--factor` times the size (the
simulation is deterministic; the frame counts are checked) and gives each pixel its coverage by the
workspace, then reports per episode and camera, worst frame (the lowest keep IoU) first:

- `oracle`: the IoU of "keep what the workspace covers at least half of" with the truth, worst frame
  (what a perfect unmixer of every blend would reach);
- `half_px`: the truth against itself sampled half a pixel apart (diagonally), worst frame;
- the segmenter's error pixels (all frames) by the coverage of the pixel: `pure` (0 or 1: a wrong
  region or a wrong moving pixel), `ambiguous` (1/4 to 3/4: the blends), `near` (the rest);
- `fix_pure`, `fix_pure_near`: the worst frame's IoU had those errors been right.

    python scripts/make_sim_dataset.py --sim metaworld --task shelf-place-v3 --episodes 2 --seed 1840 \\
        --size 64 --cameras corner2,corner4,topview --masks --max-steps 100 --out /tmp/sp1840_64
    python benchmarks/truth_coverage.py /tmp/sp1840_64 --task shelf-place-v3 --seed 1840 --cameras corner2

Use the recording's --task, --seed and --max-steps. Rendering the truth alone at 256 px takes ~30 s
an episode for three cameras on a CPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from augment.source import LeRobotSource  # noqa: E402
from editors.workspace import workspace_masks  # noqa: E402


def _script():
    spec = importlib.util.spec_from_file_location("make_sim_dataset", ROOT / "scripts" / "make_sim_dataset.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (its dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


def render_truth(task: str, seed: int, episodes: int, size: int, cameras: list[str], max_steps: int) -> list[dict]:
    """The truth of each episode make_sim_dataset records with these settings, at `size` px: per camera
    (T, size, size) uint8 classes. The episodes are rolled out as it does (no frames rendered)."""
    script = _script()
    sim = script.MetaWorldSim(task, size, script._parse_cameras(",".join(cameras)), seed, antialias=False)
    out = []
    try:
        for i in range(episodes):
            obs, labels, success_at = sim.reset(seed + i), [], None
            for t in range(max_steps):
                labels.append(sim.segment())
                obs, success, done = sim.step(sim.act(obs))
                if success and success_at is None:
                    success_at = t
                if done or (success_at is not None and t - success_at >= script.STEPS_AFTER_SUCCESS):
                    break
            out.append({k: np.stack([frame[k] for frame in labels]) for k in labels[0]})
    finally:
        sim.close()
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def measure(keep: np.ndarray, labels: np.ndarray, fine: np.ndarray) -> dict:
    """keep: bool (T, H, W); labels: the truth (T, H, W); fine: the truth at k times the size (T, kH, kW)."""
    frames, h, w = labels.shape
    k = fine.shape[1] // h
    truth = labels > 0
    cover = (fine > 0).reshape(frames, h, k, w, k).mean(axis=(2, 4))
    ious = np.array([iou(p, q) for p, q in zip(keep, truth)])
    err = keep != truth
    pure = err & ((cover == 0) | (cover == 1))
    ambiguous = err & (cover >= 0.25) & (cover <= 0.75)
    near = err & ~pure & ~ambiguous

    def fixed(m: np.ndarray) -> float:
        return min(iou(np.where(f, q, p), q) for p, q, f in zip(keep, truth, m))

    n = max(int(err.sum()), 1)
    half = k // 2
    return {"iou_min": float(ious.min()), "oracle": min(iou(c >= 0.5, q) for c, q in zip(cover, truth)),
            "half_px": min(iou(a, b) for a, b in zip(fine[:, ::k, ::k] > 0, fine[:, half::k, half::k] > 0)),
            "agree": float(((cover >= 0.5) == truth).mean()), "error_px": int(err.sum()),
            "pure": float(pure.sum() / n), "ambiguous": float(ambiguous.sum() / n), "near": float(near.sum() / n),
            "fix_pure": fixed(pure), "fix_pure_near": fixed(pure | near)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", type=Path, help="a MetaWorld dataset written with make_sim_dataset.py --masks")
    p.add_argument("--task", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--max-steps", type=int, default=100)
    p.add_argument("--cameras", nargs="+", default=["corner2"])
    p.add_argument("--factor", type=int, default=4, help="the truth is rendered this many times larger (even)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    source = LeRobotSource(args.root)
    script = _script()
    first = script.load_masks(args.root, 0)[f"observation.images.{args.cameras[0]}"]
    fine = render_truth(args.task, args.seed, len(source.episodes), first.shape[1] * args.factor, args.cameras,
                        args.max_steps)
    rows = []
    for ep, fine_ep in enumerate(fine):
        episode, truth = source.read_episode(ep), script.load_masks(args.root, ep)
        for camera in args.cameras:
            key = f"observation.images.{camera}"
            labels = truth[key]
            if len(fine_ep[camera]) != len(labels):
                raise SystemExit(f"episode {ep}: {len(fine_ep[camera])} frames rendered, {len(labels)} recorded "
                                 "(another --task, --seed or --max-steps?)")
            row = {"episode": ep, "camera": camera,
                   **measure(workspace_masks(episode.frames[key]).keep, labels, fine_ep[camera])}
            rows.append(row)
            print(" ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
