"""Running a trained IDM over whole episodes: labels in the source dataset's units, and a per-step
uncertainty in normalised units (so one number compares across dimensions and datasets): the error
head's predicted error and the overlapping windows' disagreement, or, for checkpoints without an error
head, the spread of several MC-dropout passes."""

from __future__ import annotations

import numpy as np
import torch

from labelers.calibrate import apply_calibration
from labelers.data import PixelNormalizer, gather_windows, stack_cameras
from augment.devices import resolve_device
from labelers.config import chunk_steps
from labelers.network import InverseDynamicsNet, checkpoint_train_config, load_checkpoint
from labelers.normalize import Normalizer


class IdmPredictor:
    def __init__(self, net: InverseDynamicsNet, checkpoint_config: dict, device: str = "cpu", batch_size: int = 256):
        self.net, self.checkpoint_config, self.device = net, checkpoint_config, device
        self.config = checkpoint_train_config(checkpoint_config)
        self.cameras: list[str] = checkpoint_config["cameras"]
        image = checkpoint_config["image"]
        self.pixels = PixelNormalizer([image[c]["mean"] for c in self.cameras], [image[c]["std"] for c in self.cameras],
                                      self.config.motion)
        self.action_norm = Normalizer.from_dict(checkpoint_config["action"])
        self.state_norm = Normalizer.from_dict(checkpoint_config["state"])
        self.batch_size = batch_size

    @classmethod
    def load(cls, path: str, device: str = "auto", batch_size: int = 256) -> IdmPredictor:
        device = resolve_device(device)
        net, checkpoint_config = load_checkpoint(path, device)
        return cls(net, checkpoint_config, device, batch_size)

    def frames_to_video(self, frames: dict[str, np.ndarray], uid: str = "?") -> np.ndarray:
        return stack_cameras(frames, self.cameras, self.config.image_size, uid, self.config.motion)

    @property
    def has_error_head(self) -> bool:
        return self.net.error_head is not None

    @torch.no_grad()
    def _passes(self, video: np.ndarray, stochastic: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """-> normalised (action (T, A), state (T, S), disagreement (T, A) of the windows' guesses per step,
        the error head's predicted error std per step (T, A), or None without an error head)."""
        self.net.eval()
        if stochastic:  # MC dropout: only the dropout layers sample; GroupNorm has no batch state
            for m in self.net.modules():
                if isinstance(m, torch.nn.Dropout):
                    m.train()
        actions, states, variances = [], [], []
        steps = np.arange(video.shape[1])
        for start in range(0, len(steps), self.batch_size):
            ts = steps[start:start + self.batch_size]
            x = self.pixels(gather_windows(video, ts, self.config.offsets), self.device)
            a, s, log_var = self.net.forward_with_error(x)
            actions.append(a.float().cpu().numpy())
            states.append(s.float().cpu().numpy())
            if log_var is not None:
                variances.append(log_var.float().exp().cpu().numpy())
        self.net.eval()
        chunks = np.concatenate(actions)
        # A step's error std: the windows' mean predicted variance for it (not the variance of their mean:
        # neighbouring windows' errors are far from independent).
        error = np.sqrt(self._average_chunks(np.concatenate(variances))) if variances else None
        return self._average_chunks(chunks), np.concatenate(states), self._chunk_disagreement(chunks), error

    def _average_chunks(self, chunks: np.ndarray) -> np.ndarray:
        """(T, chunk * A) -> (T, A): step u's action is the mean of every window's guess for u."""
        steps = chunk_steps(self.config.action_chunk)
        length = len(chunks)
        chunks = chunks.reshape(length, len(steps), -1)
        total, count = np.zeros((length, chunks.shape[2])), np.zeros((length, 1))
        for j, step in enumerate(steps):
            src = np.arange(max(0, -step), min(length, length - step))  # windows t whose t+step is in range
            total[src + step] += chunks[src, j]
            count[src + step] += 1
        return (total / count).astype(np.float32)

    def _chunk_disagreement(self, chunks: np.ndarray) -> np.ndarray:
        """(T, chunk * A) -> (T, A): the std of the windows' guesses for each step (0 with one guess).
        Neighbouring windows see the same motion from other frames: where they disagree, the label is
        unsure, at no extra pass."""
        mean = self._average_chunks(chunks)
        squares = self._average_chunks(chunks ** 2)
        return np.sqrt(np.maximum(squares - mean.astype(np.float64) ** 2, 0.0)).astype(np.float32)

    def predict_normalized(self, video: np.ndarray) -> np.ndarray:
        """The network's own action labels (T, A), normalised and not calibrated: what calibration fits."""
        return self._passes(video, stochastic=False)[0]

    def predict(self, video: np.ndarray, mc_samples: int = 0, seed: int = 0) -> dict[str, np.ndarray]:
        """video: uint8 (cameras, T, S, S, 3) -> action (T, A) and state (T, S) in dataset units;
        action_disagreement: the per-step std of the overlapping windows' guesses; with an error head
        action_error: its predicted error std per step, and action_uncertainty: the std of the label's error,
        sqrt(a * action_error**2 + b * action_disagreement**2) with the weights fitted on the selection
        episodes (labelers/calibrate.py: fit_uncertainty); with mc_samples > 1 action_spread / state_spread:
        the per-step std over MC-dropout passes (all in normalised units; labelers/idm.py: step_uncertainty combines them).
        Actions go through the checkpoint's calibration (labelers/calibrate.py) when it has one."""
        calibration = self.checkpoint_config.get("calibration")
        action_z, state_z, disagreement, error = self._passes(video, stochastic=False)
        action_z = apply_calibration(action_z, calibration)
        out = {"action": self.action_norm.unnormalize(action_z), "state": self.state_norm.unnormalize(state_z),
               "action_disagreement": disagreement * _scale(calibration)}
        if error is not None:
            out["action_error"] = error * _scale(calibration)
            weights = self.checkpoint_config.get("uncertainty") or {"error_head": 1.0, "disagreement": 1.0}
            out["action_uncertainty"] = np.sqrt(weights["error_head"] * out["action_error"] ** 2 +
                                                weights["disagreement"] * out["action_disagreement"] ** 2)
        if mc_samples > 1:
            with torch.random.fork_rng(devices=[]):  # seeded, and the caller's RNG is left as it was
                torch.manual_seed(seed)
                draws = [self._passes(video, stochastic=True) for _ in range(mc_samples)]
            out["action_spread"] = np.stack([apply_calibration(d[0], calibration) for d in draws]).std(axis=0)
            out["state_spread"] = np.stack([d[1] for d in draws]).std(axis=0)
        return out


def _scale(calibration: dict | None) -> np.ndarray | float:
    """How the calibration stretches a spread (its bias moves labels, not their spread)."""
    return np.abs(np.asarray(calibration["scale"], np.float32)) if calibration else 1.0
