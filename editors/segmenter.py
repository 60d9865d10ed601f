"""Which pixels an edit must keep: the `segmenter:` block of every edit stage.

Three kinds, one answer: per frame, a foreground mask (robot + objects to keep) and a robot mask.
    motion  weight-free (editors/segment.py): what moves, plus strongly coloured still things; with
            `foreground: workspace`, the robot, every object and the table (for background edits)
    sam     segment-anything from a local checkpoint, prompted by boxes/points in the spec, or its
            automatic mask generator (objects smaller than `max_area`)
    text    an open-vocabulary detector (OWLv2) turns words ("robot arm", "red cube") into boxes,
            which prompt SAM; so a spec says what to keep in words
Whatever the kind, every pixel that moves during the episode is added to the robot mask
(`protect_motion`), so the arm is protected even where a model misses it.

This module stays light (pydantic + numpy); torch, segment_anything and transformers are imported
by editors/sam.py and editors/detector.py only when a spec uses those kinds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import ConfigDict, Field, model_validator

from augment.stage import StrictSpec
from editors.compose import dilate
from editors.segment import foreground_masks
from editors.workspace import workspace_masks

Box = list[float]  # [x0, y0, x1, y1], fractions of width and height
Point = list[float]  # [x, y], fractions


class SamArchitecture(StrictSpec):  # nested blocks are as strict as the stage
    """A SAM built from explicit sizes (model_type: custom): for small or fine-tuned checkpoints."""

    model_config = ConfigDict(extra="forbid")

    image_size: int = Field(1024, ge=32)
    patch_size: int = Field(16, ge=2)
    encoder_embed_dim: int = Field(768, ge=8)
    encoder_depth: int = Field(12, ge=1)
    encoder_num_heads: int = Field(12, ge=1)
    encoder_global_attn_indexes: list[int] = Field(default_factory=lambda: [2, 5, 8, 11])
    window_size: int = Field(14, ge=0)
    prompt_embed_dim: int = Field(256, ge=8)
    decoder_mlp_dim: int = Field(2048, ge=8)
    decoder_num_heads: int = Field(8, ge=1)
    iou_head_hidden_dim: int = Field(256, ge=8)


class SegmenterSpec(StrictSpec):  # nested blocks are as strict as the stage
    model_config = ConfigDict(extra="forbid")

    kind: Literal["motion", "sam", "text"] = "motion"
    # motion (also the robot mask of every kind)
    diff_threshold: float = Field(18.0, gt=0, description="colour distance that makes a pixel moving")
    saturation_threshold: float | None = Field(0.45, description="keep strongly coloured still pixels; null disables")
    protect_motion: bool = Field(True, description="add every pixel that moves during the episode to the robot mask")
    grow: int = Field(2, ge=0, description="dilate foreground and robot masks by this many px (a safety margin)")
    foreground: Literal["moving", "workspace"] = Field(
        "moving", description="kind motion: the foreground is what moves (and coloured still things), or the whole "
                              "workspace - robot, objects and the table they lie on (editors/workspace.workspace_masks) - "
                              "for edits that replace only what lies behind it")
    # sam
    checkpoint: str | None = Field(None, description="local path of a SAM state_dict (.pth), for kinds sam and text")
    model_type: Literal["vit_h", "vit_l", "vit_b", "custom"] = "vit_h"
    architecture: SamArchitecture | None = Field(None, description="sizes for model_type: custom")
    boxes: list[Box] = Field(default_factory=list, description="SAM box prompts of things to keep")
    points: list[Point] = Field(default_factory=list, description="SAM point prompts of things to keep")
    robot_boxes: list[Box] = Field(default_factory=list, description="SAM box prompts of the robot")
    automatic: bool = Field(False, description="kind sam without prompts: keep automatic masks under max_area")
    points_per_side: int = Field(16, ge=2)
    max_area: float = Field(0.15, gt=0, le=1, description="automatic masks larger than this (table, wall) are background")
    pred_iou_thresh: float = Field(0.88, ge=0, le=1, description="automatic: SAM's own quality score a mask needs")
    stability_score_thresh: float = Field(0.95, ge=0, le=1, description="automatic: mask stability a mask needs")
    # text
    detector: str | None = Field(None, description="OWLv2 model id or local path, for kind text")
    keep: list[str] = Field(default_factory=list, description='things to keep, in words: ["red cube"]')
    robot: list[str] = Field(default_factory=lambda: ["robot arm", "gripper"], description="the robot, in words")
    box_threshold: float = Field(0.1, ge=0, le=1, description="detector score a box needs")
    max_boxes: int = Field(3, ge=1, description="most boxes kept per phrase")
    # where the models run
    device: str = Field("cpu", description="torch device: cpu, cuda, cuda:1")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="autocast dtype for SAM and the detector")

    @model_validator(mode="after")
    def _needs(self) -> SegmenterSpec:
        if self.kind in ("sam", "text") and not self.checkpoint:
            raise ValueError(f"segmenter kind {self.kind!r} needs `checkpoint`: a local SAM .pth file")
        if self.model_type == "custom" and self.architecture is None:
            raise ValueError("segmenter model_type 'custom' needs `architecture` (image_size, encoder_embed_dim, ...)")
        if self.kind == "text" and not self.detector:
            raise ValueError("segmenter kind 'text' needs `detector`: an OWLv2 model id or local path")
        if self.kind == "sam" and not (self.boxes or self.points or self.automatic):
            raise ValueError("segmenter kind 'sam' needs prompts (`boxes` or `points`) or `automatic: true`")
        for name in ("boxes", "robot_boxes"):
            for box in getattr(self, name):
                if len(box) != 4 or not (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1):
                    raise ValueError(f"{name}: {box} is not [x0, y0, x1, y1] with 0 <= x0 < x1 <= 1, 0 <= y0 < y1 <= 1")
        for point in self.points:
            if len(point) != 2 or not all(0 <= v <= 1 for v in point):
                raise ValueError(f"points: {point} is not [x, y] in fractions of the image")
        return self

    @property
    def model_name(self) -> str:
        names = {"motion": "motion-median", "sam": f"sam:{self.checkpoint}", "text": f"{self.detector}+sam:{self.checkpoint}"}
        return names[self.kind]


@dataclass
class Segmentation:
    foreground: np.ndarray  # bool (N, H, W): pixels an edit keeps (robot and objects)
    robot: np.ndarray  # bool (N, H, W): pixels no edit may ever change; a subset of foreground
    boxes: list[list[tuple]]  # per frame, detected/prompted (label, x0, y0, x1, y1) for the review image


class Segmenter:
    """Built from a SegmenterSpec inside a stage's setup(); loads its models once."""

    def __init__(self, spec: SegmenterSpec):
        self.spec = spec
        self.sam = self.detector = None
        if spec.kind in ("sam", "text"):
            from editors.sam import SamSegmenter

            self.sam = SamSegmenter(spec)
        if spec.kind == "text":
            from editors.detector import TextBoxDetector

            self.detector = TextBoxDetector(spec.detector, spec.device, spec.dtype)

    def __call__(self, video: np.ndarray, indices: list[int]) -> Segmentation:
        """Masks for the frames `indices` of one camera's video (T, H, W, 3); motion uses all T."""
        s = self.spec
        moving = foreground_masks(video, s.diff_threshold, None)[indices]
        if s.kind == "motion" and s.foreground == "workspace":
            # the keep-mask is already tight to the image: no safety margin around the table
            foreground = workspace_masks(video, s.diff_threshold, saturation=s.saturation_threshold).keep[indices]
            robot = np.stack([dilate(m, s.grow) for m in moving])
            return Segmentation(foreground=foreground | robot, robot=robot, boxes=[[] for _ in indices])
        if s.kind == "motion":
            foreground = foreground_masks(video, s.diff_threshold, s.saturation_threshold)[indices]
            robot = moving
            boxes: list[list[tuple]] = [[] for _ in indices]
        else:
            foreground, robot, boxes = self._model_masks(video[indices])
            if s.protect_motion:
                robot = robot | moving
        robot = np.stack([dilate(m, s.grow) for m in robot])
        foreground = np.stack([dilate(m, s.grow) for m in foreground]) | robot
        return Segmentation(foreground=foreground, robot=robot, boxes=boxes)

    def phrase_mask(self, frame: np.ndarray, phrases: list[str]) -> np.ndarray:
        """Union of SAM masks of what the detector finds for `phrases` ("table top"); kind text only."""
        if self.detector is None:
            raise ValueError("a mask from words needs `segmenter.kind: text` (a detector and SAM)")
        found = self.detector.detect(frame, phrases, self.spec.box_threshold, self.spec.max_boxes)
        self.sam.set_image(frame)
        return self.sam.masks_from_boxes([d[1:5] for d in found])

    def _model_masks(self, frames: np.ndarray):
        s = self.spec
        n, height, width = frames.shape[:3]
        foreground = np.zeros((n, height, width), bool)
        robot = np.zeros_like(foreground)
        boxes: list[list[tuple]] = []
        scale = np.array([width, height, width, height], dtype=np.float32)
        for i, frame in enumerate(frames):
            keep_boxes = [("keep", *(np.array(b) * scale)) for b in s.boxes]
            robot_boxes = [("robot", *(np.array(b) * scale)) for b in s.robot_boxes]
            if self.detector is not None:
                found = self.detector.detect(frame, [*s.keep, *s.robot], s.box_threshold, s.max_boxes)
                keep_boxes += [d for d in found if d[0] in s.keep]
                robot_boxes += [d for d in found if d[0] in s.robot]
            self.sam.set_image(frame)
            robot[i] = self.sam.masks_from_boxes([b[1:5] for b in robot_boxes])
            foreground[i] = robot[i] | self.sam.masks_from_boxes([b[1:5] for b in keep_boxes])
            if s.points:
                foreground[i] |= self.sam.mask_from_points(np.array(s.points) * scale[:2])
            if s.automatic and not (s.boxes or s.points):
                foreground[i] |= self.sam.automatic_objects(frame)
            boxes.append(keep_boxes + robot_boxes)
        return foreground, robot, boxes
