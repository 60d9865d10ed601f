"""segment-anything backend: load a SAM checkpoint from a local path and turn prompts into masks.

Named sizes (vit_h / vit_l / vit_b) use segment_anything's own registry; `custom` builds the same
modules from explicit sizes (a small or fine-tuned SAM, and the tiny random one the tests save).
"""

from __future__ import annotations

import contextlib
from functools import partial
from pathlib import Path

import numpy as np
import torch
from segment_anything import SamAutomaticMaskGenerator, SamPredictor, sam_model_registry
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from editors.specs import SamArchitecture, SegmenterSpec

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def build_sam(arch: SamArchitecture) -> Sam:
    """A SAM with the given sizes and random weights (the layout segment_anything's builder uses)."""
    embedding = arch.image_size // arch.patch_size
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=arch.image_size, patch_size=arch.patch_size, embed_dim=arch.encoder_embed_dim,
            depth=arch.encoder_depth, num_heads=arch.encoder_num_heads, mlp_ratio=4,
            out_chans=arch.prompt_embed_dim, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True, window_size=arch.window_size, global_attn_indexes=tuple(arch.encoder_global_attn_indexes),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=arch.prompt_embed_dim, image_embedding_size=(embedding, embedding),
            input_image_size=(arch.image_size, arch.image_size), mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=arch.prompt_embed_dim,
                                          mlp_dim=arch.decoder_mlp_dim, num_heads=arch.decoder_num_heads),
            transformer_dim=arch.prompt_embed_dim, iou_head_depth=3, iou_head_hidden_dim=arch.iou_head_hidden_dim,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )


def load_sam(checkpoint: str, model_type: str, architecture: SamArchitecture | None, device: str) -> Sam:
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"segmenter.checkpoint: no SAM checkpoint at {checkpoint!r} "
                                "(download sam_vit_h_4b8939.pth or similar and give its local path)")
    if model_type == "custom":
        sam = build_sam(architecture)
        sam.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    else:
        sam = sam_model_registry[model_type](checkpoint=None)
        sam.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return sam.to(device).eval()


class SamSegmenter:
    """One loaded SAM; `set_image` once per frame, then ask for masks from several prompts."""

    def __init__(self, spec: SegmenterSpec):
        self.spec = spec
        self.sam = load_sam(spec.checkpoint, spec.model_type, spec.architecture, spec.device)
        self.predictor = SamPredictor(self.sam)
        self.image_shape: tuple[int, int] = (0, 0)

    def _autocast(self):
        # Weights stay float32 (SAM's preprocessing mixes buffers and inputs); bf16/fp16 run as autocast.
        if self.spec.dtype == "float32":
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.spec.device).type, dtype=DTYPES[self.spec.dtype])

    @torch.inference_mode()
    def set_image(self, frame: np.ndarray) -> None:
        with self._autocast():
            self.predictor.set_image(frame)
        self.image_shape = frame.shape[:2]

    @torch.inference_mode()
    def masks_from_boxes(self, boxes: list) -> np.ndarray:
        """Union of the best mask for each box (x0, y0, x1, y1 in px); empty when there are no boxes."""
        out = np.zeros(self.image_shape, bool)
        if not boxes:
            return out
        device = self.predictor.device
        tensor = torch.as_tensor(np.array(boxes, dtype=np.float32), device=device)
        tensor = self.predictor.transform.apply_boxes_torch(tensor, self.image_shape)
        with self._autocast():
            masks, scores, _ = self.predictor.predict_torch(None, None, boxes=tensor, multimask_output=False)
        return out | masks[:, 0].any(dim=0).cpu().numpy()

    @torch.inference_mode()
    def mask_from_points(self, points: np.ndarray) -> np.ndarray:
        """Each point prompts its own object; the best of SAM's three masks per point, united."""
        out = np.zeros(self.image_shape, bool)
        for point in points:
            with self._autocast():
                masks, scores, _ = self.predictor.predict(point_coords=point[None], point_labels=np.array([1]),
                                                          multimask_output=True)
            out |= masks[int(np.argmax(scores))]
        return out

    @torch.inference_mode()
    def automatic_objects(self, frame: np.ndarray) -> np.ndarray:
        """Automatic masks small enough to be objects (not the table or the wall), united."""
        s = self.spec
        generator = SamAutomaticMaskGenerator(self.sam, points_per_side=s.points_per_side, pred_iou_thresh=s.pred_iou_thresh,
                                              stability_score_thresh=s.stability_score_thresh)
        with self._autocast():
            found = generator.generate(frame)
        out = np.zeros(frame.shape[:2], bool)
        limit = s.max_area * frame.shape[0] * frame.shape[1]
        for item in found:
            if item["area"] <= limit:
                out |= item["segmentation"]
        return out
