"""The inverse-dynamics network and its checkpoint (model.safetensors + config.json).

Input: for each camera, the frames t+k for every offset k, stacked on the channel axis, so the first
convolution can take differences between neighbouring frames (motion) as well as read the current
picture (pose). One small conv trunk per camera (viewpoints do not share pixel geometry), features
flattened (keeping *where* things are: the state is a position) and a small MLP head that predicts the
normalised action and the normalised state at t. A second small head (`error_head`) reads the same
features, detached so it cannot change the labels, and predicts the log-variance of each action's error:
trained by Gaussian likelihood on the training residuals, it learns which kinds of steps are hard.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from labelers.config import CONFIG_FILE, WEIGHTS_FILE, IdmConfig


def _conv(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=2, padding=kernel // 2),
        nn.GroupNorm(min(8, c_out), c_out),  # not BatchNorm: labelling runs on batches of any size
        nn.ReLU(inplace=True),
    )


class InverseDynamicsNet(nn.Module):
    def __init__(self, num_cameras: int, window: int, action_dim: int, state_dim: int,
                 image_size: int = 64, width: int = 32, hidden: int = 256, dropout: float = 0.1,
                 frame_channels: int = 3, error_head: bool = False):
        super().__init__()
        self.action_dim, self.state_dim = action_dim, state_dim
        self.trunks = nn.ModuleList(
            nn.Sequential(_conv(frame_channels * window, width, 5), _conv(width, 2 * width, 3),
                          _conv(2 * width, 4 * width, 3), _conv(4 * width, 4 * width, 3), nn.Flatten())
            for _ in range(num_cameras)
        )
        features = num_cameras * 4 * width * (image_size // 16) ** 2
        self.head = nn.Sequential(
            nn.Linear(features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, action_dim + state_dim),
        )
        self.error_head = None
        if error_head:
            with torch.random.fork_rng(devices=[]):  # the RNG goes on as without it: same dropout, same labels
                self.error_head = nn.Sequential(nn.Linear(features, 64), nn.ReLU(inplace=True), nn.Linear(64, action_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, cameras, frame_channels * window, H, W) normalised pixels -> (normalised action, normalised state)."""
        action, state, _ = self.forward_with_error(x)
        return action, state

    def forward_with_error(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """-> (action, state, log-variance of the action's error or None without an error head)."""
        feats = torch.cat([trunk(x[:, i]) for i, trunk in enumerate(self.trunks)], dim=1)
        out = self.head(feats)
        log_var = None
        if self.error_head is not None:  # detached: the error head learns from the features, never shapes them
            log_var = self.error_head(feats.detach()).clamp(-12.0, 6.0)
        return out[:, : self.action_dim], out[:, self.action_dim:], log_var


def build_network(config: IdmConfig, num_cameras: int, action_dim: int, state_dim: int) -> InverseDynamicsNet:
    """The action output holds `config.action_chunk` actions, step-major (see chunk_steps)."""
    return InverseDynamicsNet(num_cameras, len(config.offsets), action_dim * config.action_chunk, state_dim,
                              config.image_size,
                              config.width, config.hidden, config.dropout, 5 if config.motion == "flow" else 3,
                              config.error_head)


def save_checkpoint(out: str | Path, net: InverseDynamicsNet, checkpoint_config: dict) -> None:
    """Weights as safetensors (no pickle: a checkpoint from elsewhere cannot run code) + config.json."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(out / WEIGHTS_FILE))
    (out / CONFIG_FILE).write_text(json.dumps(checkpoint_config, indent=2))


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[InverseDynamicsNet, dict]:
    from safetensors.torch import load_file

    from labelers.config import read_checkpoint_config

    checkpoint_config = read_checkpoint_config(path)
    weights = Path(path) / WEIGHTS_FILE
    if not weights.is_file():
        raise ValueError(f"{path} is not an IDM checkpoint: {weights} is missing")
    config = checkpoint_train_config(checkpoint_config)
    net = build_network(config, len(checkpoint_config["cameras"]), len(checkpoint_config["action"]["mean"]),
                        len(checkpoint_config["state"]["mean"]))
    net.load_state_dict(load_file(str(weights)))
    return net.to(device).eval(), checkpoint_config


def checkpoint_train_config(checkpoint_config: dict) -> IdmConfig:
    """Checkpoints written before action_chunk existed predict one action per window (and those
    written before motion existed saw RGB only, before error_head had none)."""
    return IdmConfig(**{"action_chunk": 1, "motion": "none", "error_head": False, **checkpoint_config["train"]})
