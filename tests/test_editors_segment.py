"""SAM and OWLv2 segmenters on tiny random models saved to disk and loaded by the real loaders."""

from __future__ import annotations

import os

import numpy as np
import pytest

from editors.segmenter import Segmenter
from editors.specs import SamArchitecture, SegmenterSpec
from test_editors_compose import make_episode

os.environ.setdefault("HF_HUB_OFFLINE", "1")
CAM = "observation.images.top"
TINY_SAM = SamArchitecture(image_size=64, patch_size=8, encoder_embed_dim=16, encoder_depth=2, encoder_num_heads=2,
                           encoder_global_attn_indexes=[1], window_size=4, prompt_embed_dim=16, decoder_mlp_dim=32,
                           decoder_num_heads=2, iou_head_hidden_dim=16)


@pytest.fixture(scope="module")
def sam_checkpoint(tmp_path_factory):
    import torch

    from editors.sam import build_sam

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("sam") / "tiny_sam.pth"
    sam = build_sam(TINY_SAM)
    # An untrained SAM marks almost every pixel; flipping the sign of its mask head makes the random
    # masks small, so there is room left on the table for the edit tests.
    with torch.no_grad():
        for mlp in sam.mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.neg_()
            mlp.layers[-1].bias.neg_()
    torch.save(sam.state_dict(), path)
    return str(path)


@pytest.fixture(scope="module")
def owlv2(tmp_path_factory):
    import torch
    from transformers import CLIPTokenizer, Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    torch.manual_seed(0)
    # OWLv2 treats a query whose first id is 0 as padding, so the padding token takes id 0 here
    vocab = {"!": 0, "<|startoftext|>": 1, "<|endoftext|>": 2}
    for ch in "abcdefghijklmnopqrstuvwxyz":
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16, pad_token="!")
    config = Owlv2Config(
        text_config={"vocab_size": len(vocab), "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 16, "bos_token_id": 1, "eos_token_id": 2,
                     "pad_token_id": 0},
        vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 16, "intermediate_size": 32,
                       "num_hidden_layers": 1, "num_attention_heads": 2},
        projection_dim=16)
    folder = tmp_path_factory.mktemp("owlv2")
    Owlv2ForObjectDetection(config).save_pretrained(folder)
    processor = Owlv2Processor(image_processor=Owlv2ImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer)
    processor.save_pretrained(folder)
    return str(folder)


def test_sam_box_prompt_gives_masks_and_the_arm_stays_protected(sam_checkpoint):
    video = make_episode().frames[CAM]
    spec = SegmenterSpec(kind="sam", checkpoint=sam_checkpoint, model_type="custom", architecture=TINY_SAM,
                         boxes=[[0.1, 0.65, 0.3, 0.85]])
    seg = Segmenter(spec)(video, [0, 1])
    assert seg.foreground.shape == (2, 64, 64) and seg.foreground.dtype == bool
    motion = Segmenter(SegmenterSpec(saturation_threshold=None))(video, [0, 1])
    assert (seg.robot >= motion.robot).all()  # every moving pixel is protected whatever SAM says
    assert (seg.foreground >= seg.robot).all()
    again = Segmenter(spec)(video, [0, 1])
    assert np.array_equal(again.foreground, seg.foreground)


def test_sam_points_and_automatic_masks(sam_checkpoint):
    import torch

    from editors.sam import SamSegmenter

    frame = make_episode().frames[CAM][0]
    spec = SegmenterSpec(kind="sam", checkpoint=sam_checkpoint, model_type="custom", architecture=TINY_SAM,
                         automatic=True, points_per_side=4, max_area=1.0, pred_iou_thresh=0.0,
                         stability_score_thresh=0.0)
    sam = SamSegmenter(spec)
    assert next(sam.sam.parameters()).dtype == torch.float32
    sam.set_image(frame)
    points = sam.mask_from_points(np.array([[12.0, 48.0]]))
    assert points.shape == (64, 64) and points.dtype == bool and points.any()
    auto = sam.automatic_objects(frame)
    assert auto.shape == (64, 64) and auto.any()
    sam.spec = spec.model_copy(update={"max_area": 1e-9})
    assert not sam.automatic_objects(frame).any()  # nothing is that small

def test_missing_checkpoint_names_the_field(tmp_path):
    spec = SegmenterSpec(kind="sam", checkpoint=str(tmp_path / "nope.pth"), automatic=True)
    with pytest.raises(FileNotFoundError, match="segmenter.checkpoint"):
        Segmenter(spec)


def test_owlv2_boxes_prompt_sam(sam_checkpoint, owlv2):
    from editors.detector import TextBoxDetector

    frame = make_episode().frames[CAM][0]
    detector = TextBoxDetector(owlv2)
    found = detector.detect(frame, ["robot arm", "red cube"], threshold=0.0, max_boxes=2)
    assert 1 <= len(found) <= 4
    for label, x0, y0, x1, y1, score in found:
        assert label in ("robot arm", "red cube") and 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
    assert found == detector.detect(frame, ["robot arm", "red cube"], threshold=0.0, max_boxes=2)

    spec = SegmenterSpec(kind="text", checkpoint=sam_checkpoint, model_type="custom", architecture=TINY_SAM,
                         detector=owlv2, keep=["red cube"], robot=["robot arm"], box_threshold=0.0)
    seg = Segmenter(spec)(make_episode().frames[CAM], [0])
    assert seg.foreground.shape == (1, 64, 64) and len(seg.boxes[0]) >= 1
    assert (seg.foreground >= seg.robot).all()


def test_add_object_with_sam_segmenter_never_touches_the_robot(sam_checkpoint, tmp_path):
    from editors.specs import AddObjectSpec
    from editors.edit_base import check_protected
    from test_editors_compose import write_asset

    asset = write_asset(tmp_path / "ball.png")
    segmenter = {"kind": "sam", "checkpoint": sam_checkpoint, "model_type": "custom",
                 "architecture": TINY_SAM.model_dump(), "boxes": [[0.1, 0.65, 0.3, 0.85]],
                 "grow": 0}  # random SAM masks are speckled: growing them would leave no room
    stage = AddObjectSpec(assets=asset, segmenter=segmenter, apply_to="first", first_frames=2, margin=0).build()
    stage.setup()
    episode = make_episode()
    [out] = stage([episode])
    assert "dropped" not in out.provenance, out.provenance.get("dropped")
    seg = stage.segmenter(episode.frames[CAM], [0, 1])
    before, after = episode.frames[CAM], out.frames[CAM]
    assert np.array_equal(before[2:], after[2:])
    check_protected(before[:2], after[:2], seg.robot, "test")
    changed = (before[:2] != after[:2]).any(-1)
    assert changed.any() and not (changed & seg.foreground).any()
    assert out.provenance["stages"][-1]["segmenter"] == f"sam:{sam_checkpoint}"


def test_bf16_autocast_gives_the_same_kind_of_masks(sam_checkpoint):
    video = make_episode().frames[CAM]
    common = dict(kind="sam", checkpoint=sam_checkpoint, model_type="custom", architecture=TINY_SAM,
                  boxes=[[0.1, 0.65, 0.3, 0.85]], grow=0, protect_motion=False)
    fp32 = Segmenter(SegmenterSpec(**common))(video, [0]).foreground
    bf16 = Segmenter(SegmenterSpec(**common, dtype="bfloat16"))(video, [0]).foreground
    assert bf16.shape == fp32.shape and bf16.dtype == bool
    assert (bf16 != fp32).mean() < 0.05  # rounding flips only a few near-threshold pixels


def test_folder_background_with_a_sam_segmenter_keeps_the_robot(sam_checkpoint, tmp_path):
    import cv2

    from editors.specs import BackgroundSpec

    cv2.imwrite(str(tmp_path / "bg.png"), np.full((32, 32, 3), (10, 200, 10), np.uint8))
    segmenter = {"kind": "sam", "checkpoint": sam_checkpoint, "model_type": "custom",
                 "architecture": TINY_SAM.model_dump(), "boxes": [[0.1, 0.65, 0.3, 0.85]]}
    stage = BackgroundSpec(backgrounds=str(tmp_path), feather=0, segmenter=segmenter).build()
    stage.setup()
    episode = make_episode()
    [out] = stage([episode])
    before, after = episode.frames[CAM], out.frames[CAM]
    seg = stage.segmenter(before, list(range(len(before))))
    assert np.array_equal(after[seg.foreground], before[seg.foreground])
    assert (after[~seg.foreground] == (10, 200, 10)).all()


def test_surface_prompt_confines_placement_to_the_detected_surface(sam_checkpoint, owlv2, tmp_path):
    from pydantic import ValidationError

    from editors.specs import AddObjectSpec
    from test_editors_compose import write_asset

    asset = write_asset(tmp_path / "ball.png")
    with pytest.raises(ValidationError, match="surface_prompt needs `segmenter.kind: text`"):
        AddObjectSpec(assets=asset, surface_prompt="table top")
    segmenter = {"kind": "text", "checkpoint": sam_checkpoint, "model_type": "custom",
                 "architecture": TINY_SAM.model_dump(), "detector": owlv2, "keep": [], "robot": ["robot arm"],
                 "box_threshold": 0.0, "grow": 0}
    stage = AddObjectSpec(assets=asset, surface_prompt="table top", segmenter=segmenter, margin=0,
                          size=(0.1, 0.1)).build()
    stage.setup()
    frame = make_episode().frames[CAM][0]
    surface = stage.segmenter.phrase_mask(frame, ["table top"])
    assert surface.shape == (64, 64) and surface.dtype == bool
    # the random tiny detector finds arbitrary boxes; pin the surface to a known region to check the wiring
    known = np.zeros((64, 64), bool)
    known[50:64, 30:64] = True
    stage.segmenter.phrase_mask = lambda frame, phrases: known
    [out] = stage([make_episode()])
    [(x0, y0, x1, y1)] = out.provenance["stages"][-1]["cameras"][CAM]["boxes"]
    assert known[y0:y1, x0:x1].all()
