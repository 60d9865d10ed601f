"""Feature statistics in lerobot's layout: min, max, mean, std, count and q01/q10/q50/q90/q99.

Per episode they are exact; across episodes they are aggregated the way lerobot aggregates them
(count-weighted means and quantiles, pooled variance), so meta/stats.json means the same thing in
our datasets as in lerobot's.
"""

from __future__ import annotations

import numpy as np

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f"q{int(q * 100):02d}" for q in QUANTILES)


def vector_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Stats over time of a (T, D) or (T,) array; each stat has shape (D,) ((1,) for scalars)."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr.reshape(arr.shape[0], -1)
    stats = {
        "min": arr.min(axis=0), "max": arr.max(axis=0), "mean": arr.mean(axis=0), "std": arr.std(axis=0),
        "count": np.array([arr.shape[0]]),
    }
    qs = np.quantile(arr, QUANTILES, axis=0)
    stats.update({key: qs[i] for i, key in enumerate(QUANTILE_KEYS)})
    return stats


def range_stats(start: float, n: int, step: float = 0) -> dict[str, np.ndarray]:
    """vector_stats of start, start + step, ... (n values; step 0: a constant) in closed form: the
    commit's index columns, per episode, without building and sorting them (it adds up at 100k episodes)."""
    at = lambda q: np.array([start + step * q * (n - 1)], dtype=np.float64)  # noqa: E731 numpy's linear quantile
    stats = {"min": at(0.0), "max": at(1.0), "mean": at(0.5),
             "std": np.array([abs(step) * np.sqrt((n * n - 1) / 12.0)]), "count": np.array([n])}
    stats.update({key: at(q) for q, key in zip(QUANTILES, QUANTILE_KEYS)})
    return stats


def _sample_indices(n: int) -> np.ndarray:
    # As lerobot samples image frames: up to ~n**0.75 frames, at least 100 (or all).
    num = n if n < 100 else max(100, min(int(n**0.75), 10_000))
    return np.round(np.linspace(0, n - 1, num)).astype(int)


def image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel stats of uint8 (T, H, W, 3) frames scaled to [0, 1]; shapes (3, 1, 1)."""
    return ImageStats(len(frames)).add(frames, 0).result()


class ImageStats:
    """image_stats of an episode of `n` frames, fed in chunks (add(chunk, start)): the same numbers.

    Computed from each channel's 256-bin histogram, which adds up over chunks: exact (the same
    numbers as np.mean/np.std/np.quantile on the pixels) and an order of magnitude faster than
    sorting millions of floats.
    """

    def __init__(self, n: int):
        self.sampled = _sample_indices(n)
        self.counts = np.zeros((3, 256), dtype=np.int64)

    def add(self, frames: np.ndarray, start: int) -> ImageStats:
        picked = self.sampled[(self.sampled >= start) & (self.sampled < start + len(frames))] - start
        if len(picked):
            sampled = frames[picked]
            h, w = sampled.shape[1:3]
            if max(h, w) >= 300:  # lerobot downsamples large images to about 150 px before measuring
                step = int(max(h, w) / 150)
                sampled = sampled[:, ::step, ::step]
            for c in range(3):
                self.counts[c] += np.bincount(sampled[..., c].ravel(), minlength=256)
        return self

    def result(self) -> dict[str, np.ndarray]:
        levels = np.arange(256) / 255.0
        per_channel = []
        for counts in self.counts:
            n = counts.sum()
            mean = (counts * levels).sum() / n
            present = np.flatnonzero(counts)
            cdf = np.cumsum(counts)
            stat = {"min": levels[present[0]], "max": levels[present[-1]], "mean": mean,
                    "std": np.sqrt((counts * (levels - mean) ** 2).sum() / n)}
            for key, q in zip(QUANTILE_KEYS, QUANTILES):
                pos = q * (n - 1)  # numpy's default ("linear") interpolation between order statistics
                lo, hi = np.searchsorted(cdf, [np.floor(pos), np.ceil(pos)], side="right")
                stat[key] = levels[lo] + (pos - np.floor(pos)) * (levels[hi] - levels[lo])
            per_channel.append(stat)
        stats = {k: np.array([ch[k] for ch in per_channel]).reshape(3, 1, 1) for k in per_channel[0]}
        stats["count"] = np.array([len(self.sampled)])
        return stats


def aggregate(stats_list: list[dict[str, dict[str, np.ndarray]]]) -> dict[str, dict[str, np.ndarray]]:
    """Combine per-episode stats into dataset stats."""
    keys = {k for s in stats_list for k in s}
    out = {}
    for key in sorted(keys):
        items = [s[key] for s in stats_list if key in s]
        counts = np.array([float(s["count"][0]) for s in items])
        total = counts.sum()
        w = counts.reshape(-1, *([1] * np.asarray(items[0]["mean"]).ndim))
        means = np.stack([s["mean"] for s in items])
        mean = (means * w).sum(axis=0) / total
        var = ((np.stack([s["std"] for s in items]) ** 2 + (means - mean) ** 2) * w).sum(axis=0) / total
        agg = {
            "min": np.min(np.stack([s["min"] for s in items]), axis=0),
            "max": np.max(np.stack([s["max"] for s in items]), axis=0),
            "mean": mean, "std": np.sqrt(var), "count": np.array([int(total)]),
        }
        for q in QUANTILE_KEYS:
            agg[q] = (np.stack([s[q] for s in items]) * w).sum(axis=0) / total
        out[key] = agg
    return out


def to_json(stats: dict[str, dict[str, np.ndarray]]) -> dict:
    return {k: {s: np.asarray(v).tolist() for s, v in d.items()} for k, d in stats.items()}
