"""The background edit against the simulator's own ground truth: MetaWorld episodes recorded with
per-pixel classes (make_sim_dataset.py --masks), on seeds the segmenter was not tuned on (0-5)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from augment.episode import Episode
from conftest import load_script

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("MUJOCO_GL", "egl")

pytest.importorskip("lerobot")

ROOT = Path(__file__).resolve().parents[1]
KEY = "observation.images.corner2"  # the demo's camera; corner4 looks at the table from closer
CAMERAS = [KEY, "observation.images.corner4"]


def record_truth(out: Path, **settings) -> list[tuple]:
    """(episode, truth per camera) for each episode recorded with the simulator's own segmentation
    (make_sim_dataset.py --masks), decoded as the pipeline reads them."""
    from augment.source import LeRobotSource

    script = load_script("scripts/make_sim_dataset.py")
    script.build_dataset(out, masks=True, log=lambda *_: None, **settings)
    source = LeRobotSource(out)
    return [(source.read_episode(i), script.load_masks(out, i)) for i in range(settings["episodes"])]


def changed_alone(bench, spec, episode, truth: dict, key: str) -> dict:
    """bench_edits' changed_by_edit of one edit alone (`spec`: its spec class, defaults, one variant) on
    one recorded episode's camera `key`."""
    stage = spec(cameras=[key]).build()
    stage.setup()
    [edited] = stage([episode])
    return bench.changed_by_edit(episode.frames[key], edited.frames[key], truth[key])


def old_wood(source: np.ndarray, new: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """bool (t, H, W): the table's inside (truth `labels`, eroded by 1 px) that an edit left as it was, of the
    wood's own hue (Lab a-b angle within 10 degrees of the inside's median, chroma 8 or more): the old wood
    showing through a new texture."""
    inner = np.stack([cv2.erode((t == 1).astype(np.uint8), np.ones((3, 3), np.uint8)) for t in labels]) > 0
    lab = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2LAB) for f in source]).astype(np.float32) - 128
    wood = np.median(lab[inner][:, 1:], axis=0)
    angle = np.degrees(np.arctan2(lab[..., 2], lab[..., 1]) - np.arctan2(wood[1], wood[0]))
    hued = (np.abs((angle + 180) % 360 - 180) < 10) & (np.hypot(lab[..., 1], lab[..., 2]) >= 8)
    return inner & (source == new).all(axis=-1) & hued


def surface_alone(bench, out: Path, task: str, camera: str, size: int = 64, **settings) -> dict:
    """bench_edits' changed_by_edit of `surface` alone on one MetaWorld episode (64 px unless `size`) from `camera`."""
    pytest.importorskip("metaworld")
    from editors.specs import SurfaceSpec

    [(episode, truth)] = record_truth(out, sim="metaworld", task=task, episodes=1, size=size, cameras=camera,
                                      **settings)
    return changed_alone(bench, SurfaceSpec, episode, truth, f"observation.images.{camera}")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Two pick-place episodes at the demo's size from two cameras, decoded as the pipeline reads them."""
    pytest.importorskip("metaworld")
    return record_truth(tmp_path_factory.mktemp("gt") / "ds", sim="metaworld", task="pick-place-v3", episodes=2,
                        size=128, cameras="corner2,corner4", seed=100, max_steps=70)


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
        # robot and objects: their inside as recorded; their outline (a blend with the old table) unmixed
        assert changed["changed_robot_inner"] <= 0.005 and changed.get("changed_object_inner", 0) <= 0.01, changed
        assert changed["changed_robot"] <= 0.03 and changed["changed_object"] <= 0.25, changed  # the puck: ~8 px, all outline
        assert changed["changed_background"] <= 0.03 and changed["changed_background_inner"] <= 0.002, changed


def test_surface_edit_repaints_pushts_canvas_around_its_pale_objects(bench, pusht):
    """pusht's canvas is the surface its block slides on (its objects are pale, so no coloured object
    marks it): `surface` re-textures it in every frame and keeps the agent, the block and the goal T,
    also where the block rests or has just left, with no rim of the old white canvas around them.
    (Before, it found no surface on pusht and changed nothing; found, the growth of the uncovered
    canvas ran into the grey block through its blended rim and painted it.)"""
    from augment.episode import Episode
    from editors.compose import dilate
    from editors.specs import SurfaceSpec

    video, labels = pusht
    key = "observation.images.top"
    episode = Episode(frames={key: video}, task="push the T", fps=10, uid="pusht-0")
    stage = SurfaceSpec(cameras=[key]).build()
    stage.setup()
    [out] = stage([episode])
    assert "dropped" not in out.provenance and out.provenance["stages"][-1]["surface_fraction"][key] > 0.9
    edited = out.frames[key]
    changed = bench.changed_by_edit(video, edited, labels)
    assert changed["changed_table_inner"] >= 0.9, changed
    assert changed["changed_robot_inner"] <= 0.03 and changed["changed_object_inner"] <= 0.02, changed
    moved = (edited != video).any(axis=-1)
    for t in range(len(video)):  # in every frame: the canvas repainted, each object's inside as recorded
        inner = [cv2.erode((labels[t] == c).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) for c in (1, 3)]
        assert moved[t][inner[0]].mean() >= 0.85 and moved[t][inner[1]].mean() <= 0.05, t
    # no halo: near the objects and the agent, hardly a pixel is still the old canvas's white
    near = np.stack([dilate(lab >= 2, 2) & (lab == 1) for lab in labels])
    assert (edited[near] > 235).all(axis=-1).mean() <= 0.02



def test_background_then_surface_gives_the_table_its_own_texture(recorded, bench):
    """Chained as a pipeline chains them, one variant each: the table gets a texture of its own, not the
    new backdrop's (both stages drew the same procedural seed before, so the table took the backdrop's
    colours and vanished into it), and it is still re-textured where the truth says table."""
    from editors.specs import BackgroundSpec, SurfaceSpec

    episode, truth = recorded[0]
    stages = [BackgroundSpec(cameras=[KEY]).build(), SurfaceSpec(cameras=[KEY]).build()]
    for stage in stages:
        stage.setup()
    [backdropped] = stages[0]([episode])
    [both] = stages[1]([backdropped])
    backdrop, texture = (r[k][KEY] for r, k in zip(both.provenance["stages"][-2:], ("background", "texture")))
    assert backdrop != texture, (backdrop, texture)
    labels = truth[KEY]
    changed = bench.changed_by_edit(backdropped.frames[KEY], both.frames[KEY], labels)
    assert changed["changed_table_inner"] >= 0.9 and changed["changed_robot_inner"] <= 0.005, changed
    table, wall = both.frames[KEY][labels == 1].mean(axis=0), both.frames[KEY][labels == 0].mean(axis=0)
    assert np.abs(table - wall).max() > 10, (table, wall)


def test_surface_after_background_takes_the_table_found_on_the_source(recorded, bench):
    """`surface` chained after `background` re-textures the table background found on the source's own
    frames (Episode.surfaces), not what a re-cut of background's output takes for one: with backdrop
    seed 4 on pick-place seed 100 (corner2) the re-cut grew the table into the new gradient backdrop and
    repainted 41% of it. It paints what `surface` alone paints on the source; robot and objects kept."""
    from editors.specs import BackgroundSpec, SurfaceSpec
    from editors.workspace import workspace_masks

    episode, truth = recorded[0]
    stages = [BackgroundSpec(cameras=[KEY], seed=4).build(), SurfaceSpec(cameras=[KEY]).build()]
    for stage in stages:
        stage.setup()
    [backdropped] = stages[0]([episode])
    assert np.array_equal(backdropped.surfaces[KEY], workspace_masks(episode.frames[KEY]).surface)
    assert Episode.from_bytes(backdropped.to_bytes()).surfaces[KEY].sum() == backdropped.surfaces[KEY].sum() > 0
    [both] = stages[1]([backdropped])
    changed = bench.changed_by_edit(backdropped.frames[KEY], both.frames[KEY], truth[KEY])
    assert changed["changed_background_inner"] <= 0.005, changed  # main: 0.408
    assert changed["changed_table_inner"] >= 0.95, changed
    assert changed["changed_robot_inner"] <= 0.005 and changed.get("changed_object_inner", 0.0) <= 0.05, changed
    # where the source's survey found no table (no coloured object marks it), it is looked for on the
    # video edited here, as without the hand-over, not dropped (bench_policy's button-press-topdown at 64 px)
    [blank] = stages[1]([backdropped.replace(surfaces={KEY: np.zeros_like(backdropped.surfaces[KEY])})])
    [recut] = stages[1]([backdropped.replace(surfaces={})])
    assert "dropped" not in blank.provenance and np.array_equal(blank.frames[KEY], recut.frames[KEY])


def test_table_does_not_cross_a_blended_outline():
    """The region graph of pick-place seed 100's plate after `background` (corner2, 128 px; means in Lab):
    the table's grey rim (L 89) meets the robot's dark pedestal (L 52) through a 22 px region, L 65, the
    blend of the two at their outline. Each step is under the table's 25 Lab, the rim and the pedestal
    are 37 apart: grown step by step the table took the pedestal, and `surface` repainted 70% of the robot.
    A blend of two sides that far apart is the edge between them: the table takes it, not what lies beyond."""
    from types import SimpleNamespace

    from editors.workspace import _table

    # 0 the puck, 1 the wood, 2 the rim, 3 the blend, 4 the pedestal, 5 a red part of the robot on it
    mean = np.array([[60, 180, 160], [101, 132, 134], [89, 131, 132], [65, 131, 133], [52, 132, 132], [70, 170, 150]],
                    np.float64)
    area = np.array([10, 2000, 300, 22, 1300, 10])
    neighbours = [[1], [0, 2], [1, 3], [2, 4], [3, 5], [4]]
    coloured = np.array([True, False, False, False, False, True])
    g = SimpleNamespace(mean=mean, area=area, neighbours=neighbours, coloured=coloured, small=coloured,
                        carriers=np.zeros(6, bool), regions=np.zeros((128, 128), np.int32), in_hull=np.ones(6),
                        busy=np.zeros(6), tint=np.zeros(6), pale=np.zeros(6, bool), blob=np.arange(6))
    side = np.ones(6, np.int8)
    table, cut_off = _table(g, side, 25.0)
    assert list(np.nonzero(table)[0]) == [1, 2, 3] and not cut_off.any()
    # a blend of two sides within the table's contrast of each other (a darker face of the same table) is crossed
    mean[3:5, 0] = 79, 70
    assert list(np.nonzero(_table(g, side, 25.0)[0])[0]) == [1, 2, 3, 4]


def test_surface_keeps_the_robots_pedestal_seen_from_above(bench, tmp_path):
    """pick-place seed 100, topview at 64 px: the robot's grey pedestal below the table's grey front rim,
    one region of the plate with it (no edge between them at this size), was found as table, and
    `surface` repainted 25% of the robot's inside in every frame (issue 12; 14-25% on the held-out
    topview sets). It sticks out of the table's convex body next to the robot: now left out, the robot
    kept but for its outline (inside changed 0.5%)."""
    changed = surface_alone(bench, tmp_path / "topview", task="pick-place-v3", camera="topview", seed=100,
                            max_steps=60)
    assert changed["changed_table_inner"] >= 0.95, changed  # now 1.00
    assert changed["changed_robot_inner"] <= 0.02, changed  # was 0.25, now 0.005
    assert changed["changed_robot"] <= 0.15, changed  # was 0.31, now 0.09: the outline, unmixed, at 64 px
    assert changed["changed_background_inner"] <= 0.002, changed


@pytest.fixture(scope="module")
def pusht(tmp_path_factory):
    """One pusht episode with truth (the env's own shapes at the frame's size), 96 px like the IDM's."""
    pytest.importorskip("gym_pusht")
    [(episode, truth)] = record_truth(tmp_path_factory.mktemp("pusht") / "ds", sim="pusht", episodes=1, size=96,
                                      seed=301, max_steps=40)
    key = "observation.images.top"
    return episode.frames[key], truth[key]


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


def test_edited_copies_keep_pushts_objects_and_vary_its_canvas(bench, pusht):
    """The copies the IDM and the fine-tune train on (procedural_variants) keep pusht's objects in every
    frame - the goal T, which never moves, the block, also while it rests, and the agent - and, as pusht
    has no backdrop, give its canvas a new texture per seed (the `surface` recipe). (The motion masks
    used before replaced the canvas and erased the goal T; then the copies equalled the source.)"""
    from editors.background import procedural_variants

    video, labels = pusht
    copies = procedural_variants(video, [1, 2])
    assert not np.array_equal(copies[0], copies[1])
    for copy in copies:
        changed = (copy != video).any(axis=-1)
        inner = {c: np.stack([cv2.erode((lab == c).astype(np.uint8), np.ones((3, 3), np.uint8)) for lab in labels]) > 0
                 for c in (1, 2, 3)}  # table, robot (the agent: ~7 px inside), objects
        assert all(changed[t][inner[1][t]].mean() >= 0.85 for t in range(len(video)))
        assert max(int(changed[t][inner[2][t]].sum()) for t in range(len(video))) <= 1
        assert max(changed[t][inner[3][t]].mean() for t in range(len(video))) <= 0.05
        scores = bench.changed_by_edit(video, copy, labels)
        assert scores["changed_table_inner"] >= 0.9 and scores["changed_robot_inner"] <= 0.03, scores


def test_a_copy_the_edit_left_as_recorded_is_not_computed_again(pusht, recorded):
    """A copy in which no camera was edited is the source: the IDM's loader hands the episode's own
    stack (RGB + optical flow) again instead of computing it once more; an edited copy (pusht's canvas,
    MetaWorld's backdrop) is stacked anew, and the fine-tune adds its clips."""
    from generators.finetune_clips import background_edits
    from labelers.data import edited_copies, stack_cameras

    for frames, key in (({"top": pusht[0]}, "top"), (recorded[0][0].frames, KEY)):
        plain = stack_cameras(frames, [key], 32, motion="flow")
        copies = edited_copies(frames, [key], 32, 2, 0, "ep", motion="flow", plain=plain)
        assert all(c is not plain and c.shape == plain.shape for c in copies)
        assert not np.array_equal(copies[0], plain)
        unedited = edited_copies(frames, [key], 32, 2, 0, "ep", edit_cameras=[], motion="flow", plain=plain)
        assert all(c is plain for c in unedited)
        assert len(background_edits(frames[key], 2, 0, "ep")) == 2


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
    [(episode, truth)] = record_truth(tmp_path_factory.mktemp("drawer") / "ds", sim="metaworld",
                                      task="drawer-close-v3", episodes=1, size=request.param,
                                      cameras="corner2,topview", seed=120, max_steps=60)
    return request.param, episode, truth


@pytest.mark.parametrize("camera", ["corner2", "topview"])
def test_pale_drawer_is_kept_in_every_frame(drawer, bench, camera):
    from editors.workspace import workspace_masks

    size, episode, truth = drawer
    key = f"observation.images.{camera}"
    scores = bench.score(workspace_masks(episode.frames[key]).keep, truth[key])
    print(size, camera, scores)
    # the drawer (object pixels) in every frame, frame 0 included; before, at 64 px, 5-10% of it
    assert scores["object_min_frame"] >= 0.85 and scores["kept_object"] >= 0.95, scores
    # (64 px corner2: robot 0.969, all of it on the truth's outline, where 1 px strips now join the
    # region they look like; the table rose 0.966 -> 0.976 and the worst frame's IoU 0.938 -> 0.950)
    assert scores["kept_robot"] >= (0.97 if size >= 128 else 0.965) and scores["kept_table"] >= 0.95, scores
    assert scores["kept_background"] <= 0.05, scores
    assert scores["iou_min"] >= (0.95 if size >= 128 else 0.94), scores  # 64 px: 1 px is 1.6% of the frame
    assert scores["boundary_mean"] <= 2.0, scores


@pytest.mark.slow  # gym-aloha renders its own 640x480 observation every step: ~1-3 s a step on a busy CPU
def test_aloha_truth_and_keep_mask(bench, tmp_path):
    """gym-aloha's two ViperX arms over a grey table on black, with MuJoCo's segmentation mapped by the
    body tree (arms = robot, `table`, peg and socket = objects, the world body = background)."""
    pytest.importorskip("gym_aloha")
    from editors.workspace import workspace_masks

    [(episode, truth)] = record_truth(tmp_path / "aloha", sim="aloha", task="insertion", episodes=1, size=64,
                                      seed=5, max_steps=30)
    key = "observation.images.top"
    video, labels = episode.frames[key], truth[key]
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
    return record_truth(tmp_path_factory.mktemp("door") / "ds", sim="metaworld", task="door-open-v3", episodes=4,
                        size=64, cameras="corner4,topview", seed=1120, max_steps=60)


@pytest.mark.parametrize("camera", ["corner4", "topview"])
def test_dark_cabinet_and_unmarked_table_are_kept(door, bench, camera):
    """Before: the cabinet at the top edge was backdrop grown from there (topview, seeds 1120, 1122,
    1123: objects kept 13-27%, IoU 0.83-0.87), and in corner4 the wood went to the wall and the
    cabinet with it (seed 1121: table kept 2%, objects 7%, IoU 0.31)."""
    from editors.workspace import workspace_masks

    key = f"observation.images.{camera}"
    for episode, truth in door:
        scores = bench.score(workspace_masks(episode.frames[key]).keep, truth[key])
        assert scores["kept_object"] >= 0.95 and scores["object_min_frame"] >= 0.9, scores
        assert scores["kept_table"] >= 0.95 and scores["kept_robot"] >= 0.97, scores
        if camera == "topview":  # now 0.977-0.981, 0.64-0.94 px
            assert scores["iou_min"] >= 0.95 and scores["boundary_mean"] <= 1.0, scores
        else:  # corner4 keeps some wall seen through the arm at 64 px (README): 0.912-0.944, 0.67-2.1 px
            assert scores["iou_min"] >= 0.9 and scores["boundary_mean"] <= 2.5, scores
            assert scores["kept_background"] <= 0.15, scores


def test_drawer_table_and_the_floor_behind_it_at_64px(bench, tmp_path):
    """drawer-close at 64 px, seeds 1710-1711 (recorded fresh, measured once before this test): in
    corner2 the wood touches only the pale drawer and the arm's blur, and it went to the wall with the
    table's legs (seed 1710: table kept 2%, IoU 0.42); in corner4 the gripper's blob in the plate took
    the white floor behind the table as the surface it rests on (backdrop kept 13%, IoU 0.92)."""
    pytest.importorskip("metaworld")
    from editors.workspace import workspace_masks

    recorded = record_truth(tmp_path / "drawer", sim="metaworld", task="drawer-close-v3", episodes=2, size=64,
                            cameras="corner2,corner4", seed=1710, max_steps=100)
    for episode, truth in recorded:
        for camera in ("corner2", "corner4"):
            key = f"observation.images.{camera}"
            scores = bench.score(workspace_masks(episode.frames[key]).keep, truth[key])
            assert scores["kept_table"] >= 0.95 and scores["kept_robot"] >= 0.96, (camera, scores)
            assert scores["kept_object"] >= 0.95, (camera, scores)
            if camera == "corner2":  # now 0.947-0.951: what is left is the outline's blends (README)
                assert scores["iou_min"] >= 0.93 and scores["boundary_mean"] <= 0.5, scores
            else:  # now 0.958-0.963, backdrop kept 4-6%
                assert scores["iou_min"] >= 0.95 and scores["kept_background"] <= 0.08, scores


def test_surface_retextures_the_table_not_the_pale_drawer(bench, tmp_path):
    """drawer-close, corner4 at 64 px, seed 2210: the table was grown from the regions round the
    drawer's handle, the pale-green drawer among them, and the wood never joined it: `surface` repainted
    73% of the drawer and none of the table. A pale region seeds no table now, and the wood is found."""
    changed = surface_alone(bench, tmp_path / "drawer", task="drawer-close-v3", camera="corner4", seed=2210,
                            max_steps=100)
    assert changed["changed_table_inner"] >= 0.9, changed  # was 0.002
    assert changed["changed_object_inner"] <= 0.02 and changed["changed_robot_inner"] <= 0.01, changed  # was 0.73


def test_surface_leaves_the_things_on_the_table_and_paints_its_rim(bench, tmp_path):
    """At 64 px the growth of the table crossed into door-open's dark grey cabinet seen from above and
    into window-open's red-brown window frame seen from corner4 (a small coloured thing on them seeds the
    growth there, and they are within table_contrast of the wood), and `surface` repainted 85-100% of
    their inside (seeds 4440 and 4480): the task's object gone from the edited video. A region of another
    material inside a wooden table (untinted, or of another hue) is a thing on it now. The table's grey
    rim lies on its outline and is still the table's (window-open from corner2: leaving every grey region
    out left 11-21% of the table as it was there)."""
    door = surface_alone(bench, tmp_path / "door", task="door-open-v3", camera="topview", seed=4440, max_steps=60)
    assert door["changed_object_inner"] <= 0.1, door  # was 0.93, now 0.03
    assert door["changed_table_inner"] >= 0.9 and door["changed_robot_inner"] <= 0.02, door
    window = surface_alone(bench, tmp_path / "window", task="window-open-v3", camera="corner4", seed=4480, max_steps=60)
    assert window["changed_object_inner"] <= 0.1, window  # was 0.94; 0.28 with the grey things alone, now 0.004
    assert window["changed_table_inner"] >= 0.9, window
    rim = surface_alone(bench, tmp_path / "rim", task="window-open-v3", camera="corner2", seed=4450, max_steps=60)
    assert rim["changed_table_inner"] >= 0.95, rim  # 1.00 (0.89 with every grey region left out)


def test_surface_takes_the_table_on_both_sides_of_the_arm_seen_from_above(bench, tmp_path):
    """Seen from above, the arm in its usual pose (the plate's) lies across the table from its base to the
    button or the drawer at the far edge and cuts the wood in two; the table's growth took one side, and
    `surface` re-textured 43% of button-press-topdown's table (seed 3120, AV1) and 47% of drawer-close's
    (seed 3210, h264) at 64 px, the rest staying the old wood (14 of 32 top views at 480x640 too). The
    side the arm cuts off, grown from beside the arm, is the table's when it is of its material."""
    press = surface_alone(bench, tmp_path / "press", task="button-press-topdown-v3", camera="topview", seed=3120,
                          max_steps=100)
    assert press["changed_table_inner"] >= 0.95, press  # was 0.43, now 1.00
    assert press["changed_robot_inner"] <= 0.02 and press["changed_object_inner"] <= 0.05, press
    drawer = surface_alone(bench, tmp_path / "drawer", task="drawer-close-v3", camera="topview", seed=3210,
                           max_steps=100, codec="h264")
    assert drawer["changed_table_inner"] >= 0.95, drawer  # was 0.47, now 0.99
    assert drawer["changed_robot_inner"] <= 0.02 and drawer["changed_object_inner"] <= 0.05, drawer


def test_surface_takes_the_tables_far_strip_rim_and_legs_from_beside_the_arm(bench, tmp_path):
    """From corner2 at 256 px and more the arm's base stands at the table's rim: the rim, with the legs and a
    strip of wood behind the arm that the opened table body left out, was one part outside the body's hull
    touching the robot, and `_off_the_table` dropped it as if it were the pedestal (door-open seed 9800, not
    tuned on: 56% of the table re-textured, the far strip staying the old wood). The gaps between planks
    are closed before the hull is taken wherever they are resolved (the closing square 5 px or more)."""
    door = surface_alone(bench, tmp_path / "door", task="door-open-v3", camera="corner2", size=256, seed=9800,
                         max_steps=60)
    assert door["changed_table_inner"] >= 0.85, door  # was 0.56, now 0.88
    assert door["changed_robot_inner"] <= 0.01 and door["changed_object_inner"] <= 0.06, door  # 0 and 0.04, as before


def test_grey_faucet_on_the_table_is_kept(bench, tmp_path):
    """faucet-open's grey knob, seen from above at 64 px: an island of floor-grey in the wood, where
    no growth reaches it; before, it settled to the floor two steps away (seed 1150, not tuned on:
    objects kept 38%, none in the worst frame)."""
    pytest.importorskip("metaworld")
    from editors.workspace import workspace_masks

    [(episode, truth)] = record_truth(tmp_path / "faucet", sim="metaworld", task="faucet-open-v3", episodes=1,
                                      size=64, cameras="topview", seed=1150, max_steps=60)
    key = "observation.images.topview"
    video, labels = episode.frames[key], truth[key]
    scores = bench.score(workspace_masks(video).keep, labels)
    assert scores["kept_object"] >= 0.95 and scores["object_min_frame"] >= 0.9, scores  # now 1.00, 1.00
    assert scores["iou_min"] >= 0.95 and scores["boundary_mean"] <= 1.25, scores  # now 0.968, 0.93 px


def test_grey_rim_window_frame_and_floor_band_at_64px(bench, tmp_path):
    """Three cases of issue 12's sixth round at 64 px, each on the seed where it was found (the README's
    fresh set measures it elsewhere): faucet-open 1600, corner4: the table's grey rim, as grey as the
    wall, met the wall only across the red arm standing on it and settled there (table kept 91%, IoU
    0.901); window-open 1830, corner2: the window frame's dark bars, 2 px wide between the white floor
    and the wood, were handed to the floor (objects kept 77%, worst frame 64%); door-open 1021, corner4:
    the white floor band behind the table followed a 2 px blend of arm and floor into the workspace
    (backdrop kept 13.5%, IoU 0.909)."""
    pytest.importorskip("metaworld")
    from editors.workspace import workspace_masks

    def scores(task: str, seed: int, camera: str, episodes: int = 1) -> list[dict]:
        recorded = record_truth(tmp_path / task, sim="metaworld", task=task, episodes=episodes, size=64,
                                cameras=camera, seed=seed, max_steps=100)
        key = f"observation.images.{camera}"
        return [bench.score(workspace_masks(ep.frames[key]).keep, truth[key]) for ep, truth in recorded]

    [rim] = scores("faucet-open-v3", 1600, "corner4")
    assert rim["kept_table"] >= 0.97 and rim["iou_min"] >= 0.93, rim  # now 0.996, 0.939
    [window] = scores("window-open-v3", 1830, "corner2")
    assert window["kept_object"] >= 0.9 and window["object_min_frame"] >= 0.85, window  # now 0.945, 0.91
    _, band = scores("door-open-v3", 1020, "corner4", episodes=2)
    assert band["kept_background"] <= 0.08 and band["iou_min"] >= 0.93, band  # now 0.061, 0.939


def test_shelf_kept_in_every_frame_at_64px(bench, tmp_path):
    """shelf-place at 64 px, seeds 1940-1941 (fresh set 5, then tuned on: issue 12's seventh round). The
    shelf is orange-brown, coloured, and touches the red arm in the plate, so it counted as the arm:
    where a frame's shelf pixel came near a pink blend of arm and wall it was taken for the wall seen
    again and grown over (corner4: worst frame 87% of the shelf kept); in corner2 its lit top, 30 Lab
    lighter than its front and as far from the grey wall, settled to the wall (worst frame 85%)."""
    pytest.importorskip("metaworld")
    from editors.workspace import workspace_masks

    recorded = record_truth(tmp_path / "shelf", sim="metaworld", task="shelf-place-v3", episodes=2, size=64,
                            cameras="corner2,corner4", seed=1940, max_steps=100)
    for camera in ("corner2", "corner4"):
        key = f"observation.images.{camera}"
        for episode, truth in recorded:
            s = bench.score(workspace_masks(episode.frames[key]).keep, truth[key])
            # now >= 0.943 / 0.930 / 0.933 / <= 0.080; on main 0.882 / 0.845 (corner2, 1940), 0.932 / 0.873 (corner4, 1941)
            assert s["kept_object"] >= 0.94 and s["object_min_frame"] >= 0.92, (camera, s)
            assert s["iou_min"] >= 0.93 and s["kept_background"] <= 0.09, (camera, s)


def test_truth_coverage_tells_blends_from_pure_errors():
    """benchmarks/truth_coverage.measure on a finer truth made by hand (4x4 samples per pixel): a pixel the
    workspace covers half of is a blend, one it covers wholly or not at all is a pure error."""
    coverage = load_script("benchmarks/truth_coverage.py")
    fine = np.zeros((1, 16, 16), np.uint8)
    fine[0, 0:8, 0:6] = 1  # pixel column 0 covered wholly, column 1 half (rows 0-1); the rest backdrop
    labels = fine[:, 2::4, 2::4].copy()  # one sample per pixel, as the recorded truth: column 1 backdrop
    assert labels[0, :2, :2].tolist() == [[1, 0], [1, 0]]
    keep = labels.astype(bool).copy()
    keep[0, 0, 1] = True  # a blend kept: covered half, the truth says backdrop
    keep[0, 3, 3] = True  # a pure error: backdrop wholly
    m = coverage.measure(keep, labels, fine)
    assert m["error_px"] == 2 and m["pure"] == 0.5 and m["ambiguous"] == 0.5, m
    assert m["fix_pure"] == pytest.approx(2 / 3) and m["fix_pure_near"] == pytest.approx(2 / 3), m
    # coverage ½ counts as kept (column 1, rows 0-1, against the truth); sampled half a pixel apart the
    # truth gains that column: IoU ½
    assert m["agree"] == 1.0 - 2 / 16 and m["half_px"] == 0.5 and m["iou_min"] == 0.5, m


def test_door_cabinet_kept_when_the_far_rim_looks_like_the_wall(bench, tmp_path):
    """door-open at 64 px, seed 2121, corner4 (issue 12's ninth round; seen on the eighth round's fresh
    seeds): the white floor band behind the table, 1-2 px wide, joined the table's grey rim in one plate
    region whose mean (L 130) is 5 Lab from the wall; the wall grew through it to the near rim, the
    robot's dark column then passed for the floor, and the cabinet went with it (objects kept 11%, robot
    70%, IoU 0.61). Seed 2120 is the same scene, where the band stayed on its own."""
    pytest.importorskip("metaworld")
    from editors.workspace import workspace_masks

    recorded = record_truth(tmp_path / "door", sim="metaworld", task="door-open-v3", episodes=2, size=64,
                            cameras="corner4", seed=2120, max_steps=100)
    key = "observation.images.corner4"
    for episode, truth in recorded:
        s = bench.score(workspace_masks(episode.frames[key]).keep, truth[key])
        # now 0.948 / 0.915, objects 0.997 / 0.972, robot 0.990 / 0.987; before 2121: 0.610, 0.114, 0.702
        assert s["iou_min"] >= 0.9 and s["kept_object"] >= 0.95 and s["object_min_frame"] >= 0.9, s
        assert s["kept_robot"] >= 0.97 and s["kept_table"] >= 0.89 and s["kept_background"] <= 0.06, s


def test_a_speck_at_the_arms_base_does_not_make_the_pedestal_the_table(bench, tmp_path):
    """handle-press, corner2 at 64 px, as bench_policy.py records its demos (episode 0): the dark handle
    marks nothing, and a static 1 px red speck at the arm's base, off its reach, seeded the survey's
    table: it found the dark pedestal (340 px, 332 of them the robot's), `background` handed it on and
    `surface` repainted 69% of the robot's inside in each of the benchmark's three variants (such
    specks gave 10 of the benchmark's 40 top-down demos and 5 of its 40 handle-press demos a "table" of
    0.2-9% of the frame, against the table's 19-22%). The table
    now has to reach into the hull of all motion (the arm works over it; the pedestal lies wholly outside
    it). The wood, marked by no small coloured thing, is now grown from the large tinted region the
    workspace took for the table: `surface` alone re-textures 0.97 of it (before, the survey found none
    and it dropped the episode), and after each `background` variant too (robot 0)."""
    pytest.importorskip("metaworld")
    from augment.stage import is_dropped
    from editors.specs import BackgroundSpec, SurfaceSpec
    from editors.workspace import workspace_masks

    [(episode, truth)] = record_truth(tmp_path / "handle", sim="metaworld", task="handle-press-v3", episodes=1,
                                      size=64, cameras="corner2", seed=0, seeded_configs=True, antialias=False,
                                      max_steps=200)
    pedestal = (truth[KEY] == 2).all(axis=0)
    found = workspace_masks(episode.frames[KEY]).surface
    assert (found & pedestal).sum() <= 0.02 * found.sum(), "the survey's table holds the robot"  # was 332 of 340 px
    background = BackgroundSpec(cameras=[KEY], variants=3).build()
    surface = SurfaceSpec(cameras=[KEY]).build()
    background.setup()
    surface.setup()
    variants = background([episode])
    assert len(variants) == 3
    for i, edited in enumerate([episode, *variants]):  # `surface` alone, and after each `background` variant
        [out] = surface([edited])
        changed = bench.changed_by_edit(edited.frames[KEY], out.frames[KEY], truth[KEY])
        assert changed["changed_robot_inner"] <= 0.02, changed  # was 0.687 in all four
        assert not is_dropped(out) and changed["changed_table_inner"] >= 0.9, (i, changed)  # alone: was dropped


def test_h264_flicker_does_not_make_the_floor_a_place_the_arm_works(bench, tmp_path):
    """door-open, topview at 64 px, recorded with h264 (seed 7120; lerobot's crf 30, a keyframe every 2
    frames): the encoder flickers along the dark pedestal's and the table's edges a few frames at a
    time, far from the arm. Counted as motion, that flicker put the floor at the image's bottom corners
    inside the hull of all motion, so the survey never took it for floor: the workspace kept 75% of the
    backdrop and `background` changed 20% of it. Where the robot works is now the large patches of
    motion of each frame and what lies next to them (workspace.worked)."""
    pytest.importorskip("metaworld")
    from editors.specs import BackgroundSpec
    from editors.workspace import workspace_masks

    [(episode, truth)] = record_truth(tmp_path / "door", sim="metaworld", task="door-open-v3", episodes=1, size=64,
                                      cameras="topview", seed=7120, max_steps=100, codec="h264")
    key = "observation.images.topview"
    s = bench.score(workspace_masks(episode.frames[key]).keep, truth[key])
    # now 0.030, 0.972; robot 0.999, table 0.984, objects 1.0 (before: 0.748, 0.863)
    assert s["kept_background"] <= 0.06 and s["iou_min"] >= 0.95, s
    assert s["kept_robot"] >= 0.99 and s["kept_table"] >= 0.97 and s["kept_object"] >= 0.99, s
    changed = changed_alone(bench, BackgroundSpec, episode, truth, key)
    assert changed["changed_background_inner"] >= 0.95, changed  # now 0.991, before 0.196
    assert max(changed[f"changed_{c}_inner"] for c in ("table", "robot", "object")) <= 0.01, changed


def test_wood_paled_by_h264_is_still_the_table(bench, tmp_path):
    """door-open, corner2 at 64 px, recorded with h264 (seed 7122): h264's coarse chroma pales the wood
    to Lab chroma 9.7 (10-15 on AV1 frames), under the limit it then had to pass (10) to be a tinted
    region: the wood went to the wall, the dark cabinet on it too (IoU 0.36, table kept 3.5%, objects
    10%), and `surface` found no table. The limit is now 8 (a grey floor or wall is 2-5)."""
    pytest.importorskip("metaworld")
    from editors.specs import SurfaceSpec
    from editors.workspace import workspace_masks

    [(episode, truth)] = record_truth(tmp_path / "door", sim="metaworld", task="door-open-v3", episodes=1, size=64,
                                      cameras="corner2", seed=7122, max_steps=100, codec="h264")
    s = bench.score(workspace_masks(episode.frames[KEY]).keep, truth[KEY])
    # now 0.910, table 0.980, objects 0.994, robot 0.979 (before: 0.363, 0.035, 0.103, 0.954)
    assert s["iou_min"] >= 0.88 and s["kept_table"] >= 0.95 and s["kept_object"] >= 0.95, s
    assert s["kept_robot"] >= 0.96 and s["kept_background"] <= 0.05, s
    changed = changed_alone(bench, SurfaceSpec, episode, truth, KEY)
    assert changed["changed_table_inner"] >= 0.9, changed  # now 0.995; before, no table: the episode was dropped
    # now 0.002 and 0.012 (a rim pixel or two where the arm's base meets the table)
    assert changed["changed_object_inner"] <= 0.05 and changed["changed_robot_inner"] <= 0.02, changed


def test_a_drawer_paled_by_h264_is_still_a_thing_on_the_table(bench, tmp_path):
    """drawer-close, corner2 at 64 px, h264 (seed 3210, its second episode: h264 is one file for all
    episodes, and that episode recorded alone is encoded otherwise): the codec pales the green drawer to Lab
    chroma 24 (33-40 on AV1 frames), under a pale thing's 25, and it went to the grey floor of its lightness
    two steps away (objects kept 0.079; `background` repainted 95% of it). At twice the wood's chroma it is
    a thing on the table."""
    pytest.importorskip("metaworld")
    from editors.specs import BackgroundSpec
    from editors.workspace import workspace_masks

    _, (episode, truth) = record_truth(tmp_path / "drawer", sim="metaworld", task="drawer-close-v3", episodes=2,
                                       size=64, cameras="corner2", seed=3210, max_steps=100, codec="h264")
    s = bench.score(workspace_masks(episode.frames[KEY]).keep, truth[KEY])
    # now 0.919, objects 0.939 (worst frame 0.911), table 0.979, backdrop kept 0.026
    assert s["kept_object"] >= 0.9 and s["object_min_frame"] >= 0.85 and s["kept_background"] <= 0.04, s
    assert s["iou_min"] >= 0.9 and s["kept_table"] >= 0.95, s
    changed = changed_alone(bench, BackgroundSpec, episode, truth, KEY)
    assert changed["changed_object_inner"] <= 0.02, changed  # now 0.000
    assert changed["changed_background_inner"] >= 0.95, changed  # 0.997


def test_the_wall_an_arm_moves_in_front_of_is_no_surface_things_slide_on(bench, tmp_path):
    """door-open, corner4 at 64 px, h264 (seed 7212, the third episode of a recording from 7210: h264 is
    written one file for all episodes, so the same episode recorded alone is encoded otherwise, and there
    the survey passed): the arm moves only in front of the wall there, so
    the wall's region encloses all its motion, the way pusht's canvas encloses the block's: it was taken
    for a surface things slide on, and the whole backdrop was kept (IoU 0.66; `background` changed none
    of it). The region holding the image's top corners is that only if it also reaches the bottom edge."""
    pytest.importorskip("metaworld")
    from editors.specs import BackgroundSpec
    from editors.workspace import workspace_masks

    *_, (episode, truth) = record_truth(tmp_path / "door", sim="metaworld", task="door-open-v3", episodes=3, size=64,
                                        cameras="corner4", seed=7210, max_steps=100, codec="h264")
    key = "observation.images.corner4"
    s = bench.score(workspace_masks(episode.frames[key]).keep, truth[key])
    # now 0.914, backdrop kept 0.134 (the white floor band behind the table), table 0.996, robot 0.989
    assert s["iou_min"] >= 0.88 and s["kept_background"] <= 0.2, s  # before: 0.659, 1.0
    assert s["kept_table"] >= 0.97 and s["kept_robot"] >= 0.97 and s["kept_object"] >= 0.95, s
    changed = changed_alone(bench, BackgroundSpec, episode, truth, key)
    assert changed["changed_background_inner"] >= 0.9, changed  # now 0.94, before 0.0
    assert max(changed[f"changed_{c}_inner"] for c in ("table", "robot", "object")) <= 0.01, changed


def test_floor_band_behind_the_table_does_not_join_the_button(bench, tmp_path):
    """button-press-topdown, corner4 at 64 px (seeds 3120-3122, recorded together: one video file holds
    them, and each recorded alone is encoded otherwise): the white floor band behind the table is in
    the arm's hull, so it is not looked for as floor, and left to the nearest colour it joined the yellow
    button (77 Lab) before the grey wall (85): backdrop kept 25%. A coloured thing no longer decides, by
    its colour, for a large region 60 Lab or more from it."""
    pytest.importorskip("metaworld")
    from editors.workspace import workspace_masks

    recorded = record_truth(tmp_path / "button", sim="metaworld", task="button-press-topdown-v3", episodes=3,
                            size=64, cameras="corner4", seed=3120, max_steps=100)
    key = "observation.images.corner4"
    for episode, truth in recorded:
        s = bench.score(workspace_masks(episode.frames[key]).keep, truth[key])
        # now 0.959-0.964, backdrop kept 0.037-0.047 (before: 0.867 and 0.871 in episodes 0 and 2, 0.25)
        assert s["iou_min"] >= 0.93 and s["kept_background"] <= 0.1, s
        assert s["kept_table"] >= 0.97 and s["kept_robot"] >= 0.96 and s["kept_object"] >= 0.97, s


def test_what_shows_under_a_buttons_cap_is_not_the_surface_it_rests_on(bench, tmp_path):
    """button-press-topdown, corner4 at 256 px (seed 8031): the white floor band behind the table shows in
    the gap between the button's red cap and its yellow top, so the survey took it for the surface the
    cap rests on: the band was kept as workspace (backdrop kept 25%, IoU 0.874) and `background` left it.
    A thing's surface also continues below it; the band stops at the yellow top a pixel lower."""
    pytest.importorskip("metaworld")
    from editors.specs import BackgroundSpec
    from editors.workspace import workspace_masks

    [(episode, truth)] = record_truth(tmp_path / "button", sim="metaworld", task="button-press-topdown-v3", episodes=1,
                                      size=256, cameras="corner4", seed=8031, max_steps=60)
    key = "observation.images.corner4"
    s = bench.score(workspace_masks(episode.frames[key]).keep, truth[key])
    # now 0.984, backdrop kept 0.016 (before: 0.874, 0.255)
    assert s["iou_min"] >= 0.97 and s["kept_background"] <= 0.05, s
    assert s["kept_table"] >= 0.99 and s["kept_robot"] >= 0.99 and s["kept_object"] >= 0.99, s
    changed = changed_alone(bench, BackgroundSpec, episode, truth, key)
    assert changed["changed_background_inner"] >= 0.95, changed
    assert max(changed[f"changed_{c}_inner"] for c in ("table", "robot", "object")) <= 0.01, changed


def test_the_wood_the_arm_blurs_over_is_still_the_table(bench, tmp_path):
    """door-open, corner2 at 64 px (seed 3020, AV1): the arm reaches over the table's near wood to the door,
    so in the plate that wood is a blur of arm and wood, moving in 38% of the frames; the rest of the wood
    lies outside the arm's hull and touches nothing coloured. Nothing marked the table: it went to the
    floor, the cabinet with it (IoU 0.376, table kept 2.7%, objects 8.9%; `background` repainted 99% of
    the table). A tinted region the arm passes over in up to half the frames, not of the arm's own hue,
    is now the work surface (a blur of the arm over a grey wall has the arm's hue, only paler)."""
    pytest.importorskip("metaworld")
    from editors.specs import BackgroundSpec
    from editors.workspace import workspace_masks

    [(episode, truth)] = record_truth(tmp_path / "door", sim="metaworld", task="door-open-v3", episodes=1, size=64,
                                      cameras="corner2", seed=3020, max_steps=100)
    s = bench.score(workspace_masks(episode.frames[KEY]).keep, truth[KEY])
    # now 0.948, table 0.978, objects 0.983, robot 0.975, backdrop kept 0.014
    assert s["iou_min"] >= 0.93 and s["kept_table"] >= 0.95 and s["kept_object"] >= 0.95, s
    assert s["kept_robot"] >= 0.96 and s["kept_background"] <= 0.05, s
    changed = changed_alone(bench, BackgroundSpec, episode, truth, KEY)
    assert changed["changed_background_inner"] >= 0.95, changed
    assert max(changed[f"changed_{c}_inner"] for c in ("table", "robot", "object")) <= 0.01, changed


def test_a_drawers_white_handle_is_the_drawers_not_the_floor(bench, tmp_path):
    """drawer-close, corner4 at 256 px (seed 8010): the drawer's handle is as white as the floor and lies
    on the pale drawer's face and the wood, moving with the drawer in 42% of the frames. No growth reached
    it, so it went to the floor it looks like, and at 256 px its 1-2 px wide bars were also taken for the
    floor seen through a gap: `background` painted 66% of the handle's pixels with the new backdrop (and
    70% at 480x640). A region wholly in the workspace, on a tinted thing larger than it, is now that
    thing's part."""
    pytest.importorskip("metaworld")
    import cv2

    from editors.specs import BackgroundSpec
    from editors.workspace import workspace_masks

    [(episode, truth)] = record_truth(tmp_path / "drawer", sim="metaworld", task="drawer-close-v3", episodes=1,
                                      size=256, cameras="corner4", seed=8010, max_steps=100)
    key = "observation.images.corner4"
    source = episode.frames[key]
    s = bench.score(workspace_masks(source).keep, truth[key])
    # now 0.992 (before: 0.978)
    assert s["kept_object"] >= 0.985 and s["kept_background"] <= 0.02, s
    stage = BackgroundSpec(cameras=[key]).build()
    stage.setup()
    [edited] = stage([episode])
    # the handle: the drawer's white pixels, away from its outline
    hsv = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2HSV) for f in source])
    inner = np.stack([cv2.erode((t == 3).astype(np.uint8), np.ones((3, 3), np.uint8)) for t in truth[key]]) > 0
    handle = inner & (hsv[..., 1] < 40) & (hsv[..., 2] > 150)
    assert handle.sum() >= 40 * len(source)  # ~60 px a frame
    changed = np.abs(edited.frames[key].astype(int) - source).max(axis=-1) > 20
    assert changed[handle].mean() <= 0.02, changed[handle].mean()  # now 0 (before: 0.66)


@pytest.fixture(scope="module")
def topview_480(tmp_path_factory):
    """One pick-place episode (seed 9000, 100 steps) from the top view at a real camera's size, 480x640."""
    pytest.importorskip("metaworld")
    [(episode, truth)] = record_truth(tmp_path_factory.mktemp("topview_480") / "pick", sim="metaworld",
                                      task="pick-place-v3", episodes=1, size=(480, 640), cameras="topview",
                                      seed=9000, max_steps=100)
    return episode, truth, "observation.images.topview"


def test_a_tables_bevel_seen_from_above_at_a_real_cameras_size_is_the_table(bench, topview_480):
    """pick-place, top view at 480x640 (seed 9000): the table's outer bevel is a grey gradient 4-8 px wide
    between its dark rim and the white floor, which plate_regions cuts into bands 25-30 Lab apart. A floor
    tile's grout line joined the outermost band to the image's top edge, so it was backdrop, and each band
    took the backdrop through the next; the pedestal's grey top followed (IoU 0.936, table and robot kept
    94%, boundary 10 px). Now a region reaching the top row by 1-2 px is not at the top edge, and the
    backdrop two steps away decides only across a thin blend or a workspace thing."""
    from editors.specs import BackgroundSpec
    from editors.workspace import workspace_masks

    episode, truth, key = topview_480
    s = bench.score(workspace_masks(episode.frames[key]).keep, truth[key])
    # now 0.993, table 0.992, robot 1.000, boundary 1.16 px (before: 0.936, 0.937, 0.935, 10.1 px)
    assert s["iou_min"] >= 0.98 and s["kept_table"] >= 0.98 and s["kept_robot"] >= 0.99, s
    assert s["boundary_mean"] <= 2 and s["kept_background"] <= 0.01, s
    changed = changed_alone(bench, BackgroundSpec, episode, truth, key)
    assert changed["changed_background_inner"] >= 0.95, changed
    assert max(changed[f"changed_{c}_inner"] for c in ("table", "robot", "object")) <= 0.01, changed


def test_surface_at_a_real_cameras_size_paints_the_tables_corner_under_the_arm(bench, topview_480):
    """The same top view, re-textured by `surface`: the arm lies across the table's near corner, so the
    opened table body left that corner out and it was dropped with the pedestal as "off the table" (a
    wedge of the old wood under the new texture). Its wood regions that lie mostly outside the body's hull,
    of the body's tinted hue, now stay."""
    from editors.specs import SurfaceSpec
    from editors.workspace import workspace_masks

    episode, truth, key = topview_480
    ws = workspace_masks(episode.frames[key])
    # the near left corner, below the arm (its wood, and the table's rim there, which is not wood): now 0.45
    # of its table pixels in the surface, before 0.24
    corner = np.zeros_like(ws.surface)
    corner[240:340, 40:120] = True
    assert ws.surface[corner & (truth[key][0] == 1)].mean() >= 0.4
    stage = SurfaceSpec(cameras=[key]).build()
    stage.setup()
    [edited] = stage([episode])
    source, new = episode.frames[key], edited.frames[key]
    changed = bench.changed_by_edit(source, new, truth[key])
    # now 0.848 of the table's inside (its grey rim is not wood: left, by design), before 0.833
    assert changed["changed_table_inner"] >= 0.84, changed
    assert max(changed[f"changed_{c}_inner"] for c in ("background", "robot", "object")) <= 0.01, changed
    # The wood's dark grain lines, 1-2 px wide and strongly coloured, were small objects to the survey, and
    # `surface` left them as they were: streaks of the old wood through the new texture. Now they are the
    # table's (`workspace._grain`): such pixels of the table's inside left as they were, 278 a frame before,
    # now 112 (drawer-close 9610, corner4: 221 -> 74)
    saturation = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2HSV)[..., 1] for f in source])
    streaks = old_wood(source, new, truth[key]) & (saturation >= 115)
    assert streaks.sum() / len(source) <= 150, streaks.sum() / len(source)


@pytest.mark.slow
def test_surface_leaves_no_specks_of_the_old_grain_at_a_real_cameras_size(bench, tmp_path):
    """door-open from corner4 at 480x640 (seed 9800, not tuned on): the wood's grain has 1-px dark specks,
    coloured (an object to the survey, too small to be taken as a line of the grain) and, darkest, streaks
    the table's growth stopped at (not coloured enough to be objects). `surface` left both as they were:
    421 pixels a frame of the old wood in specks under 100 px through the new texture. Now 73."""
    from editors.specs import SurfaceSpec

    [(episode, truth)] = record_truth(tmp_path / "door", sim="metaworld", task="door-open-v3", episodes=1,
                                      size=(480, 640), cameras="corner4", seed=9800, max_steps=60)
    key = "observation.images.corner4"
    stage = SurfaceSpec(cameras=[key]).build()
    stage.setup()
    [edited] = stage([episode])
    source, new = episode.frames[key], edited.frames[key]
    changed = bench.changed_by_edit(source, new, truth[key])
    assert changed["changed_table_inner"] >= 0.89, changed  # 0.895 (0.891 before)
    assert max(changed[f"changed_{c}_inner"] for c in ("background", "robot", "object")) <= 0.01, changed
    specks = 0
    for frame in old_wood(source, new, truth[key]):
        _, _, stats, _ = cv2.connectedComponentsWithStats(frame.astype(np.uint8), connectivity=8)
        specks += int(stats[1:, 4][stats[1:, 4] < 100].sum())
    assert specks / len(source) <= 150, specks / len(source)
