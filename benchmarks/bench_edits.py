#!/usr/bin/env python
"""How well do the weight-free segmenters and the background edit keep what matters? Measured
against the simulator's own ground truth.

Record episodes with ground truth, then score them:

    python scripts/make_sim_dataset.py --sim metaworld --episodes 6 --seed 100 --cameras corner2,corner4 \
        --masks --out /tmp/gt
    python benchmarks/bench_edits.py /tmp/gt --cameras corner2 corner4

Per segmenter, camera and class it prints the keep-mask's IoU with the truth's (robot ∪ objects ∪
table), worst and mean over every frame, the boundary error (mean distance in px between the two
masks' outlines, both ways), and recall per class (the fraction of robot / object / table pixels
kept) with the fraction of the true background that is kept by mistake. With --edit it runs the
`background` stage as the demo does and reports the fraction of each class's pixels it changed
(the workspace should stay untouched: 0) and of the background it changed (should be ~1);
`--edit surface` runs the table re-texturing instead (table ~1, everything else ~0); `--edit variants`
the edited copies the IDM and the video-model fine-tune train on (editors.background.procedural_variants,
one copy). Every row also has the seconds its segmenter or edit took on the episode's camera.
Segmenters: `motion` (editors/segment.foreground_masks, what the edits used before) and
`workspace` (editors/workspace.workspace_masks, what they use now).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from augment.source import LeRobotSource  # noqa: E402
from editors.segment import foreground_masks  # noqa: E402
from editors.workspace import workspace_masks  # noqa: E402

CLASSES = {0: "background", 1: "table", 2: "robot", 3: "object"}


def load_truth(root: Path, episode: int) -> dict[str, np.ndarray]:
    with np.load(root / "masks" / f"episode_{episode:06d}.npz") as data:
        return {k: data[k] for k in data.files}


def segment(kind: str, video: np.ndarray) -> np.ndarray:
    if kind == "motion":
        return foreground_masks(video)
    if kind == "workspace":
        return workspace_masks(video).keep
    raise ValueError(f"unknown segmenter {kind!r}")


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    union = (pred | truth).sum()
    return float((pred & truth).sum() / union) if union else 1.0


def outline(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.uint8)
    return (m - cv2.erode(m, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)).astype(bool)


def boundary_error(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean distance (px) from each outline pixel of one mask to the other's outline, both ways."""
    a, b = outline(pred), outline(truth)
    if not a.any() or not b.any():
        return 0.0 if a.any() == b.any() else float(max(pred.shape))
    to_b = cv2.distanceTransform((~b).astype(np.uint8), cv2.DIST_L2, 3)
    to_a = cv2.distanceTransform((~a).astype(np.uint8), cv2.DIST_L2, 3)
    return float((to_b[a].sum() + to_a[b].sum()) / (a.sum() + b.sum()))


def score(pred: np.ndarray, labels: np.ndarray) -> dict:
    """pred: bool (T, H, W) keep-mask; labels: uint8 (T, H, W) truth classes."""
    truth = labels > 0
    ious = np.array([iou(p, t) for p, t in zip(pred, truth)])
    bounds = np.array([boundary_error(p, t) for p, t in zip(pred, truth)])
    out = {"iou_min": float(ious.min()), "iou_mean": float(ious.mean()), "iou_frame0": float(ious[0]),
           "boundary_mean": float(bounds.mean()), "boundary_max": float(bounds.max())}
    for c, name in CLASSES.items():
        sel = labels == c
        if sel.any():
            out[f"kept_{name}"] = float(pred[sel].mean())
    # objects present in every frame: the worst frame's recall of object pixels
    per_frame = [float(p[lab == 3].mean()) for p, lab in zip(pred, labels) if (lab == 3).any()]
    if per_frame:
        out["object_min_frame"] = min(per_frame)
    return out


def changed_by_edit(source: np.ndarray, edited: np.ndarray, labels: np.ndarray) -> dict:
    """Per class, the share of its pixels the edit changed; `_inner`: only the pixels whose 3x3
    neighbourhood is all of the class (an outline pixel is a blend of two classes, which an edit that
    unmixes its seam changes on purpose)."""
    changed = (source != edited).any(axis=-1)
    out = {}
    for c, name in CLASSES.items():
        where = labels == c
        if not where.any():
            continue
        out[f"changed_{name}"] = float(changed[where].mean())
        inner = np.stack([cv2.erode(w.astype(np.uint8), np.ones((3, 3), np.uint8)) for w in where]).astype(bool)
        if inner.any():
            out[f"changed_{name}_inner"] = float(changed[inner].mean())
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", type=Path, help="a dataset written with make_sim_dataset.py --masks")
    p.add_argument("--cameras", nargs="+", default=["corner2"], help="fixed cameras to score (default: corner2)")
    p.add_argument("--segmenters", nargs="*", default=["motion", "workspace"], help="none: only --edit")
    p.add_argument("--episodes", type=int, nargs="*", help="episode indices (default: all)")
    p.add_argument("--edit", nargs="?", const="background", choices=["background", "surface", "variants", "background-surface"],
                   help="also run this edit (default: background) and count the changed pixels per class "
                        "(background-surface: surface's changes to background's output, chained as a pipeline)")
    p.add_argument("--json", type=Path, help="write every per-episode figure here")
    args = p.parse_args(argv)

    source = LeRobotSource(args.root)
    episodes = args.episodes if args.episodes else list(range(len(source.episodes)))
    rows = []
    for ep in episodes:
        episode = source.read_episode(ep)
        truth = load_truth(args.root, ep)
        for camera in args.cameras:
            key = camera if camera.startswith("observation.images.") else f"observation.images.{camera}"
            video, labels = episode.frames[key], truth[key]
            for kind in args.segmenters:
                started = time.perf_counter()
                keep = segment(kind, video)
                rows.append({"episode": ep, "camera": key.removeprefix("observation.images."), "segmenter": kind,
                             "seconds": time.perf_counter() - started, **score(keep, labels)})
            if args.edit:
                started = time.perf_counter()
                one = episode.replace(frames={key: video})
                if args.edit == "background-surface":  # what surface changes in background's output
                    one = run_stage("background", one, key)
                    before, edited = one.frames[key], run_stage("surface", one, key).frames[key]
                else:
                    before, edited = video, run_edit(args.edit, one, key)
                rows.append({"episode": ep, "camera": key.removeprefix("observation.images."), "segmenter": args.edit,
                             "seconds": time.perf_counter() - started, **changed_by_edit(before, edited, labels)})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    report(rows)


def run_edit(kind: str, episode, key: str) -> np.ndarray:
    """The edited frames of one camera: a stage as the demo runs it, or one edited copy (`variants`)."""
    if kind == "variants":
        from editors.background import procedural_variants

        return procedural_variants(episode.frames[key], [0])[0]
    return run_stage(kind, episode, key).frames[key]


def run_stage(kind: str, episode, key: str):
    """The stage `kind` on one camera of the episode, as a pipeline runs it (one variant): its output."""
    from augment.registry import spec_class

    stage = spec_class(kind)(cameras=[key]).build()
    stage.setup()
    return stage([episode])[0]


def report(rows: list[dict]) -> None:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["camera"], r["segmenter"]), []).append(r)
    for (camera, kind), rs in groups.items():
        keys = [k for k in rs[0] if k not in ("episode", "camera", "segmenter")]
        # the worst episode: the largest error or the smallest share of what should be kept
        higher_is_worse = ("seconds", "boundary", "kept_background", "changed_table", "changed_robot", "changed_object")
        if kind in ("surface", "background-surface"):  # the table is what this edit should change
            higher_is_worse = ("seconds", "changed_background", "changed_robot", "changed_object")
        worst = {k: max if k.startswith(higher_is_worse) else min for k in keys}
        parts = []
        for k in keys:
            values = [r[k] for r in rs if k in r]
            parts.append(f"{k} {np.mean(values):.3f} (worst {worst[k](values):.3f})")
        print(f"{camera:10s} {kind:9s} {len(rs)} episodes: " + ", ".join(parts))


if __name__ == "__main__":
    main()
