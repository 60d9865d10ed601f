"""Learned verifier (`type: learned`): a logistic regression on the consistency checks' statistics,
trained on the user's own source dataset, clean vs self-corrupted (verifiers/corruptions.py). No
downloaded weights: `augment train-verifier --dataset ROOT --out DIR` writes DIR/verifier.json.

Why statistics and not pixels: every check measures one kind of failure on its own scale, and which
of them fire on clean footage depends on the scene (a swung door changes its handle's colour, a pushed
T block changes its place). A few weights fitted on this dataset say how much each statistic means here,
and the threshold is chosen so that at most `max_false_positive` of this dataset's clean episodes fail
(out of fold: a model rates the episodes it was fitted on too well).
Some corruption kinds are held out of training (--holdout) and the report says how many of them are
caught: whether it generalises to failures it never saw.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from augment.episode import Episode
from augment.stage import Stage
from verifiers.scores import failures, record_scores, Thresholds
from verifiers.specs import ConsistencySpec, LearnedSpec

MIN_FRAMES = 8  # a corrupted copy starts after frame 2 and needs frames after its start (verifiers/corruptions.py)
FEATURES = ("frozen", "static", "jump", "event", "cut", "settle", "new_colour", "colour_mass", "objects", "objects_persist",
            "patch")


def features(frames: np.ndarray, fps: float | None = None, names: tuple[str, ...] | list[str] = FEATURES) -> np.ndarray:
    """The feature vector of one camera's frames: log of each named check statistic (gate on)."""
    from verifiers.consistency import video_checks

    _, details = video_checks(frames, ConsistencySpec(checks=list(names)), fps)
    return features_from_stats({c: d.get("stat") for c, d in details.items()}, names)


def features_from_stats(stats: dict[str, float], names: tuple[str, ...] | list[str] = FEATURES) -> np.ndarray:
    """Log statistics; a check that did not run (a moving camera gets fewer, verifiers/consistency.py)
    found nothing: 0."""
    return np.log(np.array([float(stats.get(c) or 0.0) for c in names]) + 1e-4)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 3000, lr: float = 0.5) -> dict:
    """Logistic regression (y = 1: clean) on standardised features, by gradient descent; balanced classes."""
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / std
    w, b = np.zeros(z.shape[1]), 0.0
    sample = np.where(y == 1, 0.5 / max(y.sum(), 1), 0.5 / max((1 - y).sum(), 1))
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(z @ w + b)))
        g = (p - y) * sample
        w -= lr * (z.T @ g + l2 * w)
        b -= lr * g.sum()
    return {"features": list(FEATURES), "mean": mean.tolist(), "std": std.tolist(), "weights": w.tolist(), "bias": b}


def predict(model: dict, x: np.ndarray) -> np.ndarray:
    """P(clean) for each row of x."""
    z = (np.atleast_2d(x) - np.asarray(model["mean"])) / np.asarray(model["std"])
    return 1 / (1 + np.exp(-(z @ np.asarray(model["weights"]) + model["bias"])))


def fit_with_threshold(x: np.ndarray, y: np.ndarray, groups: np.ndarray, max_false_positive: float,
                       folds: int = 4) -> dict:
    """Fit on everything; choose the threshold on out-of-fold P(clean) of the clean rows (folds by
    `groups`, the episode): a model scores its own training episodes too well, and a threshold set on
    them rejects far more than `max_false_positive` of new clean episodes."""
    model = fit_logistic(x, y)
    unique = np.unique(groups)
    out_of_fold = []
    for k in range(min(folds, len(unique))):
        held = np.isin(groups, unique[k::folds])
        if not (~held).any() or y[~held].min() == y[~held].max():
            continue  # a fold without both classes to learn from (one training episode: none)
        fold = fit_logistic(x[~held], y[~held])
        out_of_fold.append(predict(fold, x[held & (y == 1)]))
    p_clean = np.concatenate(out_of_fold) if out_of_fold else predict(model, x[y == 1])
    model["threshold"] = choose_threshold(p_clean, max_false_positive)
    return model


def choose_threshold(p_clean: np.ndarray, max_false_positive: float) -> float:
    """The largest threshold under which at most `max_false_positive` of the clean episodes fall."""
    return float(np.quantile(p_clean, max_false_positive)) if len(p_clean) else 0.5


def load_model(folder: str | Path) -> dict:
    path = Path(folder) / "verifier.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no learned verifier here; write one with `augment train-verifier`")
    return json.loads(path.read_text())


class LearnedStage(Stage):
    spec: LearnedSpec

    def setup(self) -> None:
        self.model = load_model(self.spec.model)
        self.threshold = self.spec.threshold if self.spec.threshold is not None else self.model["threshold"]

    def __call__(self, episodes: list[Episode]) -> list[Episode]:
        if not hasattr(self, "model"):
            self.setup()
        for episode in episodes:
            cameras = [self.spec.camera] if self.spec.camera else list(episode.frames)
            names = self.model["features"]  # as trained: a model from an older version keeps its own
            p = min(float(predict(self.model, features(episode.frames[c], episode.fps, names))[0]) for c in cameras)
            checks = {"p_clean": p}
            scores = record_scores(episode.provenance, self.spec.label, checks, p, self.spec.weight)
            reasons = failures(checks, p, Thresholds(min_score=self.threshold), self.spec.label)
            self.record(episode, scores={"p_clean": round(p, 4)}, threshold=self.threshold, passed=not reasons)
            if reasons:
                self.drop(episode, "; ".join(reasons), **scores)
        return episodes


def reencode(frames: np.ndarray, fps: int, settings) -> np.ndarray:
    """Encode with the source's settings and decode, as the sink writes a generated episode: clean
    and corrupted training videos must carry the same codec traces, or the model learns the codec."""
    import tempfile

    from augment.video import VideoWriter, decode_segment

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.mp4"
        writer = VideoWriter(path, fps, settings)
        writer.append(frames)
        writer.close()
        return decode_segment(path, 0.0, len(frames) / fps, fps, expected=len(frames))


def train_verifier(root: str | Path, out: str | Path, holdout: tuple[str, ...] = ("morph", "cut"),
                   episodes: int | None = None, validation: float = 0.25, max_false_positive: float = 0.05,
                   seed: int = 0, log=print) -> dict:
    """Fit on the source's episodes (first camera) and self-corrupted copies of them, all kinds but
    `holdout`; choose the threshold on the training clean episodes; report on validation episodes:
    false positives, and the catch rate of every kind, trained-on and held-out."""
    from augment.source import LeRobotSource
    from augment.video import VideoSettings
    from verifiers.corruptions import KINDS, corrupt

    unknown = sorted(set(holdout) - set(KINDS))
    if unknown:
        raise ValueError(f"--holdout: unknown kinds {unknown}; valid: {list(KINDS)}")
    source = LeRobotSource(root)
    length = {int(e["episode_index"]): int(e["length"]) for e in source.episodes}
    indices = source.select(None)[:episodes]
    short = [i for i in indices if length[i] < MIN_FRAMES]
    if short:
        log(f"skipped {len(short)} episode(s) under {MIN_FRAMES} frames, too short to corrupt: {short[:10]}")
    indices = [i for i in indices if length[i] >= MIN_FRAMES]
    if not indices:
        raise ValueError(f"{root}: no episode has {MIN_FRAMES} frames or more; nothing to learn from")
    n_val = max(1, round(validation * len(indices))) if len(indices) > 1 else 0
    val_set = set(indices[len(indices) - n_val:])
    rows = []  # (episode, kind, features)
    for n, index in enumerate(indices):
        episode = source.read_episode(index)
        camera = sorted(episode.frames)[0]
        frames = episode.frames[camera]
        settings = VideoSettings.from_feature_info(source.features[camera].get("info", {}))
        rng = np.random.default_rng([seed, index])
        for kind in ("clean", *KINDS):
            video = frames if kind == "clean" else corrupt(frames, kind, rng)[0]
            rows.append((index, kind, features(reencode(video, episode.fps, settings), episode.fps)))
        log(f"episode {n + 1}/{len(indices)} ({index}): clean + {len(KINDS)} corrupted copies scored")
    train = [r for r in rows if r[0] not in val_set and r[1] not in holdout]
    x = np.stack([r[2] for r in train])
    y = np.array([r[1] == "clean" for r in train], dtype=float)
    model = fit_with_threshold(x, y, np.array([r[0] for r in train]), max_false_positive)
    evaluated = [r for r in rows if r[0] in val_set] or rows
    p = {id(r): float(predict(model, r[2])[0]) for r in evaluated}
    report = {"episodes": len(indices), "validation_episodes": sorted(val_set), "holdout_kinds": list(holdout),
              "threshold": model["threshold"],
              "false_positive_rate": float(np.mean([p[id(r)] < model["threshold"] for r in evaluated if r[1] == "clean"])),
              "catch_rate": {k: float(np.mean([p[id(r)] < model["threshold"] for r in evaluated if r[1] == k]))
                             for k in KINDS}}
    model["report"] = report
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "verifier.json").write_text(json.dumps(model, indent=2))
    return report
