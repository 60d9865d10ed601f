"""Per-dimension accuracy of predicted trajectories against the truth.

R² says how much of the variance is explained; the scale ratio (std of predictions / std of truth)
and the bias catch the failure users report most: labels with the right shape but the wrong size.
"""

from __future__ import annotations

import numpy as np


def regression_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, list[float]]:
    """pred, true: (N, D) -> {"r2", "mse", "scale", "bias"}, one value per dimension."""
    pred = np.asarray(pred, dtype=np.float64).reshape(len(pred), -1)
    true = np.asarray(true, dtype=np.float64).reshape(len(true), -1)
    if pred.shape != true.shape:
        raise ValueError(f"predictions {pred.shape} and truth {true.shape} differ in shape")
    err = pred - true
    var = true.var(axis=0)
    # A constant true dimension has no variance to explain: R² is 1 when it is hit exactly, else -inf
    # would say little; report 0 then (and the MSE/bias tell the story).
    r2 = np.where(var > 1e-12, 1.0 - (err**2).mean(axis=0) / np.maximum(var, 1e-12), 0.0)
    scale = np.where(var > 1e-12, pred.std(axis=0) / np.sqrt(np.maximum(var, 1e-12)), 0.0)
    return {
        "r2": r2.tolist(),
        "mse": (err**2).mean(axis=0).tolist(),
        "scale": scale.tolist(),
        "bias": err.mean(axis=0).tolist(),
    }


def format_table(report: dict, names: dict[str, list[str]] | None = None) -> str:
    """Rows: one per (group, dimension); columns: R², MSE, scale, bias."""
    names = names or {}
    lines = [f"{'':<10}{'dimension':<22}{'R2':>9}{'MSE':>12}{'scale':>9}{'bias':>11}"]
    for group, metrics in report.items():
        dims = len(metrics["r2"])
        labels = names.get(group) or [str(i) for i in range(dims)]
        for i in range(dims):
            lines.append(f"{group:<10}{labels[i][:21]:<22}{metrics['r2'][i]:>9.3f}{metrics['mse'][i]:>12.4g}"
                         f"{metrics['scale'][i]:>9.3f}{metrics['bias'][i]:>11.4g}")
    return "\n".join(lines)


# The bar labels must meet on validation episodes to be trusted (the same as benchmarks/bench_idm.py's).
R2_MIN, SCALE_RANGE = 0.9, (0.9, 1.1)


def trust_verdicts(metrics: dict, names: list[str] | None = None) -> list[dict]:
    """Per dimension of `metrics` (regression_metrics' output): whether its labels meet the bar
    (R² >= R2_MIN and scale within SCALE_RANGE), and if not, what misses it."""
    out = []
    for i, (r2, scale) in enumerate(zip(metrics["r2"], metrics["scale"])):
        misses = []
        if r2 < R2_MIN:
            misses.append(f"R² {r2:.2f} < {R2_MIN}")
        if scale < SCALE_RANGE[0]:
            misses.append(f"scale {scale:.2f} < {SCALE_RANGE[0]} (labels too small)")
        elif scale > SCALE_RANGE[1]:
            misses.append(f"scale {scale:.2f} > {SCALE_RANGE[1]} (labels too large)")
        name = names[i] if names and i < len(names) else str(i)
        out.append({"dimension": name, "r2": round(r2, 4), "scale": round(scale, 4), "trust": not misses,
                    "why": "; ".join(misses)})
    return out


def format_verdicts(verdicts: list[dict]) -> str:
    """One line per dimension: 'trust' or 'do not trust: <why>'."""
    width = max(len(v["dimension"]) for v in verdicts)
    return "\n".join(f"  {v['dimension']:<{width}}  " + ("trust" if v["trust"] else f"do not trust: {v['why']}")
                     for v in verdicts)
