"""Self-supervised pretraining of the IDM's image trunks on the source's own frames, before the action head.

`pretrain="future"`: from a window of frames (t-2..t+7 by default) the trunks learn to predict how the
picture changes after the window: the gray, half-resolution difference between the frames 2 and 4 steps
past the window's last one and that last frame. Only what moves (the arm, the object) makes that
difference, whatever the background, so the trunks learn to find and follow the robot from the frames
alone, on the plain and the background-edited copies alike; the action head then starts from trunks that
already see motion. No labels are used. The decoder (one linear layer per camera, on the features the
head will read) is thrown away afterwards: the checkpoint is the plain IDM.

It runs inside train-idm's time budget, at most PRETRAIN_SHARE of max_minutes, so it is paid for with
supervised steps; README "Which labels to trust" has what it bought on the data-efficiency curve.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import torch
from torch import nn

from labelers.config import IdmConfig
from labelers.data import IdmEpisode, PixelNormalizer, gather_windows

PRETRAIN_SHARE = 0.25  # most of max_minutes pretraining may take
AHEAD = (2, 4)  # frames past the window's last one whose change is predicted


def gray_frames(video: np.ndarray, size: int) -> np.ndarray:
    """uint8 (cameras, T, S, S, K>=3) -> float32 (cameras, T, size, size) gray in [0, 1]."""
    cams, steps = video.shape[:2]
    gray = video[..., :3].astype(np.float32).mean(axis=-1) / 255.0
    flat = gray.reshape(cams * steps, *gray.shape[2:])
    small = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in flat])
    return small.reshape(cams, steps, size, size)


def future_change(gray: np.ndarray, ts, last: int) -> np.ndarray:
    """gray (cameras, T, h, h), steps ts -> (B, cameras, len(AHEAD) * h * h): frames t+last+k minus t+last,
    clipped to the episode (zero past its end)."""
    steps = gray.shape[1]
    base = np.clip(np.asarray(ts) + last, 0, steps - 1)
    ahead = np.clip(base[:, None] + np.asarray(AHEAD)[None, :], 0, steps - 1)
    change = gray[:, ahead] - gray[:, base][:, :, None]  # (cameras, B, len(AHEAD), h, h)
    return change.swapaxes(0, 1).reshape(len(ts), gray.shape[0], -1)


def pretrain_trunks(net, episodes: list[IdmEpisode], config: IdmConfig, pixels: PixelNormalizer, device: str,
                    rng: np.random.Generator, deadline: float, log=print) -> dict:
    """Fit net.trunks (in place) to predict the future change of the picture; returns what happened."""
    started = time.perf_counter()
    stop = min(deadline, started + PRETRAIN_SHARE * config.max_minutes * 60)
    side = config.image_size // 2
    last = config.offsets[-1]
    variants = [[(v, gray_frames(v, side)) for v in [ep.videos, *ep.edited]] for ep in episodes]
    # One scale for the whole target: the typical size of a change, so the loss reads like a normalised MSE.
    plain = [v[0][1] for v in variants]
    scale = float(np.sqrt(np.mean([np.mean(future_change(g, np.arange(g.shape[1]), last) ** 2) for g in plain]))) or 1.0
    samples = np.array([(e, t) for e, ep in enumerate(episodes) for t in range(ep.length)], dtype=np.int64)
    features = net.head[0].in_features // len(net.trunks)
    decoder = nn.ModuleList(nn.Linear(features, len(AHEAD) * side * side) for _ in net.trunks).to(device)
    params = [*net.trunks.parameters(), *decoder.parameters()]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    from labelers.train import learning_rate

    net.train()
    losses, durations = [], []
    for step in range(1, config.pretrain_steps + 1):
        step_started = time.perf_counter()
        if durations and step_started + float(np.median(durations)) > stop:  # the next step would overrun the share
            log(f"pretrain: time share reached after {len(losses)} of {config.pretrain_steps} steps "
                f"({PRETRAIN_SHARE:.0%} of max_minutes)")
            break
        batch = samples[rng.integers(len(samples), size=config.batch_size)]
        windows, targets = [], []
        for e, t in batch:
            choice = 0
            if len(variants[e]) > 1 and rng.random() < config.edit_prob:
                choice = 1 + int(rng.integers(len(variants[e]) - 1))
            video, gray = variants[e][choice]
            windows.append(gather_windows(video, [t], config.offsets)[0])
            targets.append(future_change(gray, [t], last)[0])
        x = pixels(np.stack(windows), device)
        pred = torch.stack([dec(trunk(x[:, i])) for i, (trunk, dec) in enumerate(zip(net.trunks, decoder))], dim=1)
        target = torch.from_numpy(np.stack(targets) / scale).float().to(device)
        loss = torch.nn.functional.mse_loss(pred, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config.lr, step / config.pretrain_steps)
        optimizer.step()
        losses.append(loss.item())
        durations.append(time.perf_counter() - step_started)
        if step % 50 == 0:
            log(f"pretrain step {step:4d}  future-change loss (normalised) {np.mean(losses[-50:]):.4f}  "
                f"{time.perf_counter() - started:5.0f}s")
    return {"objective": config.pretrain, "steps": len(losses), "seconds": round(time.perf_counter() - started, 1),
            "loss_first": round(float(np.mean(losses[:20])), 5) if losses else None,
            "loss_last": round(float(np.mean(losses[-20:])), 5) if losses else None}
