#!/usr/bin/env python
"""Acceptance figures of the inverse-dynamics model on simulator episodes with the expert's true actions.

Trains with `labelers.train.train_idm` (the code behind `augment train-idm`) on a simulator dataset,
then checks, per action dimension, R² >= 0.9 and scale ratio (std of predictions / std of truth) within
0.9-1.1 on the validation episodes (never trained on), and the training wall time against 10 minutes.
With --heldout it also measures a second dataset recorded with other seeds, which no part of training
(not even early stopping) has seen.

    python benchmarks/bench_idm.py --dataset /tmp/mw --make metaworld --episodes 100 --heldout /tmp/mw_test \
        --out /tmp/idm_mw --set 'edit_cameras=[observation.images.corner2]'
    python benchmarks/bench_idm.py --dataset /tmp/pusht --make pusht --out /tmp/idm_pusht --heldout /tmp/pusht_test

MetaWorld is recorded like the demo dataset, corner2 plus the moving gripperPOV; the background edit only
applies to the fixed camera (edit_cameras). corner4, where the arm is 1.75x larger, did no better.
--action-noise (DART-style kicks on the expert) is there to compare and hurts: a 0.1 kick moves the hand
~1 mm, which the frames barely show, so those labels are noise to the model (same 60 placements, corner4:
held-out delta_x R² 0.933 trained on noised episodes, 0.957 on clean ones).

Data-efficiency curve (--sizes): trains on the first N episodes of --dataset for each N (train-idm's own
split inside them, as a user with N episodes would) and measures, on --heldout (other seeds, 10 episodes),
R² and scale per action dimension with and without the calibration, the rank correlation (Spearman)
between the per-step uncertainty the idm stage writes and the absolute error per step and per episode
(and of each of its parts: the error head, the windows' disagreement, MC dropout), the error of the
most uncertain fifth of the steps against the rest, and what an idm stage with max_uncertainty at the
median episode would drop:

    python benchmarks/bench_idm.py --make pusht --dataset /tmp/pusht40 --heldout /tmp/pusht_test \
        --sizes 5 10 20 40 --out /tmp/curve_pusht [--set motion=none]   # RGB only, to compare
    python benchmarks/bench_idm.py --make metaworld --dataset /tmp/mw40 --heldout /tmp/mw_test \
        --sizes 5 10 20 40 --out /tmp/curve_mw --set 'edit_cameras=[observation.images.corner2]'
    python benchmarks/bench_idm.py --table pusht=/tmp/curve_pusht metaworld=/tmp/curve_mw   # the README table

On a CPU shared with other jobs, wall-time budgets compare nothing: pass --set train_steps=N --set
max_minutes=60 to compare variants at the same number of optimizer steps (what the README's table did).
--quick: sizes 5 and 10, a 1-minute budget, 3 held-out episodes: a smoke run of the whole measurement.
--log FILE appends each point (with the load average) as it is measured; --table FILE prints them.
--measure CHECKPOINT... re-measures checkpoints trained earlier (as today's train-idm would calibrate them).

Not a test: it takes minutes. Pass --set KEY=VALUE to change training settings (see augment train-idm -h).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labelers.metrics import R2_MIN, SCALE_RANGE  # noqa: E402 (the bar train-idm's report uses)

MINUTES_MAX = 10.0


def make_dataset(sim: str, root: Path, episodes: int, seed: int, task: str, action_noise: float = 0.0) -> None:
    """MetaWorld placements are drawn from the seed (MT1's pool of ~50 would repeat episodes)."""
    sys.path.insert(0, str(REPO / "scripts"))
    from make_sim_dataset import build_dataset

    extra = {"action_noise": action_noise, "seeded_configs": True} if sim == "metaworld" else {}
    build_dataset(root, sim=sim, task=task, episodes=episodes, size=96, seed=seed, **extra)


def shared_episodes(train: Path, heldout: Path) -> int:
    """Held-out episodes identical (same actions and states) to a training episode: must be 0."""
    from labelers.data import duplicate_groups

    return len(set(duplicate_groups(str(heldout)).values()) & set(duplicate_groups(str(train)).values()))


def verdict(metrics: dict) -> tuple[bool, list[str]]:
    lines, ok = [], True
    for i, (r2, scale, bias) in enumerate(zip(metrics["r2"], metrics["scale"], metrics["bias"])):
        good = r2 >= R2_MIN and SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]
        ok &= good
        lines.append(f"  action[{i}]  R2 {r2:6.3f}  scale {scale:5.3f}  bias {bias:+8.4f}  {'ok' if good else 'FAIL'}")
    return ok, lines


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return round(float(spearmanr(np.ravel(a), np.ravel(b)).statistic), 4)


def uncalibrate(z: np.ndarray, checkpoint_config: dict) -> np.ndarray:
    """The network's own labels back from calibrated ones (saves a pass over the episodes)."""
    calibration = checkpoint_config.get("calibration")
    if not calibration:
        return z
    return (z - np.asarray(calibration["bias"])) / np.asarray(calibration["scale"])


def curve_point(checkpoint: Path, root: Path, limit: int | None, mc_samples: int) -> dict:
    """Held-out figures of one checkpoint: per-dimension metrics of the labels as written (calibrated)
    and uncalibrated, and whether the per-step and per-episode uncertainty rank the errors."""
    from labelers.calibrate import apply_calibration
    from labelers.data import load_dataset_episodes
    from labelers.idm import _uncertainty, step_uncertainty
    from labelers.metrics import regression_metrics, trust_verdicts
    from labelers.predictor import IdmPredictor

    predictor = IdmPredictor.load(str(checkpoint), "cpu")
    episodes = load_dataset_episodes(str(root), predictor.cameras, predictor.config.image_size, 0, seed=99,
                                     indices=list(range(limit)) if limit else None, motion=predictor.config.motion)
    norm = predictor.action_norm
    preds, raws, truths, errors, signals, episode_unc, episode_err = [], [], [], [], {}, [], []
    for ep in episodes:
        out = predictor.predict(ep.videos, mc_samples, seed=ep.index)  # MC passes too, to compare
        preds.append(out["action"])
        raws.append(norm.unnormalize(uncalibrate(norm.normalize(out["action"]), predictor.checkpoint_config)))
        truths.append(ep.action)
        errors.append(np.abs(norm.normalize(out["action"]) - norm.normalize(ep.action)))  # normalised, as the uncertainty
        written, method = step_uncertainty(out)  # what the idm stage writes per step
        for name, value in (("written", written), ("disagreement", out["action_disagreement"]),
                            ("error_head", out.get("action_error")), ("mc_dropout", out.get("action_spread"))):
            if value is not None:
                signals.setdefault(name, []).append(value)
        episode_unc.append(_uncertainty(out)["action"])  # what max_uncertainty gates
        episode_err.append(float(errors[-1].mean()))
    pred, true, err = np.concatenate(preds), np.concatenate(truths), np.concatenate(errors)
    threshold = float(np.median(episode_unc))
    dropped = [e for u, e in zip(episode_unc, episode_err) if u > threshold]
    kept = [e for u, e in zip(episode_unc, episode_err) if u <= threshold]
    step_unc = np.concatenate(signals["written"]).mean(axis=1)
    worst = step_unc > np.quantile(step_unc, 0.8)  # the most uncertain fifth of the steps
    metrics = regression_metrics(pred, true)
    raw = np.concatenate(raws)
    calibration = predictor.checkpoint_config.get("calibration") or {}
    full = calibration.get("fitted")  # the fit as made, before a small selection pulled it to identity
    return {
        "episodes": len(episodes), "action": metrics, "uncalibrated": regression_metrics(raw, true),
        "calibration_weight": calibration.get("weight", 1.0 if calibration else 0.0),
        "full_calibration": regression_metrics(
            norm.unnormalize(apply_calibration(norm.normalize(raw), full)), true) if full else None,
        "trust": trust_verdicts(metrics),
        "uncertainty": {
            "method": method,
            "spearman_step": spearman(step_unc, err.mean(axis=1)),
            "spearman_step_per_dim": [spearman(np.concatenate(signals["written"])[:, d], err[:, d])
                                      for d in range(err.shape[1])],
            "spearman_step_by_signal": {name: spearman(np.concatenate(v).mean(axis=1), err.mean(axis=1))
                                        for name, v in signals.items()},
            "spearman_episode": spearman(episode_unc, episode_err),
            "error_steps_kept": round(float(err.mean(axis=1)[~worst].mean()), 5),
            "error_steps_dropped": round(float(err.mean(axis=1)[worst].mean()), 5),
            "max_uncertainty_at_median": round(threshold, 5),
            "error_kept": round(float(np.mean(kept)), 5),
            "error_dropped": round(float(np.mean(dropped)), 5) if dropped else None,
        },
    }


def run_curve(args, overrides: list[str]) -> int:
    from labelers.config import config_from_overrides
    from labelers.train import train_idm

    sizes = [5, 10] if args.quick and not args.sizes_given else args.sizes
    limit, mc = (3, 4) if args.quick else (None, args.mc_samples)
    if args.quick:
        overrides = ["max_minutes=1", *overrides]
    results_path = args.out / "curve.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for n in sizes:
        config = config_from_overrides(["device=cpu", f"episodes=[\"0:{n}\"]", *overrides])
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        report = train_idm(str(args.dataset), str(args.out / f"n{n}"), config)
        minutes = (time.perf_counter() - start) / 60
        point = curve_point(args.out / f"n{n}", args.heldout, limit, mc)
        point.update(minutes=round(minutes, 2), epochs_run=report["training"]["epochs_run"],
                     best_epoch=report["training"]["best_epoch"], settings=overrides,
                     load_average=[round(load_before, 1), round(os.getloadavg()[0], 1)])  # the CPU is shared
        results[str(n)] = point
        results_path.write_text(json.dumps(results, indent=2))
        if args.log:  # one line per measured point, kept when a later point never finishes
            with open(args.log, "a") as f:
                f.write(json.dumps({"label": args.label or args.dataset.name, "dataset": str(args.dataset),
                                    "heldout": str(args.heldout), "n": n, "finished": time.strftime("%Y-%m-%d %H:%M"),
                                    **point}) + "\n")
        print(f"\n=== {args.dataset} first {n} episodes: {minutes:.1f} min, {point['epochs_run']} epochs ===")
        print(curve_row(args.label or args.dataset.name, n, point))
    print_table({args.label or args.dataset.name: results})
    return 0


def measure_checkpoints(args) -> int:
    """--measure: held-out figures of checkpoints trained earlier. One written before calibrations were
    pulled towards identity on small selections is measured as today's train-idm would write it
    (a copy under --out with its calibration re-weighted; the network is the same)."""
    import shutil

    from labelers.calibrate import calibration_weight, shrink_calibration
    from labelers.config import CONFIG_FILE

    for checkpoint in args.measure:
        copy = args.out / checkpoint.resolve().parent.name / checkpoint.name
        shutil.copytree(checkpoint, copy, dirs_exist_ok=True)
        config = json.loads((copy / CONFIG_FILE).read_text())
        calibration = config.get("calibration")
        if calibration and "fitted" not in calibration:
            fitted = {"scale": calibration["scale"], "bias": calibration["bias"]}
            weight = calibration_weight(len(calibration["fitted_on"]))
            config["calibration"] = {**shrink_calibration(fitted, weight), "weight": weight, "fitted": fitted,
                                     "fitted_on": calibration["fitted_on"]}
            (copy / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        point = curve_point(copy, args.heldout, None, args.mc_samples)
        training = json.loads((copy / "report.json").read_text())["training"] if (copy / "report.json").is_file() else {}
        point.update(minutes=round(training.get("seconds", 0) / 60, 2), epochs_run=training.get("epochs_run", 0),
                     best_epoch=training.get("best_epoch", 0), settings=[f"measured {checkpoint}"],
                     load_average=[round(os.getloadavg()[0], 1)] * 2)  # the load now, not when it trained
        label = args.label or str(checkpoint)
        n = len(sum(config["source"]["split"].values(), []))
        print(curve_row(label, n, point))
        print("  full fit: R² " + " / ".join(f"{v:.3f}" for v in point["full_calibration"]["r2"]) + "  scale "
              + " / ".join(f"{v:.3f}" for v in point["full_calibration"]["scale"]) if point["full_calibration"] else "")
        if args.log:
            with open(args.log, "a") as f:
                f.write(json.dumps({"label": label, "heldout": str(args.heldout), "n": n,
                                    "finished": time.strftime("%Y-%m-%d %H:%M"), **point}) + "\n")
    return 0


def print_table(curves: dict[str, dict]) -> None:
    print("\n| dataset | episodes | train min | epochs | action R² (held-out) | scale | uncalibrated R² | "
          "uncalibrated scale | calibration weight: scale at full weight | trusted | Spearman step / episode |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")
    for label, results in curves.items():
        for n in sorted(results, key=int):
            print(curve_row(label, int(n), results[n]))


def curve_row(label: str, n: int, point: dict) -> str:
    def dims(values):
        return " / ".join(f"{v:.3f}" for v in values)

    u = point["uncertainty"]
    full = (f"{point['calibration_weight']:.2f}: {dims(point['full_calibration']['scale'])}"
            if point.get("full_calibration") else "-")
    return (f"| {label} | {n} | {point['minutes']:.1f} | {point['epochs_run']} | {dims(point['action']['r2'])} | "
            f"{dims(point['action']['scale'])} | {dims(point['uncalibrated']['r2'])} | "
            f"{dims(point['uncalibrated']['scale'])} | {full} | "
            f"{sum(v['trust'] for v in point['trust'])}/{len(point['trust'])} | "
            f"{u['spearman_step']:.2f} / {u['spearman_episode']:.2f} |")


def heldout_metrics(checkpoint: Path, root: Path) -> dict:
    from labelers.data import load_dataset_episodes
    from labelers.predictor import IdmPredictor
    from labelers.train import evaluate

    predictor = IdmPredictor.load(str(checkpoint), "cpu")
    episodes = load_dataset_episodes(str(root), predictor.cameras, predictor.config.image_size, 1, seed=99,
                                     edit_cameras=predictor.config.edit_cameras, motion=predictor.config.motion)
    return {"clean": evaluate(predictor, episodes), "edited": evaluate(predictor, episodes, edited=True),
            "episodes": len(episodes)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", type=Path, help="simulator dataset root (made if --make and absent)")
    p.add_argument("--out", type=Path, help="checkpoint folder")
    p.add_argument("--make", choices=["metaworld", "pusht"], help="record the dataset first if it is missing")
    p.add_argument("--task", default="pick-place-v3", help="metaworld task for --make")
    p.add_argument("--episodes", type=int, default=30)
    p.add_argument("--action-noise", type=float, default=0.0,
                   help="metaworld --make: expert action noise of the training dataset (the held-out has none)")
    p.add_argument("--heldout", type=Path, help="a second dataset (other seeds) to measure as well")
    p.add_argument("--sizes", type=int, nargs="+", help="data-efficiency curve: train on the first N episodes "
                   "of --dataset for each N and measure on --heldout (required then)")
    p.add_argument("--quick", action="store_true", help="curve smoke run: sizes 5 10, 1 min each, 3 held-out episodes")
    p.add_argument("--mc-samples", type=int, default=8, help="curve: MC-dropout passes for the uncertainty (the "
                   "idm stage's default: 8)")
    p.add_argument("--label", help="dataset name in the curve's table rows")
    p.add_argument("--log", type=Path, help="curve: append each measured point to this JSON-lines file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--measure", type=Path, nargs="+", metavar="CHECKPOINT",
                   help="measure checkpoints trained earlier on --heldout (as --sizes does) and exit")
    p.add_argument("--table", nargs="+", metavar="LABEL=DIR|LOG.jsonl",
                   help="print the table of curve.json files (or --log files) and exit")
    args = p.parse_args()
    if args.table:  # LABEL=DIR of a curve.json, or a --log file (labels from its lines)
        curves = {}
        for item in args.table:
            if item.endswith(".jsonl"):
                for line in Path(item).read_text().splitlines():
                    point = json.loads(line)
                    curves.setdefault(point["label"], {})[str(point["n"])] = point
            else:
                label, _, folder = item.partition("=")
                curves[label] = json.loads((Path(folder) / "curve.json").read_text())
        print_table(curves)
        return 0
    if args.measure:
        if not (args.heldout and args.out):
            p.error("--measure needs --heldout and --out")
        return measure_checkpoints(args)
    if not (args.dataset and args.out):
        p.error("--dataset and --out are required (unless --table)")
    args.sizes_given = bool(args.sizes)
    if args.quick and not args.sizes:
        args.sizes = [5, 10]
    if args.sizes and not args.heldout:
        p.error("--sizes/--quick measure on --heldout: give one")
    if args.sizes:
        args.episodes = max(args.episodes, *args.sizes)

    if args.make and not (args.dataset / "meta" / "info.json").is_file():
        make_dataset(args.make, args.dataset, args.episodes, 0, args.task, args.action_noise)
    if args.make and args.heldout and not (args.heldout / "meta" / "info.json").is_file():
        make_dataset(args.make, args.heldout, 10 if args.sizes else max(4, args.episodes // 4), 1000, args.task)
    if args.sizes:
        args.out.mkdir(parents=True, exist_ok=True)
        return run_curve(args, args.overrides)

    from labelers.config import config_from_overrides
    from labelers.train import train_idm

    config = config_from_overrides(["device=cpu", *args.overrides])
    start = time.perf_counter()
    report = train_idm(str(args.dataset), str(args.out), config)
    minutes = (time.perf_counter() - start) / 60

    print(f"\n=== acceptance: {args.dataset} ===")
    print(f"training (load + fit + save): {minutes:.1f} min on CPU, {report['training']['epochs_run']} epochs "
          f"(best {report['training']['best_epoch']}); limit {MINUTES_MAX} min: "
          f"{'ok' if minutes <= MINUTES_MAX else 'FAIL'}")
    results = {"minutes": round(minutes, 2), "val": report["action"], "val_edited": report["edited"]["action"]}
    ok_all = minutes <= MINUTES_MAX
    for name, metrics in (("validation episodes", report["action"]),
                          ("validation episodes, background edited", report["edited"]["action"])):
        ok, lines = verdict(metrics)
        print(f"{name}: {'PASS' if ok else 'FAIL'}", *lines, sep="\n")
        ok_all &= ok if "edited" not in name else True  # edited figures are reported, not gated
    if args.heldout:
        held = heldout_metrics(args.out, args.heldout)
        held["shared_with_training"] = shared_episodes(args.dataset, args.heldout)
        print(f"held-out episodes identical to a training episode: {held['shared_with_training']}")
        ok_all &= held["shared_with_training"] == 0
        results["heldout"] = held
        for name, metrics in ((f"held-out dataset ({held['episodes']} episodes)", held["clean"]["action"]),
                              ("held-out dataset, background edited", held["edited"]["action"])):
            ok, lines = verdict(metrics)
            print(f"{name}: {'PASS' if ok else 'FAIL'}", *lines, sep="\n")
            ok_all &= ok if "edited" not in name else True
    (args.out / "bench.json").write_text(json.dumps(results, indent=2))
    print(f"overall: {'PASS' if ok_all else 'FAIL'}")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
