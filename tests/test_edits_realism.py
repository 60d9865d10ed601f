"""The background edit against the simulator's own ground truth: MetaWorld episodes recorded with
per-pixel classes (make_sim_dataset.py --masks), on seeds the segmenter was not tuned on (0-5)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from conftest import load_script

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="hf_home_"))
os.environ.setdefault("MUJOCO_GL", "egl")

pytest.importorskip("lerobot")

ROOT = Path(__file__).resolve().parents[1]
KEY = "observation.images.corner2"  # the demo's camera; corner4 looks at the table from closer
CAMERAS = [KEY, "observation.images.corner4"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Two pick-place episodes at the demo's size from two cameras, decoded as the pipeline reads them."""
    pytest.importorskip("metaworld")
    from augment.source import LeRobotSource

    script = load_script("scripts/make_sim_dataset.py")
    out = tmp_path_factory.mktemp("gt") / "ds"
    script.build_dataset(out, sim="metaworld", task="pick-place-v3", episodes=2, size=128,
                         cameras="corner2,corner4", seed=100, max_steps=70, masks=True, log=lambda *_: None)
    source = LeRobotSource(out)
    return [(source.read_episode(i), script.load_masks(out, i)) for i in range(2)]


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/bench_edits.py")


def test_recorder_writes_truth_for_every_frame(recorded):
    for episode, truth in recorded:
        assert sorted(truth) == sorted(CAMERAS)
        for key in CAMERAS:
            labels = truth[key]
            assert labels.shape == episode.frames[key].shape[:3] and labels.dtype == np.uint8
            for c in (0, 1, 2, 3):  # backdrop, table, robot and objects are all in view in every frame
                assert (labels == c).any(axis=(1, 2)).all(), (key, c)


@pytest.mark.parametrize("key", CAMERAS)
def test_keep_mask_matches_the_truth_in_every_frame(recorded, bench, key):
    from editors.workspace import workspace_masks

    for episode, truth in recorded:
        labels = truth[key]
        scores = bench.score(workspace_masks(episode.frames[key]).keep, labels)
        assert scores["iou_min"] >= 0.95, scores  # the goal, on every frame (README: 0.96-0.98 held out)
        assert scores["iou_frame0"] >= 0.95, scores  # frame 0, before anything moved, like the rest
        assert scores["boundary_mean"] <= 1.0, scores  # README: 0.4-0.7 px held out
        assert scores["kept_table"] >= 0.97 and scores["kept_robot"] >= 0.97, scores
        # every object in every frame: at worst an anti-aliased edge pixel of a 4-8 px object is lost
        assert scores["object_min_frame"] >= 0.7 and scores["kept_object"] >= 0.99, scores
        assert scores["kept_background"] <= 0.05, scores


def test_background_edit_changes_only_the_backdrop(recorded, bench):
    from editors.specs import BackgroundSpec

    stage = BackgroundSpec(cameras=[KEY], variants=2).build()
    stage.setup()
    for episode, truth in recorded:
        source, labels = episode.frames[KEY], truth[KEY]
        for out in stage([episode]):
            edited = out.frames[KEY]
            changed = bench.changed_by_edit(source, edited, labels)
            assert changed["changed_object"] <= 0.02, changed
            assert changed["changed_robot"] <= 0.03 and changed["changed_table"] <= 0.03, changed
            assert changed["changed_background"] >= 0.9, changed
            # frames the source shows alike come out alike: frame 0 is treated as every other
            alike = np.flatnonzero((source[1:] == source[:-1]).all(axis=(1, 2, 3)))
            for t in alike:
                np.testing.assert_array_equal(edited[t + 1], edited[t])
            # and the new backdrop is still where the source's was still
            still = (labels[1:] == 0) & (labels[:-1] == 0) & (source[1:] == source[:-1]).all(axis=-1)
            assert (edited[1:][still] == edited[:-1][still]).all(axis=-1).mean() > 0.99


def test_surface_edit_retextures_the_table_and_nothing_else(recorded, bench):
    from editors.specs import SurfaceSpec

    stage = SurfaceSpec(cameras=[KEY]).build()
    stage.setup()
    for episode, truth in recorded:
        labels = truth[KEY]
        [out] = stage([episode])
        changed = bench.changed_by_edit(episode.frames[KEY], out.frames[KEY], labels)
        assert changed["changed_table"] >= 0.8, changed
        assert changed["changed_robot"] <= 0.03 and changed["changed_object"] <= 0.02, changed
        assert changed["changed_background"] <= 0.03, changed


@pytest.fixture(scope="module")
def pusht(tmp_path_factory):
    """One pusht episode with truth (the env's own shapes at the frame's size), 96 px like the IDM's."""
    pytest.importorskip("gym_pusht")
    from augment.source import LeRobotSource

    script = load_script("scripts/make_sim_dataset.py")
    out = tmp_path_factory.mktemp("pusht") / "ds"
    script.build_dataset(out, sim="pusht", episodes=1, size=96, seed=301, max_steps=40, masks=True,
                         log=lambda *_: None)
    key = "observation.images.top"
    return LeRobotSource(out).read_episode(0).frames[key], script.load_masks(out, 0)[key]


def test_pusht_truth_and_keep_mask(bench, pusht):
    """pusht's top-down canvas is the work surface, not a backdrop: everything is kept; the truth is
    the env's own shapes (agent, block, goal) at the frame's size."""
    from editors.workspace import workspace_masks

    video, labels = pusht
    assert labels.shape == video.shape[:3] and not (labels == 0).any()
    # the truth lies on the rendered shapes: the agent is blue, the canvas white
    agent, canvas = video[labels == 2].mean(axis=0), video[labels == 1].mean(axis=0)
    assert agent[2] > agent[0] + 60 and canvas.min() > 200, (agent, canvas)
    scores = bench.score(workspace_masks(video).keep, labels)
    assert scores["iou_min"] >= 0.99 and scores["kept_object"] >= 0.99, scores


def test_edited_copies_keep_the_goal_the_block_and_the_table(pusht):
    """The copies the IDM and the fine-tune train on (procedural_variants) keep pusht's world in every
    frame: the goal T, which never moves, the block, also while it rests, the agent and the canvas.
    (The motion masks they used before replaced the canvas and erased the goal T.)"""
    from editors.background import procedural_variants

    video, labels = pusht
    for copy in procedural_variants(video, [1, 2]):
        kept = (copy == video).all(axis=-1)
        for c in (1, 2, 3):  # table, robot, objects
            per_frame = [float(k[lab == c].mean()) for k, lab in zip(kept, labels) if (lab == c).any()]
            assert len(per_frame) == len(video) and min(per_frame) >= 0.99, (c, min(per_frame))


def test_a_copy_the_edit_left_as_recorded_is_not_computed_again(pusht, recorded):
    """pusht has no backdrop, so its copies are the source: the IDM's loader hands the episode's own
    stack (RGB + optical flow) again instead of computing it twice more, and the fine-tune adds no
    clips it would encode a second time; an edited MetaWorld copy is stacked and added anew."""
    from generators.finetune_clips import background_edits
    from labelers.data import edited_copies, stack_cameras

    for frames, key in (({"top": pusht[0]}, "top"), (recorded[0][0].frames, KEY)):
        plain = stack_cameras(frames, [key], 32, motion="flow")
        copies = edited_copies(frames, [key], 32, 2, 0, "ep", motion="flow", plain=plain)
        assert all((c is plain) == (key == "top") for c in copies)
        assert all(c.shape == plain.shape for c in copies)
        assert len(background_edits(frames[key], 2, 0, "ep")) == (0 if key == "top" else 2)


@pytest.mark.parametrize("key", CAMERAS)
def test_edited_copies_change_only_the_backdrop(recorded, bench, key):
    """MetaWorld: each copy gets a new backdrop behind the robot, the objects and the table, which stay
    as recorded in every frame (before: motion masks kept 10-40% of the table and robot, 96 px)."""
    from editors.background import procedural_variants

    for episode, truth in recorded:
        video, labels = episode.frames[key], truth[key]
        copies = procedural_variants(video, [1, 2])
        assert not np.array_equal(copies[0], copies[1])  # each seed its own backdrop
        for copy in copies:
            changed = bench.changed_by_edit(video, copy, labels)
            assert changed["changed_background"] >= 0.9, changed
            assert changed["changed_table"] <= 0.03 and changed["changed_robot"] <= 0.03, changed
            assert changed["changed_object"] <= 0.02, changed
            kept = (copy == video).all(axis=-1)
            # in every frame, not only on average: the table and robot but their outline (unmixed over the
            # new backdrop), every object but an anti-aliased edge pixel of a 4-8 px object
            worst = {c: min(float(k[lab == c].mean()) for k, lab in zip(kept, labels)) for c in (1, 2, 3)}
            assert worst[1] >= 0.95 and worst[2] >= 0.95 and worst[3] >= 0.7, worst  # seed 100: 0.98, 0.98, 0.75


@pytest.fixture(scope="module", params=[64, 128], ids=["64px", "128px"])
def drawer(request, tmp_path_factory):
    """One drawer-close episode with truth: MetaWorld's drawer is pale green (HSV saturation 0.35, the
    wood table's), at the policy benchmark's 64 px and at 128 px; seed 120, not tuned on (600-601 were)."""
    pytest.importorskip("metaworld")
    from augment.source import LeRobotSource

    script = load_script("scripts/make_sim_dataset.py")
    out = tmp_path_factory.mktemp("drawer") / "ds"
    script.build_dataset(out, sim="metaworld", task="drawer-close-v3", episodes=1, size=request.param,
                         cameras="corner2,topview", seed=120, max_steps=60, masks=True, log=lambda *_: None)
    return request.param, LeRobotSource(out).read_episode(0), script.load_masks(out, 0)


@pytest.mark.parametrize("camera", ["corner2", "topview"])
def test_pale_drawer_is_kept_in_every_frame(drawer, bench, camera):
    from editors.workspace import workspace_masks

    size, episode, truth = drawer
    key = f"observation.images.{camera}"
    scores = bench.score(workspace_masks(episode.frames[key]).keep, truth[key])
    print(size, camera, scores)
    # the drawer (object pixels) in every frame, frame 0 included; before, at 64 px, 5-10% of it
    assert scores["object_min_frame"] >= 0.85 and scores["kept_object"] >= 0.95, scores
    assert scores["kept_robot"] >= 0.97 and scores["kept_table"] >= 0.95, scores
    assert scores["kept_background"] <= 0.05, scores
    assert scores["iou_min"] >= (0.95 if size >= 128 else 0.92), scores  # 64 px: 1 px is 1.6% of the frame
    assert scores["boundary_mean"] <= 2.0, scores


@pytest.mark.slow  # gym-aloha renders its own 640x480 observation every step: ~1-3 s a step on a busy CPU
def test_aloha_truth_and_keep_mask(bench, tmp_path):
    """gym-aloha's two ViperX arms over a grey table on black, with MuJoCo's segmentation mapped by the
    body tree (arms = robot, `table`, peg and socket = objects, the world body = background)."""
    pytest.importorskip("gym_aloha")
    from augment.source import LeRobotSource
    from editors.workspace import workspace_masks

    script = load_script("scripts/make_sim_dataset.py")
    out = tmp_path / "aloha"
    script.build_dataset(out, sim="aloha", task="insertion", episodes=1, size=64, seed=5, max_steps=30,
                         masks=True, log=lambda *_: None)
    key = "observation.images.top"
    video, labels = LeRobotSource(out).read_episode(0).frames[key], script.load_masks(out, 0)[key]
    assert labels.shape == video.shape[:3]
    for c in (0, 1, 2, 3):
        assert (labels == c).any(axis=(1, 2)).all(), c
    # the truth lies on the rendered things: the backdrop is black, the peg red, the socket blue
    assert video[labels == 0].mean() < 10
    objects = video[labels == 3].astype(int)
    assert ((objects[:, 0] - objects[:, 1:].max(1)) > 80).any() and ((objects[:, 2] - objects[:, :2].max(1)) > 80).any()
    scores = bench.score(workspace_masks(video).keep, labels)
    assert scores["iou_min"] >= 0.95 and scores["boundary_mean"] <= 1.0, scores  # seed 5 at 64 px: 0.988, 0.17 px
    # 64 px: the grey arm's anti-aliased rim over the black floor is lost (robot kept 0.94; 0.998 at 96 px)
    assert scores["kept_object"] >= 0.95 and scores["kept_robot"] >= 0.9, scores


@pytest.fixture(scope="module")
def door(tmp_path_factory):
    """Four door-open episodes with truth at the policy benchmark's 64 px: a dark cabinet stands on the
    table, reaching the image's top edge in topview and its right edge in corner4, and no coloured
    object marks the wood. Seeds 1120-1123, not tuned on (820-839 were)."""
    pytest.importorskip("metaworld")
    from augment.source import LeRobotSource

    script = load_script("scripts/make_sim_dataset.py")
    out = tmp_path_factory.mktemp("door") / "ds"
    script.build_dataset(out, sim="metaworld", task="door-open-v3", episodes=4, size=64,
                         cameras="corner4,topview", seed=1120, max_steps=60, masks=True, log=lambda *_: None)
    source = LeRobotSource(out)
    return [(source.read_episode(i), script.load_masks(out, i)) for i in range(4)]


@pytest.mark.parametrize("camera", ["corner4", "topview"])
def test_dark_cabinet_and_unmarked_table_are_kept(door, bench, camera):
    """Before: the cabinet at the top edge was backdrop grown from there (topview, seeds 1120, 1122,
    1123: objects kept 13-27%, IoU 0.83-0.87), and in corner4 the wood went to the wall and the
    cabinet with it (seed 1121: table kept 2%, objects 7%, IoU 0.31)."""
    from editors.workspace import workspace_masks

    key = f"observation.images.{camera}"
    for episode, truth in door:
        scores = bench.score(workspace_masks(episode.frames[key]).keep, truth[key])
        print(camera, scores)
        assert scores["kept_object"] >= 0.95 and scores["object_min_frame"] >= 0.9, scores
        assert scores["kept_table"] >= 0.95 and scores["kept_robot"] >= 0.97, scores
        if camera == "topview":  # now 0.977-0.981, 0.64-0.94 px
            assert scores["iou_min"] >= 0.95 and scores["boundary_mean"] <= 1.0, scores
        else:  # corner4 keeps some wall seen through the arm at 64 px (README): 0.912-0.944, 0.67-2.1 px
            assert scores["iou_min"] >= 0.9 and scores["boundary_mean"] <= 2.5, scores
            assert scores["kept_background"] <= 0.15, scores


def test_grey_faucet_on_the_table_is_kept(bench, tmp_path):
    """faucet-open's grey knob, seen from above at 64 px: an island of floor-grey in the wood, where
    no growth reaches it; before, it settled to the floor two steps away (seed 1150, not tuned on:
    objects kept 38%, none in the worst frame)."""
    pytest.importorskip("metaworld")
    from augment.source import LeRobotSource
    from editors.workspace import workspace_masks

    script = load_script("scripts/make_sim_dataset.py")
    out = tmp_path / "faucet"
    script.build_dataset(out, sim="metaworld", task="faucet-open-v3", episodes=1, size=64, cameras="topview",
                         seed=1150, max_steps=60, masks=True, log=lambda *_: None)
    key = "observation.images.topview"
    video, labels = LeRobotSource(out).read_episode(0).frames[key], script.load_masks(out, 0)[key]
    scores = bench.score(workspace_masks(video).keep, labels)
    assert scores["kept_object"] >= 0.95 and scores["object_min_frame"] >= 0.9, scores  # now 1.00, 1.00
    assert scores["iou_min"] >= 0.95 and scores["boundary_mean"] <= 1.25, scores  # now 0.968, 0.93 px
