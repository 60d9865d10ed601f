"""Settings of an inverse-dynamics model (IDM) run, and `--set key=value` parsing.

Light on purpose (pydantic + yaml only): the labelling spec reads a checkpoint's config.json when a
pipeline is validated, long before torch is imported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from augment.settings import settings_from_overrides
from augment.stage import StrictSpec

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
REPORT_FILE = "report.json"


class IdmConfig(StrictSpec):  # nested blocks are as strict as the stage
    """What `augment train-idm --set key=value` can change. Defaults fit a 2-core CPU in minutes."""

    model_config = ConfigDict(extra="forbid")

    cameras: list[str] | None = Field(None, description="camera keys the model sees; default all of the dataset's")
    episodes: list[int | str] | None = Field(
        None, description='episodes to use, e.g. [0, 3, "10:20"] (end excluded); default all')
    image_size: int = Field(64, ge=16, description="frames are resized to this square size (a multiple of 16)")
    # A window reaching 7 frames ahead. An arm driven by a position controller follows its set-point
    # with a lag: MetaWorld's hand takes ~5 steps (at 80 fps) to reach the speed an action asks for,
    # so the action at t shows in the motion of t+1..t+6 more than in t..t+1, and a full-speed step
    # moves the hand < 1 px at 64 px. Held-out MetaWorld delta_x R² went 0.63 (t-1..t+2) -> 0.90
    # (t-2..t+4) -> 0.93 (this window, same 60 episodes), and each step of the action chunk is now
    # predicted about as well as the others (with t+4 the last ones were the worst); bench_idm.py.
    offsets: list[int] = Field([-2, -1, 0, 1, 2, 3, 4, 5, 6, 7],
                               description="frames t+k the model sees to label step t")
    action_chunk: int | None = Field(None, ge=1, description=(
        "actions the model predicts per window, for the steps around t (t-c//2 .. t+c-1-c//2); a step's "
        "label is the mean over the windows that predict it. Each step s needs frames s and s+1 in the "
        "window; default: the most steps the offsets allow, centred on t (offsets -2..7: 5)"))
    # Flow by default: with 10 MetaWorld episodes the RGB model never learned to see the hand's sub-pixel
    # moves along x (held-out delta_x R² 0.08, with flow 0.83 at the same 60 steps), and on pusht it changed
    # little at 5 episodes and helped at 10 (R² 0.871/0.763 -> 0.934/0.861); README "Which labels to trust".
    motion: Literal["none", "flow"] = Field("flow", description=(
        "'flow': dense optical flow (OpenCV Farneback) between neighbouring frames as two more input "
        "channels per frame: motion the network need not learn to see; 'none': RGB only"))
    pretrain: Literal["none", "future"] = Field("none", description=(
        "'future': before the action head, pretrain the image trunks without labels to predict how the "
        "picture changes just after the window (labelers/pretrain.py), within max_minutes; 'none': no pretraining"))
    pretrain_steps: int = Field(400, ge=1, description="optimizer steps of pretraining (at most a quarter of max_minutes)")
    width: int = Field(32, ge=4, description="channels of the first conv layer (doubled twice deeper)")
    hidden: int = Field(256, ge=8, description="units of the hidden layer of the head")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout of the head (and MC-dropout for checkpoints without error_head)")
    # The per-step uncertainty the idm stage writes. MC dropout ranked held-out errors poorly (Spearman per
    # step 0.10 pusht, 0.31 MetaWorld at 40 episodes); bench_idm.py, README "Uncertainty".
    error_head: bool = Field(True, description=(
        "learn the per-step variance of the action error (a second head on detached features, Gaussian "
        "likelihood of the training residuals): the idm stage's uncertainty, at no extra pass"))
    state_weight: float = Field(0.5, ge=0, description="weight of the state loss next to the action loss")
    # Epochs scale with the data: a fixed 30 epochs gave 3 training episodes ~200 optimizer steps (2 minutes
    # of an 8-minute budget on this CPU) and 60 episodes ~1000; a step count treats both alike. A fixed
    # step count also makes a run reproducible and comparable whatever else the CPU is doing.
    epochs: int | None = Field(None, ge=1, description=(
        "most epochs; default: enough for train_steps optimizer steps"))
    train_steps: int = Field(2000, ge=1, description="optimizer steps the default epoch count aims at")
    patience: int | None = Field(None, ge=1, description=(
        "stop after this many epochs without a better selection loss; default: ~400 steps' worth, at least 6"))
    max_minutes: float = Field(8.0, gt=0, description="stop training after this wall time")
    # Selection, the saved model and the report use an exponential moving average of the weights, which
    # smooths what early stopping sees: on pusht at 80 episodes the selection loss then fell every epoch
    # (0.0329 -> 0.0092; 0.0118 at epoch 8 without) and held-out target_y's scale was 1.007 (1.015 without).
    ema_steps: int = Field(50, ge=0, description=(
        "horizon in optimizer steps of the moving average of the weights that early stopping, the saved "
        "model and the report use (0: the raw weights)"))
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    val_fraction: float = Field(0.2, gt=0, lt=1, description="episodes held out for the report, never trained on")
    select_fraction: float = Field(0.1, ge=0, lt=1, description="training episodes held out for early stopping")
    edit_prob: float = Field(0.5, ge=0, le=1, description="chance a training window comes from a background-edited copy")
    edit_variants: int = Field(2, ge=0, description="background-edited copies per episode (0: no edit augmentation)")
    edit_cameras: list[str] | None = Field(
        None, description="cameras the background edit applies to; default all (leave out moving cameras)")
    calibrate: bool = Field(True, description=(
        "fit a per-dimension scale and bias of the action labels on the selection episodes, so the labels' "
        "spread matches the truth's (a small-data model's labels shrink towards the mean); fitted on fewer than "
        "3 selection episodes it is applied in part (1 episode: a third of the way), see labelers/calibrate.py"))
    seed: int = 0
    device: str = Field("auto", description="'auto' (cuda if available), 'cpu', 'cuda', 'cuda:1'")
    num_threads: int = Field(2, ge=1, description="torch CPU threads")
    plot_episodes: int = Field(3, ge=0, description="validation episodes drawn in plot.png")

    @field_validator("image_size")
    @classmethod
    def _multiple_of_16(cls, value: int) -> int:
        if value % 16:
            raise ValueError(f"image_size must be a multiple of 16 (four stride-2 convolutions), got {value}")
        return value

    @field_validator("offsets")
    @classmethod
    def _offsets(cls, value: list[int]) -> list[int]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"offsets must be a non-empty list of distinct frame offsets, got {value}")
        return sorted(value)


    @model_validator(mode="after")
    def _chunk_within_window(self) -> IdmConfig:
        """A window can only label the steps whose motion it sees: frames s and s+1."""
        seen = [s for s in self.offsets if s + 1 in self.offsets]
        if self.action_chunk is None:
            fits = [c for c in range(1, len(self.offsets) + 1) if all(s in seen for s in chunk_steps(c))]
            self.action_chunk = max(fits, default=1)
        elif self.action_chunk > 1 and not all(s in seen for s in chunk_steps(self.action_chunk)):
            raise ValueError(f"action_chunk={self.action_chunk} labels steps {chunk_steps(self.action_chunk)} "
                             f"but offsets {self.offsets} show the motion (frames s and s+1) of steps {seen} only")
        return self


def chunk_steps(chunk: int) -> list[int]:
    """Offsets (relative to t) of the actions a window predicts: centred on t, e.g. 3 -> [-1, 0, 1]."""
    return [j - chunk // 2 for j in range(chunk)]


def config_from_overrides(pairs: list[str]) -> IdmConfig:
    return settings_from_overrides(IdmConfig, pairs)


def read_checkpoint_config(checkpoint: str | Path) -> dict:
    """The checkpoint's config.json, with a message that names the folder when it is not one."""
    path = Path(checkpoint) / CONFIG_FILE
    if not path.is_file():
        raise ValueError(f"{checkpoint} is not an IDM checkpoint: {path} is missing (train one with `augment train-idm`)")
    return json.loads(path.read_text())
