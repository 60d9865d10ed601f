"""The shared rollout logic of generators/base.py (with a fake backend, no diffusers) and the replay."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from augment.episode import Episode
from augment.stage import derive_seed
from generators.base import (
    VideoGeneratorStage,
    choose_resolution,
    clips_needed,
    edit_of,
    render_prompt,
    resample_indices,
    valid_frame_count,
)
from generators.specs import GeneratorSpec
from generators.specs import ReplaySpec


def make_episode(length=30, fps=30, cameras=("cam",), size=(24, 40)) -> Episode:
    rng = np.random.default_rng(1)
    frames = {k: rng.integers(0, 256, (length, *size, 3), dtype=np.uint8) for k in cameras}
    return Episode(frames=frames, task="Pick the red cube.", fps=fps, uid="ep000003-bg0",
                   state=np.ones((length, 4), np.float32), action=np.ones((length, 4), np.float32),
                   extras={"observation.velocity": np.zeros((length, 2), np.float32)},
                   provenance={"source": {"episode_index": 3}, "edit": {"id": "bg0", "description": "a wooden table"}})


class FakeSpec(GeneratorSpec):
    type: str = "fake"

    @classmethod
    def stage_class(cls):
        return FakeStage


class FakeStage(VideoGeneratorStage):
    """Each model frame is a flat grey whose value encodes (clip call, frame index), so the tests can
    read back which model frame every output frame came from."""

    default_fps = 16.0
    default_frames = 9
    default_area = 16 * 32

    def setup(self):
        self.calls = []
        self.pipe = self

    def constraints(self):
        return 16, 4

    def generate(self, conditioning, prompt, seeds, num_frames, height, width):
        self.calls.append({"cond": conditioning.copy(), "prompt": prompt, "seeds": list(seeds)})
        clip = np.zeros((len(seeds), num_frames, height, width, 3), np.float32)
        for i, seed in enumerate(seeds):
            rng = np.random.default_rng(seed)
            clip[i] = rng.random()  # seed-dependent content, so determinism is checkable
            clip[i, :, 0, 0, 0] = np.arange(num_frames) / 255.0  # frame index in one pixel
        return clip


def fake_stage(**fields) -> FakeStage:
    stage = FakeStage(FakeSpec(model="none", **fields))
    stage.setup()
    return stage


def test_prompt_template_fills_task_and_edit():
    assert render_prompt("{task}. {edit}", "Pick the red cube.", "a wooden table") == "Pick the red cube. a wooden table."
    assert render_prompt("{task}. {edit}", "pick", "") == "pick."
    assert render_prompt("A robot arm: {task}, on {edit}", "push the block", "a kitchen") == \
        "A robot arm: push the block, on a kitchen."
    with pytest.raises(ValidationError, match=r"only the placeholders \{task\} and \{edit\}"):
        FakeSpec(model="m", prompt_template="{task} {scene}")


def test_resolution_keeps_aspect_on_multiples():
    assert choose_resolution(480, 640, 480 * 832, 16) == (544, 736)  # 4:3 camera, Wan's pixel budget
    h, w = choose_resolution(96, 128, 704 * 1280, 16)
    assert h % 16 == 0 and w % 16 == 0 and abs(w / h - 128 / 96) < 0.03
    assert choose_resolution(10, 10, 100, 32) == (32, 32)  # never below one multiple


def test_frame_counts_and_clip_counts():
    assert valid_frame_count(81, 4) == 81 and valid_frame_count(80, 4) == 77 and valid_frame_count(160, 8) == 153
    assert valid_frame_count(14, 1) == 14
    assert clips_needed(9, 9, 1, 4) == 1
    assert clips_needed(10, 9, 1, 4) == 2      # 9 + 8
    assert clips_needed(25, 9, 1, 4) == 3      # 9 + 8 + 8
    assert clips_needed(1000, 9, 1, 4) == 4    # capped


def test_resample_16_to_30_fps_timestamps():
    idx = resample_indices(30, 30, 16)  # one second at 30 fps from a 16 fps video
    assert idx[0] == 0 and len(idx) == 30
    # every output frame shows the model frame nearest its timestamp
    assert np.all(np.abs(idx / 16 - np.arange(30) / 30) <= 0.5 / 16 + 1e-9)
    assert np.all(np.diff(idx) >= 0)
    assert list(resample_indices(30, 30, 16, n_in=8)) == list(idx[idx < 8])


def test_rollout_chains_clips_and_resamples_to_dataset_fps():
    stage = fake_stage(samples_per_edit=2, pin_first_frame=False)
    episode = make_episode(length=30, fps=30)
    outs = stage([episode])
    # 30 frames at 30 fps = 29/30 s -> model frames 0..15 at 16 fps: 16 frames = 9 + 8 -> 2 clips/sample
    assert len(stage.calls) == 4
    assert [o.uid for o in outs] == ["ep000003-bg0-s0", "ep000003-bg0-s1"]
    for out in outs:
        video = out.frames["cam"]
        assert video.shape == (30, 24, 40, 3) and video.dtype == np.uint8 and out.fps == 30
        record = out.provenance["stages"][-1]
        assert record["clips"] == 2 and record["model_size"] == [16, 32] and not record["cut_short"]
        assert out.provenance["rank_group"] == "ep000003/bg0"
        # generated episodes keep one camera, no actions/state (the labeler fills them), no extras
        assert out.action is None and out.state is None and out.extras == {}
    # calls: the first clips of samples 0 and 1, then their second clips, each conditioned on the
    # last frame of its own first clip (frame 8, whose index the fake wrote into pixel (0, 0))
    second = stage.calls[2]
    assert second["cond"].shape == (1, 16, 32, 3) and second["cond"][0, 0, 0, 0] == 8
    assert second["seeds"] == [derive_seed(stage.calls[0]["seeds"][0], 1)]
    assert stage.calls[0]["prompt"] == "Pick the red cube. a wooden table."


def test_seeds_reproduce_and_differ_per_sample():
    a = fake_stage(samples_per_edit=3)([make_episode()])
    b = fake_stage(samples_per_edit=3)([make_episode()])
    for x, y in zip(a, b):
        assert np.array_equal(x.frames["cam"], y.frames["cam"])
    assert not np.array_equal(a[1].frames["cam"][1:], a[2].frames["cam"][1:])
    expected = [derive_seed(0, "ep000003", "bg0", k) for k in range(3)]
    assert [o.provenance["generator"]["seed"] for o in a] == expected
    c = fake_stage(samples_per_edit=1, seed=5)([make_episode()])
    assert c[0].provenance["generator"]["seed"] != expected[0]


def test_first_frame_is_the_edited_frame():
    episode = make_episode()
    out = fake_stage()([episode])[0]
    assert np.array_equal(out.frames["cam"][0], episode.frames["cam"][0])


def test_max_clips_cuts_a_long_horizon_short():
    stage = fake_stage(horizon=300, max_clips=2)
    out = stage([make_episode(length=30)])[0]
    # two clips = 9 + 8 = 17 model frames (0..16 at 16 fps); output frame i shows model frame
    # round(i * 16 / 30), which exists for i <= 30: 31 frames instead of 300
    assert len(out.frames["cam"]) == 31
    assert out.provenance["stages"][-1]["cut_short"] is True


def test_batch_samples_makes_one_first_call():
    stage = fake_stage(samples_per_edit=3, batch_samples=True, horizon=10)
    stage([make_episode()])
    assert len(stage.calls) == 1 and len(stage.calls[0]["seeds"]) == 3


def test_camera_choice_and_output_features():
    features = {
        "observation.images.top": {"dtype": "video", "shape": [24, 40, 3]},
        "observation.images.wrist": {"dtype": "video", "shape": [24, 40, 3]},
        "observation.state": {"dtype": "float32", "shape": [4]},
        "action": {"dtype": "float32", "shape": [4]},
        "observation.velocity": {"dtype": "float32", "shape": [2]},
        "timestamp": {"dtype": "float32", "shape": [1]},
        "frame_index": {"dtype": "int64", "shape": [1]},
    }
    spec = FakeSpec(model="m", camera="observation.images.top")
    assert set(spec.output_features(features)) == {"observation.images.top", "observation.state", "action",
                                                   "timestamp", "frame_index"}
    with pytest.raises(ValueError, match="name the one to generate"):
        FakeSpec(model="m").output_features(features)
    with pytest.raises(ValueError, match="'side' is not one of"):
        FakeSpec(model="m", camera="side").output_features(features)
    two = make_episode(cameras=("a", "b"))
    out = fake_stage(camera="b")([two])[0]
    assert list(out.frames) == ["b"]


def test_single_image_backends_refuse_several_conditioning_frames():
    with pytest.raises(ValueError, match="conditioning_frames: .* conditions on one image"):
        fake_stage(conditioning_frames=2)([make_episode()])


def test_an_unedited_episode_is_its_own_edit():
    episode = make_episode()
    episode.provenance.pop("edit")
    assert edit_of(episode) == ("ep000003-bg0", "")


def test_real_editors_fill_the_generators_edit(tmp_path):
    """Background then surface edit, as a pipeline chains them, into a generator: the prompt says what
    both editors did, and each variant is its own edit (its own rank group)."""
    import cv2

    from editors.specs import BackgroundSpec
    from editors.specs import SurfaceSpec

    folder = tmp_path / "walls"
    folder.mkdir()
    cv2.imwrite(str(folder / "brick_wall.png"), np.full((20, 20, 3), (40, 60, 160), np.uint8))
    video = np.full((12, 24, 40, 3), 120, np.uint8)  # a grey wall
    video[:, 14:, :] = (150, 120, 90)  # a wooden table
    for t in range(12):
        # the arm, moving in front of the wall and over the table's far edge (an arm that moved only in
        # front of the wall had the wall taken for a surface things slide on: `surface` repainted the wall)
        video[t, 8:18, 2 + 2 * t:8 + 2 * t] = (30, 30, 30)
    source = Episode(frames={"cam": video}, task="Pick the red cube.", fps=30, uid="ep000003",
                     provenance={"source": {"episode_index": 3}})
    stages = [BackgroundSpec(backgrounds=str(folder), variants=2).build(), SurfaceSpec(variants=1).build()]
    episodes = [source]
    for stage in stages:
        stage.setup()
        episodes = stage(episodes)
    generator = fake_stage(prompt_template="{task} {edit}")
    outputs = generator(episodes)
    prompts = {call["prompt"] for call in generator.calls}
    assert prompts == {"Pick the red cube a new background (brick wall); a new table surface."}
    assert sorted({ep.provenance["rank_group"] for ep in outputs}) == ["ep000003/ep000003-bg0", "ep000003/ep000003-bg1"]
    assert episodes[0].provenance["edit"]["stages"] == ["background", "surface"]
    for edited in episodes:  # each edit changed what it names: the wall above the arm, the table's near rows
        assert not np.array_equal(edited.frames["cam"][:, :6], video[:, :6])
        assert not np.array_equal(edited.frames["cam"][:, 20:], video[:, 20:])


def test_replay_applies_the_background_edit_to_every_frame():
    spec = ReplaySpec(samples_per_edit=2, edit={"backgrounds": "procedural"})
    stage = spec.build()
    stage.setup()
    # a still scene: a dull wall above a grey table, and a block moving across the table (the
    # foreground); the table holds the motion, so it is work surface, and the wall is the backdrop
    video = np.full((30, 24, 40, 3), 120, np.uint8)
    video[:, :6] = (100, 105, 115)
    for t in range(30):
        video[t, 10:18, t:t + 8] = (200, 40, 40)
    episode = make_episode()
    episode.frames["cam"] = video
    outs = stage([episode])
    again = spec.build()
    again.setup()
    assert [o.uid for o in outs] == ["ep000003-bg0-s0", "ep000003-bg0-s1"]
    for out, rerun in zip(outs, again([episode])):
        assert np.array_equal(out.frames["cam"], rerun.frames["cam"])
        assert out.provenance["rank_group"] == "ep000003/bg0"
        # structure-preserving: every frame is edited, actions and state stay the recorded ones
        assert out.frames["cam"].shape == episode.frames["cam"].shape
        assert np.array_equal(out.action, episode.action) and np.array_equal(out.state, episode.state)
    assert not np.array_equal(outs[0].frames["cam"], outs[1].frames["cam"])
    assert not np.array_equal(outs[0].frames["cam"][:, :5], video[:, :5])  # the backdrop is replaced
    assert ReplaySpec().output_features({"a": {"dtype": "video"}}) == {"a": {"dtype": "video"}}
    with pytest.raises(ValidationError, match="use samples_per_edit"):
        ReplaySpec(edit={"variants": 2})


@pytest.mark.parametrize("name", ["rollout_wan", "rollout_cosmos", "rollout_replay"])
def test_pipeline_specs_validate(name):
    # Only the generator block: the other stages check files (IDM checkpoint) that exist only after training.
    from pathlib import Path

    import yaml

    from augment.registry import spec_class

    data = yaml.safe_load((Path(__file__).parent.parent / "pipelines" / f"{name}.yaml").read_text())
    block = next(s for s in data["stages"] if s["type"] in ("wan-i2v", "cosmos-predict2", "replay"))
    generator = spec_class(block["type"]).model_validate(block)
    assert generator.samples_per_edit >= 2


def test_unknown_generator_field_names_the_line(tmp_path):
    from augment.spec import SpecError, load_spec

    path = tmp_path / "bad.yaml"
    path.write_text("source: {root: x}\nsink: {root: y}\nstages:\n  - type: wan-i2v\n    model: m\n    frames: 9\n")
    with pytest.raises(SpecError, match=r"bad.yaml:6: stages\[0\].frames: unknown key; valid keys: .*num_frames"):
        load_spec(path)
