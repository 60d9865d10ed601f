"""How verifier scores combine, how thresholds turn into drops, and where scores live in provenance.

Every score is in [0, 1], 1 meaning "looks right". A verifier stage writes its checks' scores as
provenance["scores"]["<stage>/<check>"], its own combined score as provenance["scores"]["<stage>"],
and the job-wide provenance["scores"]["total"]: the weighted mean of every verifier stage's combined
score seen so far. The sink ranks best-of-N by that total (sink.top_k), so two verifier stages in one
spec (consistency, then a VLM) both count.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from augment.stage import StrictSpec


class Thresholds(StrictSpec):  # nested blocks are as strict as the stage
    """Drop rules: an episode whose score is under a minimum is dropped with that as the reason."""

    model_config = ConfigDict(extra="forbid")

    min_score: float = Field(0.0, ge=0, le=1, description="minimum of this stage's combined score")
    min_check: dict[str, float] = Field(
        default_factory=dict, description="per-check minimums, e.g. {frozen: 0.5, jump: 0.5}"
    )


def weighted_mean(scores: dict[str, float], weights: dict[str, float]) -> float:
    total_weight = sum(weights.get(name, 1.0) for name in scores)
    if total_weight <= 0:
        return 1.0
    return float(sum(s * weights.get(name, 1.0) for name, s in scores.items()) / total_weight)


def failures(checks: dict[str, float], combined: float, thresholds: Thresholds, label: str) -> list[str]:
    """Reasons (human-readable) for every threshold this episode misses; empty when it passes."""
    reasons = [f"{label}/{name} = {checks[name]:.3f} < {minimum}"
               for name, minimum in thresholds.min_check.items() if name in checks and checks[name] < minimum]
    if combined < thresholds.min_score:
        reasons.append(f"{label} = {combined:.3f} < {thresholds.min_score}")
    return reasons


def record_scores(provenance: dict[str, Any], label: str, checks: dict[str, float], combined: float,
                  weight: float = 1.0) -> dict[str, float]:
    """Write one stage's scores into provenance and recompute the total; returns provenance["scores"]."""
    scores = provenance.setdefault("scores", {})
    for name, value in checks.items():
        scores[f"{label}/{name}"] = round(float(value), 4)
    scores[label] = round(float(combined), 4)
    stage_weights = provenance.setdefault("score_weights", {})
    stage_weights[label] = weight
    scores["total"] = round(weighted_mean({k: scores[k] for k in stage_weights if k in scores}, stage_weights), 4)
    return scores


def check_names(thresholds: Thresholds, known: list[str], label: str) -> None:
    unknown = sorted(set(thresholds.min_check) - set(known))
    if unknown:
        raise ValueError(f"{label}: thresholds.min_check names unknown check(s) {unknown}; valid: {sorted(known)}")
