"""Per-dimension calibration of the action labels: a scale and a bias fitted on the selection episodes
(never trained on), applied to every label the model writes.

A network trained with MSE on few episodes regresses to the mean: its labels have the right shape but
are too small (std of labels / std of truth < 1), and a policy trained on them inherits timid actions.
The fit matches the labels' mean and spread to the truth's on the selection episodes (moment matching,
not least squares: least squares keeps the shrinkage, since its slope is correlation x std ratio).

A fit on few selection episodes is itself noisy: one MetaWorld episode that barely moved up or down
set delta_z's scale to 0.85 where the held-out episodes wanted 1.1, taking the held-out scale from 0.90
to 0.76. So the fitted map is blended with the identity in proportion to the selection episodes it
saw, and applied in full from FULL_WEIGHT_EPISODES on (`shrink_calibration`).
"""

from __future__ import annotations

import numpy as np

MIN_STD = 1e-3            # normalised units: a dimension that barely moves on the selection episodes stays as is
SCALE_LIMITS = (0.5, 2.0)  # a few selection episodes must not blow labels up (or squash them) more than this
FULL_WEIGHT_EPISODES = 3  # selection episodes from which the fit is applied as fitted; fewer pull it to identity


def fit_calibration(pred: np.ndarray, true: np.ndarray) -> dict[str, list[float]]:
    """pred, true: (N, D) normalised actions -> {"scale", "bias"} such that scale * pred + bias has the
    truth's mean and std per dimension; identity where either side is (nearly) constant."""
    pred = np.asarray(pred, dtype=np.float64).reshape(len(pred), -1)
    true = np.asarray(true, dtype=np.float64).reshape(len(true), -1)
    if pred.shape != true.shape or not len(pred):
        raise ValueError(f"calibration needs matching, non-empty predictions and truth; got {pred.shape} and {true.shape}")
    p_std, t_std = pred.std(axis=0), true.std(axis=0)
    movable = (p_std > MIN_STD) & (t_std > MIN_STD)
    scale = np.where(movable, np.clip(t_std / np.maximum(p_std, MIN_STD), *SCALE_LIMITS), 1.0)
    bias = np.where(movable, true.mean(axis=0) - scale * pred.mean(axis=0), 0.0)
    return {"scale": scale.tolist(), "bias": bias.tolist()}


def apply_calibration(z: np.ndarray, calibration: dict | None) -> np.ndarray:
    """(T, D) normalised actions -> calibrated; unchanged without a calibration."""
    if not calibration:
        return z
    scale = np.asarray(calibration["scale"], dtype=np.float32)
    return (z * scale + np.asarray(calibration["bias"], dtype=np.float32)).astype(np.float32)


def calibration_weight(episodes: int) -> float:
    """How much of a fit on `episodes` selection episodes is applied: 0 (none) .. 1 (all)."""
    return min(1.0, max(episodes, 0) / FULL_WEIGHT_EPISODES)


def shrink_calibration(calibration: dict, weight: float) -> dict[str, list[float]]:
    """The fitted map blended with the identity: labels move `weight` of the way from the network's own
    (weight 0) to the fitted calibration's (weight 1), i.e. scale 1 + w (s - 1) and bias w b."""
    scale, bias = np.asarray(calibration["scale"], np.float64), np.asarray(calibration["bias"], np.float64)
    return {"scale": (1.0 + weight * (scale - 1.0)).tolist(), "bias": (weight * bias).tolist()}
