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

import numpy as np

from editors.compose import dilate
from editors.segment import foreground_masks
from editors.workspace import workspace_masks
from editors.specs import SegmenterSpec


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
