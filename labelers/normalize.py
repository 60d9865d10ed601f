"""Mean/std normalisation from a dataset's meta/stats.json (lerobot's layout).

The IDM learns normalised targets so that every action and state dimension weighs the same in the
loss, and un-normalises its outputs with the same numbers: the labels come out in the source
dataset's units and scale.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MIN_STD = 1e-6  # a constant dimension (e.g. an unused gripper) must not divide by zero


@dataclass
class Normalizer:
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def from_stats(cls, stats: dict, key: str) -> Normalizer:
        if key not in stats:
            raise ValueError(f"meta/stats.json has no entry for {key!r}; it has {sorted(stats)}")
        entry = stats[key]
        mean = np.asarray(entry["mean"], dtype=np.float32).reshape(-1)
        std = np.maximum(np.asarray(entry["std"], dtype=np.float32).reshape(-1), MIN_STD)
        return cls(mean, std)

    @classmethod
    def from_dict(cls, d: dict) -> Normalizer:
        return cls(np.asarray(d["mean"], dtype=np.float32), np.asarray(d["std"], dtype=np.float32))

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    def normalize(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float32) - self.mean) / self.std).astype(np.float32)

    def unnormalize(self, z: np.ndarray) -> np.ndarray:
        return (np.asarray(z, dtype=np.float32) * self.std + self.mean).astype(np.float32)


def load_stats(root: str | Path) -> dict:
    path = Path(root) / "meta" / "stats.json"
    if not path.is_file():
        raise ValueError(f"{root}: meta/stats.json is missing; the IDM normalises with the source dataset's stats")
    return json.loads(path.read_text())
