"""Open-vocabulary boxes from words: OWLv2 (transformers), loaded by id or local path.

The boxes are prompts for SAM (editors/sam.py), so a spec can say "robot arm", "red cube" instead
of coordinates.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from transformers import Owlv2ForObjectDetection, Owlv2Processor

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class TextBoxDetector:
    def __init__(self, model: str, device: str = "cpu", dtype: str = "float32"):
        self.model_name = model
        self.device = device
        self.dtype = dtype
        self.processor = Owlv2Processor.from_pretrained(model)
        self.model = Owlv2ForObjectDetection.from_pretrained(model).to(device).eval()

    def _autocast(self):
        if self.dtype == "float32":
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=DTYPES[self.dtype])

    @torch.inference_mode()
    def detect(self, frame: np.ndarray, phrases: list[str], threshold: float, max_boxes: int) -> list[tuple]:
        """(phrase, x0, y0, x1, y1, score) in pixels of `frame`, best first, at most `max_boxes` per phrase."""
        if not phrases:
            return []
        height, width = frame.shape[:2]
        inputs = self.processor(text=[phrases], images=frame, return_tensors="pt").to(self.device)
        with self._autocast():
            outputs = self.model(**inputs)
        # OWLv2 pads the image to a square before resizing, so boxes are relative to that square.
        side = max(height, width)
        result = self.processor.post_process_grounded_object_detection(
            outputs, threshold=threshold, target_sizes=[(side, side)])[0]
        found: dict[str, list[tuple]] = {}
        for box, label, score in zip(result["boxes"].float().tolist(), result["labels"].tolist(),
                                     result["scores"].float().tolist()):
            x0, y0 = max(box[0], 0.0), max(box[1], 0.0)
            x1, y1 = min(box[2], float(width)), min(box[3], float(height))
            if x1 > x0 and y1 > y0:
                found.setdefault(phrases[label], []).append((phrases[label], x0, y0, x1, y1, score))
        out = []
        for phrase in phrases:
            out += sorted(found.get(phrase, []), key=lambda d: -d[-1])[:max_boxes]
        return out
