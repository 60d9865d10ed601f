"""The lighting edit: a physically plausible change of light, the same in every frame."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from augment.episode import Episode
from augment.local import run_local
from augment.spec import load_spec
from editors.lighting import relight, white_balance
from editors.specs import LightingSpec

from conftest import write_spec


def episode(n=12, h=24, w=32) -> Episode:
    rng = np.random.default_rng(3)
    still = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    frames = np.stack([still] * 4 + [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for _ in range(n - 4)])
    return Episode(frames={"cam": frames, "wrist": frames[:, ::-1].copy()}, task="push", fps=10, uid="ep000007",
                   state=rng.normal(size=(n, 3)).astype(np.float32), action=rng.normal(size=(n, 2)).astype(np.float32))


def test_white_balance_warms_and_cools_and_keeps_luminance():
    warm, cool, neutral = white_balance(3000, 0), white_balance(9000, 0), white_balance(6500, 0)
    assert warm[0] > warm[1] > warm[2] and cool[2] > cool[1] > cool[0]
    np.testing.assert_allclose(neutral, 1.0, atol=1e-6)
    for gains in (warm, cool):
        assert gains @ [0.2126, 0.7152, 0.0722] == pytest.approx(1.0)


def test_relight_is_a_monotone_per_pixel_map():
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, None, :, None], 3, axis=-1)  # (1, 1, 256, 3)
    out = relight(ramp, np.array([1.2, 1.0, 0.8]), np.ones((1, 256), np.float32))
    assert (np.diff(out[0, 0].astype(int), axis=0) >= 0).all()  # brighter stays brighter, per channel
    assert out[0, 0, 0].tolist() == [0, 0, 0] and out[0, 0, -1, 0] == 255  # black stays black, red clips
    same = relight(ramp, np.ones(3), np.ones((1, 256), np.float32))
    np.testing.assert_array_equal(same, ramp)  # a neutral light changes nothing


def test_stage_changes_the_light_not_the_episode():
    source = episode()
    stage = LightingSpec(variants=3, seed=1).build()
    stage.setup()
    outs = stage([source])
    assert [o.uid for o in outs] == ["ep000007-light0", "ep000007-light1", "ep000007-light2"]
    for out in outs:
        assert out.state is source.state and out.action is source.action and out.task == source.task
        for key in ("cam", "wrist"):  # every camera by default: the light falls on both
            video = out.frames[key]
            assert video.shape == source.frames[key].shape and video.dtype == np.uint8
            assert np.abs(video.astype(int) - source.frames[key]).mean() > 2
            # equal source frames stay equal: no flicker, frame 0 like the others
            for t in range(3):
                np.testing.assert_array_equal(video[t], video[t + 1])
        record = out.provenance["stages"][-1]
        assert set(record["light"]) == {"exposure_stops", "temperature_k", "tint"}
        assert out.provenance["edit"]["description"].endswith("lighting")
    assert len({o.provenance["stages"][-1]["light"]["temperature_k"] for o in outs}) == 3
    again = stage([source])
    np.testing.assert_array_equal(again[2].frames["cam"], outs[2].frames["cam"])  # seeded


def test_bad_ranges_are_refused():
    with pytest.raises(ValidationError, match="low <= high"):
        LightingSpec(exposure=(0.5, -0.5))
    with pytest.raises(ValidationError, match="1000 and 40000"):
        LightingSpec(temperature=(500, 6000))


def test_runs_in_a_pipeline_on_a_lerobot_dataset(source_dataset, tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    stages = "  - type: lighting\n    variants: 2\n  - type: source\n"
    spec = load_spec(write_spec(tmp_path / "s.yaml", source_dataset["root"], tmp_path / "out", stages),
                     ["source.episodes=[0]"])
    report = run_local(spec, progress=False)
    assert report["episodes_out"] == 2
    assert LeRobotDataset("local/x", root=tmp_path / "out").meta.total_episodes == 2
