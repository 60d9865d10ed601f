"""`augment check DATASET_ROOT`: run the verifiers on any existing LeRobot dataset, generated or real.

One line per episode (or, with --json, one JSON object per line with episode_index, passed, scores,
reasons, failures: one {stage, check, score, minimum, frame, camera} per failed check, frame and
camera where the check knows them, and moving_cameras: cameras judged as riding on the robot, where
only the checks that hold under the camera's own motion run); --html OUT.html also writes the review page (verifiers/review.py).
Exits 1 when any episode fails (so a script or CI step stops), 0 when all pass; --exit-zero always 0. The consistency
checks always run; a VLM runs too when --vlm MODEL is given or --spec names a `vlm` stage (the
verifier stages of a pipeline spec are used with their settings and thresholds).
"""

from __future__ import annotations

import json
import sys
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
    p.add_argument("--verifier", type=Path, metavar="DIR", help="also score with a learned verifier "
                   "(a folder written by `augment train-verifier`)")


def add_train_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train-verifier", help="learn clean vs self-corrupted episodes of a dataset (no downloaded weights)",
        description="Fit a learned verifier on a LeRobot dataset: its episodes, and copies of them with synthetic "
        "hallucinations (verifiers/corruptions.py), re-encoded with the source's codec, scored by the consistency "
        "checks; writes DIR/verifier.json (weights, threshold, and a report on validation episodes: false "
        "positives, and the catch rate per corruption kind, including kinds held out of training).")
    p.add_argument("--dataset", required=True, type=Path, help="source dataset root (holds meta/info.json)")
    p.add_argument("--out", required=True, type=Path, help="folder to write verifier.json into")
    p.add_argument("--holdout", default="morph,cut", help="corruption kinds left out of training (default: %(default)s)")
    p.add_argument("--episodes", type=int, help="use the first N episodes (default all)")
    p.add_argument("--max-false-positive", type=float, default=0.05,
                   help="threshold: at most this fraction of training clean episodes fail (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)


def verifier_specs(args) -> list:
    from verifiers.specs import ConsistencySpec
    from verifiers.specs import VLMSpec

    specs = []
    if args.spec is not None:
        from augment.spec import load_spec

        from verifiers.specs import LearnedSpec

        specs = [s for s in load_spec(args.spec).stages if isinstance(s, (ConsistencySpec, VLMSpec, LearnedSpec))]
    if not any(isinstance(s, ConsistencySpec) for s in specs):
        specs.insert(0, ConsistencySpec())
    if args.source_stats:
        specs = [s.model_copy(update={"source_stats": args.source_stats}) if isinstance(s, ConsistencySpec) else s
                 for s in specs]
    if args.vlm:
        specs.append(VLMSpec(model=args.vlm))
    if getattr(args, "verifier", None):
        from verifiers.learned import load_model
        from verifiers.specs import LearnedSpec

        load_model(args.verifier)  # a missing file is an error now, not after the first episode
        specs.append(LearnedSpec(model=str(args.verifier)))
    return specs


def check_dataset(root, specs, episodes=None):
    """Yield one result dict per episode: episode_index, uid, passed, scores, reasons, failures.

    The stages run as `augment run` runs them (augment/pipeline.py): checked against the dataset
    first (the cameras they name, the features they need), fed by its reader (decoding only the
    cameras they look at), each wrapped in RunStage with its lineage checks. One difference: an
    episode a verifier drops still goes on to the next, so every verifier scores every episode."""
    from augment.episode import Episode
    from augment.pipeline import ReadEpisodes, RunStage, batch_to_rows, resolve_stages, rows_to_batch
    from augment.source import LeRobotSource

    source = LeRobotSource(root)
    selected = source.select(episodes)
    specs, _, _ = resolve_stages(specs, source, selected)
    if any(spec.changes_frames for spec in specs):  # a dropped row carries no frames to go on with
        raise ValueError(f"augment check runs verifiers only; {[s.label for s in specs if s.changes_frames]} edit frames")
    decoded = sorted({c for spec in specs for c in spec.read_cameras(source.cameras)})
    reader = ReadEpisodes(str(root), None, decoded)
    stages = [RunStage(spec) for spec in specs]
    for index in selected:
        (row,) = batch_to_rows(reader({"episode_index": [index]}))
        reasons = []
        for stage in stages:
            (scored,) = batch_to_rows(stage(rows_to_batch([row])))
            if scored["dropped"]:  # the same frames, with the provenance the verifier gave them
                record = json.loads(scored["dropped"])
                reasons.append(record["reason"]["reason"])
                episode = Episode.from_bytes(row["episode"])
                episode.provenance = {k: v for k, v in record["provenance"].items() if k != "dropped"}
                scored = {**scored, "episode": episode.to_bytes(), "dropped": ""}
            row = scored
        episode = Episode.from_bytes(row["episode"])
        yield {"episode_index": index, "uid": episode.uid, "passed": not reasons,
               "scores": episode.provenance.get("scores", {}), "reasons": reasons,
               "failures": failed_checks(episode, specs), "moving_cameras": moving_cameras(episode)}


def moving_cameras(episode) -> list[str]:
    """The cameras the consistency checks judged as moving with the robot (fewer checks run there)."""
    return sorted({camera for record in episode.provenance.get("stages", [])
                   for camera in record.get("details", {}).get("camera_motion", {}).get("moving", [])})


def failed_checks(episode, specs) -> list[dict]:
    """Each check under its minimum (and each stage under its min_score), with where it happened."""
    records = {r["stage"]: r for r in episode.provenance.get("stages", [])}
    scores = episode.provenance.get("scores", {})
    out = []
    for spec in specs:
        details = records.get(spec.label, {}).get("details", {})
        if not hasattr(spec, "thresholds"):  # a learned verifier: one score, its own threshold
            record = records.get(spec.label, {})
            if record and not record.get("passed", True):
                out.append({"stage": spec.label, "check": "p_clean", "score": scores.get(spec.label),
                            "minimum": record.get("threshold")})
            continue
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
    moving: set[str] = set()
    for result in check_dataset(args.root, verifier_specs(args), episodes):
        total += 1
        failed += not result["passed"]
        moving.update(result["moving_cameras"])
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            verdict = "ok  " if result["passed"] else "FAIL"
            print(f"episode {result['episode_index']:5d} {verdict} total={result['scores'].get('total', 1.0):.3f}"
                  + (f"  {'; '.join(result['reasons'])}" if result["reasons"] else ""), flush=True)
    if not args.json:
        print(f"{total - failed}/{total} episodes passed")
        if moving:
            from verifiers.specs import MOVING_CAMERA_CHECKS

            print(f"moving with the robot (only {', '.join(MOVING_CAMERA_CHECKS)} run there): {', '.join(sorted(moving))}")
    if args.html:
        from verifiers.review import build_review

        path = build_review(args.root, args.html)
        if not args.json:
            print(f"review page: {path}")
    return 0 if failed == 0 or args.exit_zero else 1


def run_train(args) -> int:
    from verifiers.learned import train_verifier

    if not (args.dataset / "meta" / "info.json").is_file():
        print(f"error: {args.dataset}: not a LeRobot dataset (no meta/info.json)", file=sys.stderr)
        return 2
    try:
        report = train_verifier(args.dataset, args.out, tuple(k for k in args.holdout.split(",") if k),
                                args.episodes, max_false_positive=args.max_false_positive, seed=args.seed)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out / 'verifier.json'}: threshold P(clean) >= {report['threshold']:.3f}")
    print(f"validation episodes {report['validation_episodes']}: false positives "
          f"{report['false_positive_rate']:.0%}")
    for kind, rate in report["catch_rate"].items():
        note = "  (held out of training)" if kind in report["holdout_kinds"] else ""
        print(f"  {kind:10s} caught {rate:.0%}{note}")
    return 0
