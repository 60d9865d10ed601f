"""`augment check DATASET_ROOT`: run the verifiers on any existing LeRobot dataset, generated or real.

One line per episode (or, with --json, one JSON object per line with episode_index, passed, scores,
reasons and failures: one {stage, check, score, minimum, frame, camera} per failed check, frame and
camera where the check knows them); --html OUT.html also writes the review page (verifiers/review.py).
Exits 1 when any episode fails (so a script or CI step stops), 0 when all pass; --exit-zero always 0. The consistency
checks always run; a VLM runs too when --vlm MODEL is given or --spec names a `vlm` stage (the
verifier stages of a pipeline spec are used with their settings and thresholds).
"""

from __future__ import annotations

import json
from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("check", help="run the verifiers on an existing dataset; --html writes a review page",
                              description=__doc__)
    p.add_argument("root", type=Path, help="dataset root (the folder holding meta/info.json)")
    p.add_argument("--json", action="store_true", help="one JSON object per episode per line")
    p.add_argument("--spec", type=Path, help="take the verifier stages (consistency, vlm) from this pipeline spec")
    p.add_argument("--vlm", metavar="MODEL", help="also score with this image-text-to-text model (id or path)")
    p.add_argument("--episodes", nargs="*", help='indices or ranges, e.g. 0 3 10:20; default all')
    p.add_argument("--source-stats", help="stats.json with action q01/q99 (default: the dataset's own)")
    p.add_argument("--html", type=Path, metavar="OUT.html", help="write the review page here")
    p.add_argument("--exit-zero", action="store_true", help="exit 0 even when episodes fail (default: 1)")


def verifier_specs(args) -> list:
    from verifiers.consistency import ConsistencySpec
    from verifiers.vlm import VLMSpec

    specs = []
    if args.spec is not None:
        from augment.spec import load_spec

        specs = [s for s in load_spec(args.spec).stages if isinstance(s, (ConsistencySpec, VLMSpec))]
    if not any(isinstance(s, ConsistencySpec) for s in specs):
        specs.insert(0, ConsistencySpec())
    if args.source_stats:
        specs = [s.model_copy(update={"source_stats": args.source_stats}) if isinstance(s, ConsistencySpec) else s
                 for s in specs]
    if args.vlm:
        specs.append(VLMSpec(model=args.vlm))
    return specs


def check_dataset(root, specs, episodes=None):
    """Yield one result dict per episode: episode_index, uid, passed, scores, reasons, failures."""
    from augment.source import LeRobotSource

    source = LeRobotSource(root)
    stages = [spec.build() for spec in specs]
    for stage in stages:
        stage.setup()
    for index in source.select(episodes):
        episode = source.read_episode(index)
        episode.provenance = {"source": episode.provenance["source"]}  # fresh scores, not the stored ones
        reasons = []
        for stage in stages:
            episode = stage([episode])[0]
            dropped = episode.provenance.pop("dropped", None)
            if dropped:
                reasons.append(dropped["reason"])
        yield {"episode_index": index, "uid": episode.uid, "passed": not reasons,
               "scores": episode.provenance.get("scores", {}), "reasons": reasons,
               "failures": failed_checks(episode, specs)}


def failed_checks(episode, specs) -> list[dict]:
    """Each check under its minimum (and each stage under its min_score), with where it happened."""
    records = {r["stage"]: r for r in episode.provenance.get("stages", [])}
    scores = episode.provenance.get("scores", {})
    out = []
    for spec in specs:
        details = records.get(spec.label, {}).get("details", {})
        for check, minimum in spec.thresholds.min_check.items():
            value = scores.get(f"{spec.label}/{check}")
            if value is not None and value < minimum:
                where = {k: details.get(check, {}).get(k) for k in ("frame", "camera")}
                out.append({"stage": spec.label, "check": check, "score": value, "minimum": minimum,
                            **{k: v for k, v in where.items() if v is not None}})
        combined = scores.get(spec.label)
        if combined is not None and combined < spec.thresholds.min_score:
            out.append({"stage": spec.label, "check": None, "score": combined, "minimum": spec.thresholds.min_score})
    return out


def run(args) -> int:
    episodes = [int(e) if e.isdigit() else e for e in args.episodes] if args.episodes else None
    failed = total = 0
    for result in check_dataset(args.root, verifier_specs(args), episodes):
        total += 1
        failed += not result["passed"]
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            verdict = "ok  " if result["passed"] else "FAIL"
            print(f"episode {result['episode_index']:5d} {verdict} total={result['scores'].get('total', 1.0):.3f}"
                  + (f"  {'; '.join(result['reasons'])}" if result["reasons"] else ""), flush=True)
    if not args.json:
        print(f"{total - failed}/{total} episodes passed")
    if args.html:
        from verifiers.review import build_review

        path = build_review(args.root, args.html)
        if not args.json:
            print(f"review page: {path}")
    return 0 if failed == 0 or args.exit_zero else 1
