"""Episodes as the IDM sees them: every camera resized to a small square, stacked per episode, plus
background-edited copies (the spine's weight-free editor) that teach the model to ignore the scene
and watch the robot.

Windows of frames are gathered on the fly from these arrays; an episode's borders repeat the first or
last frame, so every step t of every episode gets a label.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from augment.episode import resize_frames
from augment.stage import derive_seed


@dataclass
class IdmEpisode:
    uid: str
    index: int
    videos: np.ndarray                 # uint8 (cameras, T, S, S, 3)
    action: np.ndarray | None          # float32 (T, A), the truth when known
    state: np.ndarray | None           # float32 (T, S)
    edited: list[np.ndarray] = field(default_factory=list)  # background-edited copies of `videos`

    @property
    def length(self) -> int:
        return int(self.videos.shape[1])


# Optical flow rides along the RGB channels as two more uint8 channels: FLOW_ZERO + FLOW_PER_PX * pixels
# (+-5.3 px at the model's resolution; an arm step is well under a pixel at 64 px, a pusht step a few).
FLOW_ZERO, FLOW_PER_PX = 128, 24


def optical_flow(video: np.ndarray) -> np.ndarray:
    """uint8 (T, S, S, 3) -> uint8 (T, S, S, 2): dense Farneback flow from frame t to t+1 (zero at the
    last frame), quantised. Motion the model would otherwise have to learn to see from frame
    differences, with no weights to learn: what helps most when there are few episodes to learn from."""
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in video]
    flow = np.zeros(video.shape[:3] + (2,), np.float32)
    for t in range(len(gray) - 1):
        # Small frames: 2 pyramid levels, a 9 px window (OpenCV's defaults are for VGA-sized images).
        flow[t] = cv2.calcOpticalFlowFarneback(gray[t], gray[t + 1], None, 0.5, 2, 9, 3, 5, 1.1, 0)
    return np.clip(np.rint(FLOW_ZERO + FLOW_PER_PX * flow), 0, 255).astype(np.uint8)


def stack_cameras(frames: dict[str, np.ndarray], cameras: list[str], size: int, uid: str = "?",
                  motion: str = "none") -> np.ndarray:
    """-> uint8 (cameras, T, S, S, 3), or (..., 5) with motion="flow" (RGB + optical flow)."""
    missing = [c for c in cameras if c not in frames]
    if missing:
        raise ValueError(f"episode {uid}: the IDM needs camera(s) {missing}; the episode has {sorted(frames)}")
    videos = [resize_frames(frames[c], size, size, cv2.INTER_AREA) for c in cameras]
    if motion == "flow":
        videos = [np.concatenate([v, optical_flow(v)], axis=-1) for v in videos]
    return np.stack(videos)


def edited_copies(frames: dict[str, np.ndarray], cameras: list[str], size: int, count: int, seed: int,
                  uid: str, edit_cameras: list[str] | None = None, motion: str = "none",
                  plain: np.ndarray | None = None) -> list[np.ndarray]:
    """`count` copies with a new procedural background per camera in `edit_cameras` (default all;
    editors/background.py's recipe), edited at full resolution, then resized like the originals.
    A copy the edit left as recorded (no camera edited, or nothing found to change) is `plain`, the
    episode's own stack, when given, rather than resized and its optical flow computed again."""
    from editors.background import procedural_variants

    if count == 0:
        return []
    edited = {c: procedural_variants(frames[c], [derive_seed(seed, uid, variant, c) for variant in range(count)])
              for c in cameras if edit_cameras is None or c in edit_cameras}
    out = []
    for variant in range(count):
        videos = {c: copies[variant] for c, copies in edited.items()}
        if plain is not None and all(np.array_equal(v, frames[c]) for c, v in videos.items()):
            out.append(plain)
        else:
            out.append(stack_cameras({**frames, **videos}, cameras, size, uid, motion))
    return out


def load_dataset_episodes(root: str, cameras: list[str], size: int, edit_variants: int, seed: int,
                          indices: list[int] | None = None, edit_cameras: list[str] | None = None,
                          motion: str = "none") -> list[IdmEpisode]:
    from augment.source import LeRobotSource

    source = LeRobotSource(root, cameras)
    if "action" not in source.features:
        raise ValueError(f"{root}: the dataset has no 'action' feature; the IDM learns from recorded actions")
    out = []
    for index in source.select(indices):
        ep = source.read_episode(index)
        videos = stack_cameras(ep.frames, cameras, size, ep.uid, motion)
        out.append(IdmEpisode(
            uid=ep.uid, index=index, videos=videos, action=ep.action, state=ep.state,
            edited=edited_copies(ep.frames, cameras, size, edit_variants, seed, ep.uid, edit_cameras, motion, videos),
        ))
    return out


def duplicate_groups(root: str) -> dict[int, str]:
    """episode index -> fingerprint of its recorded actions and state. Simulators reseeded per episode
    can replay the same initial configuration (MetaWorld MT1 draws from a finite set of tasks); identical
    episodes on both sides of a split would let validation measure memory instead of generalisation."""
    import hashlib
    from pathlib import Path

    import pyarrow.parquet as pq

    columns = {}
    for path in sorted((Path(root) / "data").glob("chunk-*/file-*.parquet")):
        names = [c for c in ("episode_index", "action", "observation.state") if c in pq.read_schema(path).names]
        table = pq.read_table(path, columns=names).to_pydict()
        for i, episode in enumerate(table["episode_index"]):
            row = np.concatenate([np.ravel(table[c][i]) for c in names[1:]])  # action and state differ in size
            columns.setdefault(int(episode), []).append(row)
    out = {}
    for episode, rows in columns.items():
        values = np.round(np.asarray(rows, dtype=np.float64), 5)
        out[episode] = hashlib.sha256(values.tobytes()).hexdigest()[:16]
    return out


def split_episodes(indices: list[int], val_fraction: float, select_fraction: float, seed: int,
                   groups: dict[int, str] | None = None) -> tuple[list[int], list[int], list[int]]:
    """Split by episode (windows of one episode are near duplicates): train, select (early stopping),
    val (the report; never trained on, never used for a decision). Episodes with the same `groups`
    value (identical recordings) always land in the same part."""
    groups = groups or {}
    keys = list(dict.fromkeys(groups.get(i, f"episode-{i}") for i in indices))
    if len(keys) < 3:
        raise ValueError(f"the dataset has {len(keys)} distinct episode(s); the IDM needs at least 3 "
                         "(train, early stopping, validation)")
    order = [keys[i] for i in np.random.default_rng(seed).permutation(len(keys))]
    n_val = max(1, round(len(order) * val_fraction))
    n_select = max(1, round(len(order) * select_fraction)) if select_fraction > 0 else 0
    n_select = min(n_select, len(order) - n_val - 1)
    part = {k: ("val" if r < n_val else "select" if r < n_val + n_select else "train") for r, k in enumerate(order)}
    split = {"train": [], "select": [], "val": []}
    for i in indices:
        split[part[groups.get(i, f"episode-{i}")]].append(int(i))
    return split["train"], split["select"], split["val"]


def gather_windows(video: np.ndarray, ts, offsets: list[int]) -> np.ndarray:
    """video: uint8 (cameras, T, S, S, 3), steps ts -> uint8 (B, cameras, len(offsets), S, S, 3);
    offsets past an episode's ends repeat its first or last frame."""
    idx = np.clip(np.asarray(ts)[:, None] + np.asarray(offsets)[None, :], 0, video.shape[1] - 1)
    return video[:, idx].swapaxes(0, 1)


class PixelNormalizer:
    """uint8 windows -> float tensors normalised per camera and channel with the dataset's image stats;
    flow channels (motion="flow") become pixels of motion."""

    def __init__(self, means, stds, motion: str = "none"):
        import torch

        means = np.asarray(means, np.float32).reshape(len(means), 3)
        stds = np.maximum(np.asarray(stds, np.float32).reshape(len(stds), 3), 1e-3)
        if motion == "flow":
            means = np.concatenate([means, np.full((len(means), 2), FLOW_ZERO / 255, np.float32)], axis=1)
            stds = np.concatenate([stds, np.full((len(stds), 2), FLOW_PER_PX / 255, np.float32)], axis=1)
        channels = means.shape[1]
        self.mean = torch.as_tensor(means).view(1, -1, 1, channels, 1, 1)
        self.std = torch.as_tensor(stds).view(1, -1, 1, channels, 1, 1)

    def __call__(self, windows: np.ndarray, device: str = "cpu"):
        """uint8 (B, cameras, W, S, S, K) -> float (B, cameras, K * W, S, S) on `device`."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(windows)).to(device)
        x = x.permute(0, 1, 2, 5, 3, 4).float().div_(255.0)  # (B, C, W, K, S, S)
        x = (x - self.mean.to(device)) / self.std.to(device)
        b, c, w, k, s, _ = x.shape
        return x.reshape(b, c, w * k, s, s)
