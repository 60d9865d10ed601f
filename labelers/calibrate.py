"""Per-dimension calibration of the action labels: a scale and a bias fitted on the selection episodes
(never trained on), applied to every label the model writes.

A network trained with MSE on few episodes regresses to the mean: its labels have the right shape but
are too small (std of labels / std of truth < 1), and a policy trained on them inherits timid actions.
The fit matches the labels' mean and spread to the truth's on the selection episodes (moment matching,
not least squares: least squares keeps the shrinkage, since its slope is correlation x std ratio).

The scale is the median over the selection episodes of each episode's ratio, not one ratio over all
their steps: on pusht (80 episodes) one selection episode whose agent sat pinned at the workspace's edge,
where the model's labels fell short by 60 px, set target_y's pooled ratio to 1.23 where the others gave
1.05-1.16, and the held-out labels came out 19% too large (1.04 with the median).

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


def fit_calibration(preds: list[np.ndarray], truths: list[np.ndarray]) -> dict[str, list[float]]:
    """Per episode (T, D) normalised labels and truth -> {"scale", "bias"} such that scale * label + bias
    has the truth's spread (the median over episodes of std truth / std label) and, over all the steps,
    its mean; identity on a dimension that no episode moves along (nearly constant on either side)."""
    preds = [np.asarray(p, dtype=np.float64).reshape(len(p), -1) for p in preds]
    truths = [np.asarray(t, dtype=np.float64).reshape(len(t), -1) for t in truths]
    if not preds or len(preds) != len(truths) or any(p.shape != t.shape or not len(p) for p, t in zip(preds, truths)):
        raise ValueError("calibration needs matching, non-empty predictions and truth per episode; got "
                         f"{[p.shape for p in preds]} and {[t.shape for t in truths]}")
    p_std, t_std = np.array([p.std(axis=0) for p in preds]), np.array([t.std(axis=0) for t in truths])
    ratios = np.where((p_std > MIN_STD) & (t_std > MIN_STD), t_std / np.maximum(p_std, MIN_STD), np.nan)
    movable = ~np.isnan(ratios).all(axis=0)
    scale = np.ones(ratios.shape[1])
    if movable.any():
        scale[movable] = np.clip(np.nanmedian(ratios[:, movable], axis=0), *SCALE_LIMITS)
    pred_mean, true_mean = np.concatenate(preds).mean(axis=0), np.concatenate(truths).mean(axis=0)
    bias = np.where(movable, true_mean - scale * pred_mean, 0.0)
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


# The uncertainty's two parts are weighed on the selection episodes too. The error head learns from
# training residuals, taken with dropout on and on windows the network has fitted, and the windows'
# disagreement is a spread, not an error: on pusht (40 episodes) the head alone ranked held-out errors
# at Spearman 0.20, the disagreement at 0.43, their plain sum at 0.35 and the weighted sum at 0.44.
UNCERTAINTY_GRID = 10.0 ** np.linspace(-2, 2, 41)  # weights tried for each part


def fit_uncertainty(errors: np.ndarray, disagreement: np.ndarray, residuals: np.ndarray) -> dict[str, float]:
    """Per-step (N, D) error-head std, windows' disagreement and label residuals (normalised, on episodes
    never trained on) -> weights {"error_head": a, "disagreement": b} maximising the Gaussian likelihood
    of the residuals under the variance a * error**2 + b * disagreement**2 (a grid: two numbers, no solver)."""
    e2, d2, r2 = (np.asarray(x, np.float64).ravel() ** 2 for x in (errors, disagreement, residuals))
    if not len(r2) or not e2.shape == d2.shape == r2.shape:
        raise ValueError(f"uncertainty fit needs matching, non-empty arrays; got {e2.shape}, {d2.shape}, {r2.shape}")
    best, weights = np.inf, (1.0, 1.0)
    for a in UNCERTAINTY_GRID:
        var = a * e2[None, :] + UNCERTAINTY_GRID[:, None] * d2[None, :] + 1e-12
        nll = 0.5 * (np.log(var) + r2[None, :] / var).mean(axis=1)
        i = int(np.argmin(nll))
        if nll[i] < best:
            best, weights = nll[i], (float(a), float(UNCERTAINTY_GRID[i]))
    return {"error_head": round(weights[0], 4), "disagreement": round(weights[1], 4)}
