"""Masks, compositing, placement and the weight-free edit stages (paste objects): no model weights."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from augment.episode import Episode
from editors.specs import AddObjectSpec
from editors.compose import asset_sprite, composite, draw_sprite, ellipse_mask, find_free_box, place_boxes
from editors.edit_base import check_protected
from editors.segmenter import Segmenter
from editors.specs import SegmenterSpec

H = W = 64


def make_episode(length: int = 8, uid: str = "ep000000") -> Episode:
    """A static textured table, a still red cube, and a grey 'robot arm' that sweeps across the top."""
    rng = np.random.default_rng(0)
    table = (rng.integers(90, 130, size=(H, W, 1)) + np.zeros(3, int)).astype(np.uint8)
    frames = np.repeat(table[None], length, axis=0)
    frames[:, 44:52, 8:16] = (220, 30, 30)  # the cube
    for t in range(length):
        x = 10 + 5 * t
        frames[t, 0:30, x:x + 8] = 200  # the arm
        frames[t, 30:36, x - 2:x + 10] = 240  # the gripper
    state = np.zeros((length, 2), np.float32)
    return Episode(frames={"observation.images.top": frames}, task="push the cube", fps=10, uid=uid,
                   state=state, action=state.copy())


def write_asset(path, colour=(30, 200, 30)) -> str:
    import cv2

    asset = np.zeros((20, 16, 4), np.uint8)
    asset[..., :3] = colour
    alpha = np.zeros((20, 16), np.uint8)
    cv2.circle(alpha, (8, 10), 7, 255, -1)
    asset[..., 3] = alpha
    cv2.imwrite(str(path), cv2.cvtColor(asset, cv2.COLOR_RGBA2BGRA))
    return str(path)


def test_composite_keeps_outside_and_protected_pixels_bit_for_bit():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    new = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    mask = np.zeros((32, 32), bool)
    mask[4:28, 4:28] = True
    protect = np.zeros_like(mask)
    protect[10:14, 10:14] = True
    out = composite(frame, new, mask, protect, feather=3)
    assert out.dtype == np.uint8 and out.shape == frame.shape
    assert np.array_equal(out[~mask], frame[~mask])
    assert np.array_equal(out[protect], frame[protect])
    # deep inside the mask, away from every edge, the new image shows through fully
    assert np.array_equal(out[20, 20], new[20, 20])


def test_free_box_never_overlaps_the_occupied_pixels_and_follows_the_seed():
    free = np.ones((40, 40), bool)
    free[:, 10:30] = False
    for seed in range(20):
        x0, y0, x1, y1 = find_free_box(free, 8, 8, np.random.default_rng(seed))
        assert free[y0:y1, x0:x1].all() and (x1 - x0, y1 - y0) == (8, 8)
    a = place_boxes(free, [(6, 6)] * 3, np.random.default_rng(5))
    b = place_boxes(free, [(6, 6)] * 3, np.random.default_rng(5))
    assert a == b and len(a) == 3
    masks = [np.zeros((40, 40), bool) for _ in a]
    for m, (x0, y0, x1, y1) in zip(masks, a):
        m[y0:y1, x0:x1] = True
    assert not (masks[0] & masks[1]).any() and not (masks[1] & masks[2]).any()
    assert find_free_box(free, 12, 12, np.random.default_rng(0)) is None  # the free strips are 10 wide


def test_sprite_has_a_soft_shadow_and_stays_inside_its_reach():
    asset = np.zeros((10, 10, 4), np.uint8)
    asset[..., 0] = 255
    asset[..., 3] = 255
    sprite = asset_sprite(asset, (20, 20, 30, 30), 64, 64, shadow_offset=(3, 3), shadow_blur=2)
    frame = np.full((64, 64, 3), 128, np.uint8)
    out = draw_sprite(frame, sprite)
    assert tuple(out[25, 25]) == (255, 0, 0)  # the opaque object
    assert out[31, 31].max() < 128  # the shadow darkens below-right of it
    assert np.array_equal(out[~sprite.mask], frame[~sprite.mask])
    edge = asset_sprite(asset, (54, 20, 64, 30), 64, 64, shadow_offset=(3, 3), shadow_blur=0)
    assert not edge.mask[:, :10].any()  # a shadow past the right edge does not wrap to the left
    assert ellipse_mask((0, 0, 10, 10), 20, 20)[5, 5] and not ellipse_mask((0, 0, 10, 10), 20, 20)[0, 0]


def test_motion_segmenter_finds_the_arm_and_the_cube():
    episode = make_episode()
    video = episode.frames["observation.images.top"]
    seg = Segmenter(SegmenterSpec())(video, list(range(len(video))))
    assert seg.foreground.shape == (8, H, W) and seg.foreground.dtype == bool
    assert seg.robot[3, 10, 10 + 5 * 3 + 4]  # the arm in frame 3
    assert seg.foreground[0, 48, 12] and not seg.robot[0, 48, 12]  # the cube: kept, not robot
    assert not seg.foreground[0, 60, 60]  # the table


def test_add_object_paste_places_clear_of_foreground_and_rewrites_the_task(tmp_path):
    assets = tmp_path / "assets"
    assets.mkdir()
    write_asset(assets / "green_ball.png")
    spec = AddObjectSpec(assets=str(assets), count=2, size=(0.15, 0.2), apply_to="all", margin=2,
                         task_template="pick up the {object}", review_dir=str(tmp_path / "review"))
    stage = spec.build()
    stage.setup()
    episode = make_episode()
    [out] = stage([episode])
    before, after = episode.frames["observation.images.top"], out.frames["observation.images.top"]
    seg = stage.segmenter(before, list(range(len(before))))
    changed = (before != after).any(-1)
    assert changed.any() and not (changed & seg.foreground).any()
    check_protected(before, after, seg.robot, "test")
    record = out.provenance["stages"][-1]
    boxes = record["cameras"]["observation.images.top"]["boxes"]
    occupied = seg.foreground.any(0)
    for x0, y0, x1, y1 in boxes:
        assert not occupied[y0:y1, x0:x1].any()
    assert out.task == "pick up the green ball"
    camera = record["cameras"]["observation.images.top"]
    assert isinstance(record["seed"], int) and isinstance(camera["seed"], int) and camera["edit_area"] > 0
    assert camera["model"] == str(assets) and camera["objects"] == ["green ball", "green ball"]
    assert (tmp_path / "review" / "ep000000.png").is_file()
    assert np.array_equal(out.state, episode.state) and np.array_equal(out.action, episode.action)
    stage2 = spec.build()
    stage2.setup()
    [out2] = stage2([episode])
    assert np.array_equal(out2.frames["observation.images.top"], after)  # same seed, same pixels


def test_first_frames_mode_leaves_the_rest_of_the_episode_intact(tmp_path):
    assets = tmp_path / "a.png"
    write_asset(assets)
    spec = AddObjectSpec(assets=str(assets), apply_to="first", first_frames=2, variants=2)
    stage = spec.build()
    stage.setup()
    episode = make_episode()
    outs = stage([episode])
    assert [o.uid for o in outs] == ["ep000000-add_object0", "ep000000-add_object1"]
    before = episode.frames["observation.images.top"]
    for out in outs:
        after = out.frames["observation.images.top"]
        assert np.array_equal(after[2:], before[2:])
        assert (after[:2] != before[:2]).any()
    assert outs[0].provenance["stages"][-1]["seed"] != outs[1].provenance["stages"][-1]["seed"]


def test_no_room_drops_the_episode_with_a_reason(tmp_path):
    asset = write_asset(tmp_path / "a.png")
    spec = AddObjectSpec(assets=asset, size=(0.9, 0.9), surface_box=[0, 0.8, 1, 1])
    stage = spec.build()
    stage.setup()
    [out] = stage([make_episode()])
    assert "no free place" in out.provenance["dropped"]["reason"]


def test_bad_specs_name_the_field(tmp_path):
    with pytest.raises(ValidationError, match="mode 'inpaint' needs `diffusion`"):
        AddObjectSpec(mode="inpaint", objects=["mug"])
    with pytest.raises(ValidationError, match="needs `assets`"):
        AddObjectSpec(mode="paste", assets=str(tmp_path / "nothing"))
    with pytest.raises(ValidationError, match="needs `checkpoint`"):
        SegmenterSpec(kind="sam", automatic=True)
    with pytest.raises(ValidationError, match="needs `detector`"):
        SegmenterSpec(kind="text", checkpoint="x.pth")
    with pytest.raises(ValidationError, match=r"boxes: \[0.5, 0.0, 0.2, 1.0\]"):
        SegmenterSpec(kind="sam", checkpoint="x.pth", boxes=[[0.5, 0, 0.2, 1]])


def test_spec_modules_import_no_heavy_library():
    import subprocess
    import sys

    code = ("import sys, editors.add_object, editors.backdrop, editors.inpaint_background, editors.background; "
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'segment_anything') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
