"""Per-dimension calibration of the action labels: a scale and a bias fitted on the selection episodes
(never trained on), applied to every label the model writes.

A network trained with MSE on few episodes regresses to the mean: its labels have the right shape but
are too small (std of labels / std of truth < 1), and a policy trained on them inherits timid actions.
The fit matches the labels' mean and spread to the truth's on the selection episodes (moment matching,
not least squares: least squares keeps the shrinkage, since its slope is correlation x std ratio).
"""

from __future__ import annotations

import numpy as np

MIN_STD = 1e-3            # normalised units: a dimension that barely moves on the selection episodes stays as is
SCALE_LIMITS = (0.5, 2.0)  # a few selection episodes must not blow labels up (or squash them) more than this


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
