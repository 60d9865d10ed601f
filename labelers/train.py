"""Training an IDM on a LeRobot dataset and measuring it on validation episodes it never saw.

The split is by episode: train (fitted), select (early stopping picks the epoch), val (only
reported). Training windows come from the real frames or, with probability `edit_prob`, from a
background-edited copy of the same episode (the actions are the same: the robot did not move
differently). The report measures val as recorded and val edited with unseen backgrounds.
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from labelers.config import REPORT_FILE, IdmConfig, chunk_steps
from labelers.data import (IdmEpisode, PixelNormalizer, duplicate_groups, gather_windows, load_dataset_episodes,
                           split_episodes)
from labelers.calibrate import (FULL_WEIGHT_EPISODES, calibration_weight, fit_calibration, fit_uncertainty,
                                shrink_calibration)
from labelers.metrics import format_table, format_verdicts, regression_metrics, trust_verdicts
from augment.devices import resolve_device
from augment.episode import VISUAL_DTYPES
from labelers.network import build_network, save_checkpoint
from labelers.normalize import Normalizer, load_stats
from labelers.predictor import IdmPredictor

VAL_EDIT_SEED_OFFSET = 1_000_003  # val episodes get backgrounds unlike any seen in training
MIN_TRUSTED_VAL = 5  # fewer validation episodes: the report says so


def _feature(info: dict, key: str, root) -> dict:
    if key not in info["features"]:
        raise ValueError(f"{root}: the dataset has no {key!r} feature; the IDM learns it from the source data")
    feature = info["features"][key]
    return {"dtype": feature["dtype"], "shape": list(feature["shape"]), "names": feature.get("names")}


def checkpoint_config(root, config: IdmConfig, info: dict, stats: dict, split: dict) -> dict:
    cameras = config.cameras
    image = {}
    for c in cameras:
        if c not in stats:
            raise ValueError(f"{root}: meta/stats.json has no stats for camera {c!r}")
        image[c] = {"mean": np.asarray(stats[c]["mean"]).reshape(-1).tolist(),
                    "std": np.asarray(stats[c]["std"]).reshape(-1).tolist()}
    return {
        "train": config.model_dump(mode="json"),
        "cameras": cameras,
        "image": image,
        "action": Normalizer.from_stats(stats, "action").to_dict(),
        "state": Normalizer.from_stats(stats, "observation.state").to_dict(),
        # The features the labels are written as: a labelled dataset looks like the source to a trainer.
        "features": {"action": _feature(info, "action", root),
                     "observation.state": _feature(info, "observation.state", root)},
        "source": {"root": str(Path(root).resolve()), "fps": info["fps"], "split": split},
    }


def _samples(episodes: list[IdmEpisode]) -> np.ndarray:
    return np.array([(e, t) for e, ep in enumerate(episodes) for t in range(ep.length)], dtype=np.int64)


def _targets(episodes, action_norm, state_norm, chunk: int = 1):
    """Per episode: (T, chunk * A) normalised actions at t+chunk_steps (clipped to the episode), (T, S) state."""
    actions = []
    for ep in episodes:
        a = action_norm.normalize(ep.action)
        idx = np.clip(np.arange(len(a))[:, None] + np.asarray(chunk_steps(chunk))[None, :], 0, len(a) - 1)
        actions.append(a[idx].reshape(len(a), -1))
    return actions, [state_norm.normalize(ep.state) for ep in episodes]


def _batch(episodes, samples, actions, states, offsets, edit_prob, rng):
    windows, a, s = [], [], []
    for e, t in samples:
        ep = episodes[e]
        video = ep.videos
        if ep.edited and rng.random() < edit_prob:
            video = ep.edited[rng.integers(len(ep.edited))]
        windows.append(gather_windows(video, [t], offsets)[0])
        a.append(actions[e][t])
        s.append(states[e][t])
    return np.stack(windows), torch.from_numpy(np.stack(a)), torch.from_numpy(np.stack(s))


def evaluate(predictor: IdmPredictor, episodes: list[IdmEpisode], edited: bool = False) -> dict:
    """Metrics in dataset units over all steps of `episodes` (their edited copies when `edited`)."""
    preds, truths = {"action": [], "state": []}, {"action": [], "state": []}
    for ep in episodes:
        for video in (ep.edited if edited else [ep.videos]):
            out = predictor.predict(video)
            for key, truth in (("action", ep.action), ("state", ep.state)):
                preds[key].append(out[key])
                truths[key].append(truth)
    return {k: regression_metrics(np.concatenate(preds[k]), np.concatenate(truths[k])) for k in preds}


def train_idm(root: str, out: str, config: IdmConfig, log=print) -> dict:
    from augment.source import load_info

    started = time.perf_counter()
    torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = resolve_device(config.device)
    info, stats = load_info(Path(root)), load_stats(root)
    visual = [k for k, f in info["features"].items() if f["dtype"] in VISUAL_DTYPES]
    config = config.model_copy(update={"cameras": config.cameras or visual})
    unknown = sorted(set(config.cameras) - set(visual)) + sorted(set(config.edit_cameras or []) - set(config.cameras))
    if unknown:
        raise ValueError(f"camera(s) {unknown} in cameras/edit_cameras are not among the dataset's video keys "
                         f"{visual} (edit_cameras must also be in cameras)")

    from augment.source import LeRobotSource

    indices = LeRobotSource(root, config.cameras).select(config.episodes)
    groups = duplicate_groups(root)
    train_ids, select_ids, val_ids = split_episodes(indices, config.val_fraction, config.select_fraction, config.seed,
                                                    groups)
    if len(set(groups.values())) < len(indices):
        log(f"{len(indices)} episodes, {len(set(groups.values()))} distinct: identical episodes (same start, same "
            "actions) are kept on one side of the split")
    split = {"train": train_ids, "select": select_ids, "val": val_ids}
    if len(val_ids) < MIN_TRUSTED_VAL:
        log(f"warning: {len(indices)} episodes leave {len(val_ids)} for validation; R² and scale on so few say "
            "little (one episode may barely move along an axis). The acceptance figures came from ~100 "
            "episodes (benchmarks/bench_idm.py)")
    ckpt = checkpoint_config(root, config, info, stats, split)
    log(f"loading {len(indices)} episodes from {root} (cameras {config.cameras}, {config.image_size}px, "
        f"{config.edit_variants} edited copies each)")
    fitted = {ep.index: ep for ep in load_dataset_episodes(root, config.cameras, config.image_size,
                                                           config.edit_variants, config.seed, train_ids + select_ids,
                                                           config.edit_cameras, config.motion)}
    # The reported edits use backgrounds drawn apart from the training ones.
    val_eps = load_dataset_episodes(root, config.cameras, config.image_size, max(config.edit_variants, 1),
                                    config.seed + VAL_EDIT_SEED_OFFSET, val_ids, config.edit_cameras, config.motion)
    train_eps = [fitted[i] for i in train_ids]
    select_eps = [fitted[i] for i in select_ids]  # empty: early stopping watches the training loss
    action_norm, state_norm = Normalizer.from_dict(ckpt["action"]), Normalizer.from_dict(ckpt["state"])
    train_a, train_s = _targets(train_eps, action_norm, state_norm, config.action_chunk)

    net = build_network(config, len(config.cameras), len(action_norm.mean), len(state_norm.mean)).to(device)
    pixels = PixelNormalizer([ckpt["image"][c]["mean"] for c in config.cameras],
                             [ckpt["image"][c]["std"] for c in config.cameras], config.motion)
    deadline = started + config.max_minutes * 60  # loading, pretraining and training share the budget
    log(f"loaded in {time.perf_counter() - started:.0f}s of the {config.max_minutes} min budget")
    pretrained = None
    if config.pretrain != "none":
        from labelers.pretrain import pretrain_trunks

        pretrained = pretrain_trunks(net, train_eps + select_eps, config, pixels, device, rng, deadline, log)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    averaged = copy.deepcopy(net) if config.ema_steps else net  # what is selected, saved and reported
    predictor = IdmPredictor(averaged, ckpt, device)
    samples = _samples(train_eps)
    steps_per_epoch = max(1, len(samples) // config.batch_size)
    epochs, patience = epoch_plan(config, steps_per_epoch)
    best, best_loss, best_epoch, history, stale = None, float("inf"), 0, [], 0
    planned = epochs  # epochs the learning-rate schedule spans
    log(f"training on {device}: {len(train_eps)} train / {len(select_ids)} select / {len(val_ids)} val episodes, "
        f"{len(samples)} windows, {sum(p.numel() for p in net.parameters()) / 1e6:.2f}M parameters, up to "
        f"{epochs} epochs of {steps_per_epoch} steps (patience {patience}) or {config.max_minutes} min")
    durations = []
    for epoch in range(1, epochs + 1):
        epoch_started = time.perf_counter()
        net.train()
        order = rng.permutation(len(samples))
        total = 0.0
        for b in range(steps_per_epoch):
            batch = samples[order[b * config.batch_size:(b + 1) * config.batch_size]]
            windows, a, s = _batch(train_eps, batch, train_a, train_s, config.offsets, config.edit_prob, rng)
            pred_a, pred_s, log_var = net.forward_with_error(pixels(windows, device))
            a = a.to(device)
            fit = torch.nn.functional.mse_loss(pred_a, a)
            fit = fit + config.state_weight * torch.nn.functional.mse_loss(pred_s, s.to(device))
            loss = fit
            if log_var is not None:  # its own parameters only: the features and the labels are detached
                loss = fit + error_likelihood(log_var, (pred_a.detach() - a) ** 2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            progress = ((epoch - 1) * steps_per_epoch + b) / (planned * steps_per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config.lr, progress)
            optimizer.step()
            if config.ema_steps:
                update_average(averaged, net, (epoch - 1) * steps_per_epoch + b, config.ema_steps)
            total += fit.item()
        if select_eps:
            select_loss = _selection_loss(predictor, select_eps, action_norm, config.edit_prob > 0)
        else:
            select_loss = total / steps_per_epoch
        history.append({"epoch": epoch, "train_loss": round(total / steps_per_epoch, 5),
                        "select_action_mse": round(select_loss, 5),
                        "seconds": round(time.perf_counter() - started, 1)})
        log(f"epoch {epoch:3d}  train loss {total / steps_per_epoch:.4f}  select action MSE (normalised) "
            f"{select_loss:.4f}  {time.perf_counter() - started:6.0f}s")
        if select_loss < best_loss:
            best, best_loss, best_epoch, stale = copy.deepcopy(averaged.state_dict()), select_loss, epoch, 0
        else:
            stale += 1
        if stale >= patience:
            log(f"early stop: no better selection loss for {patience} epochs")
            break
        # Fewer epochs fit in the time budget than asked for: the schedule is shortened to end annealed.
        # Re-planned each epoch from the median epoch time, so one epoch slowed by another process on a
        # shared CPU does not cut the whole run short (a mean or a plan that only shrinks would).
        now = time.perf_counter()
        durations.append(now - epoch_started)
        planned = min(epochs, epoch + int((deadline - now) // float(np.median(durations))))
        if epoch >= planned and epoch < epochs:
            log(f"time limit: {epoch} epochs fit in max_minutes={config.max_minutes}")
            break
    averaged.load_state_dict(best)
    uncalibrated = evaluate(predictor, val_eps)["action"]
    if config.calibrate and select_eps:
        fitted = _fit_calibration(predictor, select_eps, action_norm)
        weight = calibration_weight(len(select_ids))
        ckpt["calibration"] = {**shrink_calibration(fitted, weight), "weight": round(weight, 4),
                               "fitted": fitted, "fitted_on": select_ids}
        few = (f", applied at weight {weight:.2f} (fewer than {FULL_WEIGHT_EPISODES} selection episodes: pulled "
               "towards no calibration)" if weight < 1 else "")
        log(f"calibration (normalised units) fitted on selection episodes {select_ids}: scale "
            f"{np.round(fitted['scale'], 3).tolist()}, bias {np.round(fitted['bias'], 3).tolist()}{few}")
    elif config.calibrate:
        log("no calibration: select_fraction=0 leaves no selection episodes to fit it on")
    if predictor.has_error_head and select_eps:
        ckpt["uncertainty"] = {**_fit_uncertainty(predictor, select_eps, action_norm), "fitted_on": select_ids}
        log(f"uncertainty weights (error head, windows' disagreement) fitted on selection episodes {select_ids}: "
            f"{ckpt['uncertainty']['error_head']}, {ckpt['uncertainty']['disagreement']}")
    train_seconds = time.perf_counter() - started
    save_checkpoint(out, averaged, ckpt)

    names = _flat_names({"action": ckpt["features"]["action"]["names"],
                         "state": ckpt["features"]["observation.state"]["names"]})
    report = evaluate(predictor, val_eps)
    report["edited"] = evaluate(predictor, val_eps, edited=True)
    report["action_uncalibrated"] = uncalibrated
    report["trust"] = trust_verdicts(report["action"], names["action"])
    report["training"] = {"device": device, "epochs_run": len(history), "best_epoch": best_epoch,
                          "seconds": round(train_seconds, 1), "history": history, "split": split,
                          "calibration": ckpt.get("calibration"), "uncertainty": ckpt.get("uncertainty"),
                          "pretrain": pretrained}
    Path(out, REPORT_FILE).write_text(json.dumps(report, indent=2))
    log("validation episodes " + str(val_ids) + ":\n" + format_table({k: report[k] for k in ("action", "state")}, names))
    log("validation episodes, background edited:\n" + format_table(report["edited"], names))
    caveat = (f" (only {len(val_ids)} validation episode{'s' * (len(val_ids) != 1)}: a first look, not a guarantee)"
              if len(val_ids) < MIN_TRUSTED_VAL else "")
    log(f"action labels against the bar R² >= 0.9 and scale 0.9-1.1 on validation episodes{caveat}:\n"
        + format_verdicts(report["trust"]))
    _plots(out, predictor, val_eps[: config.plot_episodes], names)
    return report


def epoch_plan(config: IdmConfig, steps_per_epoch: int) -> tuple[int, int]:
    """(most epochs, patience): the settings when given, else scaled to the optimizer steps an epoch holds."""
    epochs = config.epochs or math.ceil(config.train_steps / steps_per_epoch)
    patience = config.patience or max(6, math.ceil(400 / steps_per_epoch))
    return epochs, patience


def error_likelihood(log_var: torch.Tensor, squared_error: torch.Tensor) -> torch.Tensor:
    """Gaussian negative log-likelihood of the residuals under the predicted variance (up to a constant)."""
    return 0.5 * (log_var + squared_error * torch.exp(-log_var)).mean()


@torch.no_grad()
def update_average(averaged: torch.nn.Module, net: torch.nn.Module, step: int, horizon: int) -> None:
    """averaged <- d * averaged + (1 - d) * net, d = 1 - 1/horizon; shorter at first ((1+step)/(10+step)) so
    the average is not dragged back to the random start."""
    decay = min(1.0 - 1.0 / horizon, (1.0 + step) / (10.0 + step))
    for mean, value in zip(averaged.state_dict().values(), net.state_dict().values()):
        if mean.dtype.is_floating_point:
            mean.lerp_(value, 1.0 - decay)
        else:
            mean.copy_(value)


def learning_rate(peak: float, progress: float) -> float:
    """Short warm-up, then cosine decay to 2% of the peak over the planned epochs. When the time budget
    shortens the plan, training still ends annealed (and is then no longer bit-reproducible, as the plan
    follows the clock)."""
    progress = min(max(progress, 0.0), 1.0)
    if progress < 0.05:
        return peak * (0.1 + 0.9 * progress / 0.05)
    return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * (progress - 0.05) / 0.95)))


def _selection_loss(predictor: IdmPredictor, episodes: list[IdmEpisode], action_norm: Normalizer,
                    with_edits: bool) -> float:
    """The median over episodes of each one's action MSE (normalised). Not the mean: one pusht episode
    whose agent sat pinned at the workspace's edge for 120 of its 150 steps (rare in training) carried
    most of the mean, which then jumped 0.07 -> 0.35 between epochs and stopped training at epoch 9 of 16."""
    errors = []
    for ep in episodes:
        truth = action_norm.normalize(ep.action)
        videos = [ep.videos] + (ep.edited[:1] if with_edits else [])
        errors.append(np.mean([((action_norm.normalize(predictor.predict(v)["action"]) - truth) ** 2).mean()
                               for v in videos]))
    return float(np.median(errors))


def _fit_calibration(predictor: IdmPredictor, episodes: list[IdmEpisode], action_norm: Normalizer) -> dict:
    """The model's chunk-averaged labels on the selection episodes (as recorded) against their truth."""
    preds = [predictor.predict_normalized(ep.videos) for ep in episodes]
    truth = [action_norm.normalize(ep.action) for ep in episodes]
    return fit_calibration(preds, truth)


def _fit_uncertainty(predictor: IdmPredictor, episodes: list[IdmEpisode], action_norm: Normalizer) -> dict:
    """Weights of the uncertainty's parts, from the calibrated labels' residuals on the selection episodes."""
    preds = [predictor.predict(ep.videos) for ep in episodes]
    residuals = [action_norm.normalize(p["action"]) - action_norm.normalize(ep.action) for p, ep in zip(preds, episodes)]
    return fit_uncertainty(np.concatenate([p["action_error"] for p in preds]),
                           np.concatenate([p["action_disagreement"] for p in preds]), np.concatenate(residuals))


def _flat_names(names: dict) -> dict[str, list[str]]:
    """lerobot stores names as a list, or as {"motors": [...]} in older datasets."""
    out = {}
    for key, value in names.items():
        if isinstance(value, dict):
            value = next(iter(value.values()), None)
        out[key] = list(value) if value else None
    return out


def _plots(out: str, predictor: IdmPredictor, episodes: list[IdmEpisode], names: dict) -> None:
    from labelers.plot import plot_trajectories

    if not episodes:
        return
    preds = [predictor.predict(ep.videos) for ep in episodes]
    for key, file in (("action", "plot.png"), ("state", "plot_state.png")):
        dims = preds[0][key].shape[1]
        labels = names.get(key) or [f"{key}[{i}]" for i in range(dims)]
        plot_trajectories(Path(out) / file, [(ep.uid, p[key], getattr(ep, key)) for ep, p in zip(episodes, preds)],
                          labels)
