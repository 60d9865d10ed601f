"""Which cameras are fixed: measured in the frames, so a spec need not name them.

A structure-preserving edit pastes one still background (or object) behind the moving robot. That
is right for a camera fixed in the room and wrong for one riding on the arm (a wrist camera), whose
whole view moves. Names do not tell (`observation.image`, `cam_high`, `gripperPOV`), the frames do:
in a fixed camera the scene's texture stays where it is while the arm passes, in a moving one it
slides. The measure is the share of textured pixels (edges of the median frame) that stay near
their median value; flat regions are left out because they look still in any camera.
"""

from __future__ import annotations

import numpy as np

FIXED_MIN_STILL = 0.6  # share of still edge pixels above which a camera counts as fixed
FRAMES_PER_EPISODE = 24
EPISODES = 3


def still_edge_share(frames: np.ndarray) -> float | None:
    """Share of textured pixels whose value stays within a small tolerance of their median over the
    frames, on uint8 (T, H, W, 3); None when there are too few frames or no texture to judge by."""
    if len(frames) < 3:
        return None
    gray = frames.astype(np.float32).mean(axis=-1)
    median = np.median(gray, axis=0)
    gy, gx = np.gradient(median)
    magnitude = np.hypot(gx, gy)
    edges = magnitude > max(float(np.percentile(magnitude, 75)), 4.0)
    if edges.sum() < 16:
        return None
    near = np.abs(gray - median) < 12.0  # codec noise and lighting flicker stay well under this
    return float(near.mean(axis=0)[edges].mean())


def measure_cameras(source, cameras: list[str], episodes: list[int]) -> dict[str, dict]:
    """Per camera: {"fixed": bool, "still_edges": share or None, "why": text}, from up to EPISODES
    episodes and FRAMES_PER_EPISODE frames of each (the mean of the episodes' shares)."""
    report = {}
    for key in cameras:
        shares = [still_edge_share(source.read_frames(index, key, FRAMES_PER_EPISODE)) for index in episodes[:EPISODES]]
        shares = [s for s in shares if s is not None]
        if not shares:
            report[key] = {"fixed": True, "still_edges": None,
                           "why": "too few frames or too little texture to measure; taken as fixed"}
            continue
        share = float(np.mean(shares))
        fixed = share >= FIXED_MIN_STILL
        report[key] = {"fixed": fixed, "still_edges": round(share, 3),
                       "why": f"{share:.0%} of the scene's edges stay in place "
                              f"({'>=' if fixed else '<'} {FIXED_MIN_STILL:.0%}): {'fixed' if fixed else 'moving'}"}
    return report
