"""Build a tiny MetaWorld dataset with scripts/make_sim_dataset.py and read it back with lerobot."""

import os
from pathlib import Path

import numpy as np
import pytest

from conftest import load_script


def _sim():
    return load_script("scripts/make_sim_dataset.py")

# lerobot / huggingface_hub read these at import time: never touch the network or ~/.cache.
os.environ["HF_HUB_OFFLINE"] = "1"

pytest.importorskip("lerobot")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_sim_dataset.py"


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    pytest.importorskip("metaworld")
    out = tmp_path_factory.mktemp("sim") / "ds"
    res = _sim().build_dataset(
        out, sim="metaworld", task="pick-place-v3", episodes=2, size=64,
        cameras="corner2,gripperPOV", seed=0, max_steps=30, keep_frames=True, log=lambda *_: None,
    )
    return res


def test_metaworld_roundtrip(built):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset(repo_id="local/sim", root=built.root)
    image_keys = ["observation.images.corner2", "observation.images.gripperPOV"]
    assert ds.meta.info["codebase_version"] == "v3.0"
    assert ds.fps == built.fps == 80
    assert ds.num_episodes == 2
    assert sorted(ds.meta.video_keys) == sorted(image_keys)

    lengths = [len(ep.action) for ep in built.episodes]
    assert all(0 < n <= 30 for n in lengths)
    assert ds.num_frames == sum(lengths)
    assert list(ds.meta.episodes["length"]) == lengths

    # The stored columns are exactly what was applied to / observed from the env.
    actions = np.stack(ds.hf_dataset["action"])
    states = np.stack(ds.hf_dataset["observation.state"])
    np.testing.assert_array_equal(actions, np.concatenate([ep.action for ep in built.episodes]))
    np.testing.assert_array_equal(states, np.concatenate([ep.state for ep in built.episodes]))
    assert np.all(np.abs(actions) <= 1.0)

    item = ds[0]
    for key in image_keys:
        assert tuple(item[key].shape) == (3, 64, 64)
    assert tuple(item["observation.state"].shape) == (4,)
    assert tuple(item["action"].shape) == (4,)
    assert item["task"] == built.episodes[0].task

    # Decoded video frames match the rendered ones. The default codec is lossy (AV1, crf 30) and
    # 64x64 is tiny, so expect ~29-33 dB here (>30 dB at 128x128); also check the frame is the
    # right one: it must match its own frame better than one 8 steps away.
    for ep_idx, t in [(0, 0), (0, lengths[0] - 1), (1, 3)]:
        item = ds[sum(lengths[:ep_idx]) + t]
        for key in image_keys:
            decoded = (item[key].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            recorded = built.episodes[ep_idx].frames[key.removeprefix("observation.images.")]
            psnr = _psnr(decoded, recorded[t])
            assert psnr > 27, (key, ep_idx, t, psnr)
            other = t + 8 if t + 8 < len(recorded) else t - 8
            if key.endswith("gripperPOV"):  # the close-up view changes enough to tell frames apart
                assert psnr > _psnr(decoded, recorded[other]) + 1, (key, ep_idx, t)


def test_metaworld_records_at_a_real_cameras_aspect(tmp_path):
    """--size HxW: frames and ground-truth masks at 48x64 (a 480x640 camera's aspect), as lerobot reads
    them back, and the truth lines up with the picture (the table is where the frame is wood-coloured)."""
    pytest.importorskip("metaworld")
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    script = _sim()
    assert script._parse_size("48x64") == (48, 64) and script._parse_size("64") == 64
    with pytest.raises(Exception, match="HxW"):
        script._parse_size("48by64")
    with pytest.raises(script.SetupError, match="square"):
        script.build_dataset(tmp_path / "p", sim="pusht", size=(48, 64), episodes=1, log=lambda *_: None)
    res = script.build_dataset(tmp_path / "ds", sim="metaworld", task="pick-place-v3", episodes=1, size=(48, 64),
                               cameras="corner2", seed=0, max_steps=8, masks=True, keep_frames=True,
                               log=lambda *_: None)
    ds = LeRobotDataset(repo_id="local/sim", root=res.root)
    assert tuple(ds[0]["observation.images.corner2"].shape) == (3, 48, 64)
    truth = script.load_masks(res.root, 0)["observation.images.corner2"]
    frames = res.episodes[0].frames["corner2"]
    assert truth.shape == (len(frames), 48, 64) and frames.shape[1:] == (48, 64, 3)
    table = truth[0] == 1  # MASK_CLASSES: table
    assert 0.1 < table.mean() < 0.6
    wood = frames[0][table].astype(int)
    assert np.median(wood[:, 0] - wood[:, 2]) > 15  # red over blue: the wood, not the grey floor


def test_pusht_roundtrip(tmp_path):
    pytest.importorskip("gym_pusht")
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    res = _sim().build_dataset(tmp_path / "ds", sim="pusht", episodes=2, size=96, max_steps=20,
                                       keep_frames=True, log=lambda *_: None)
    ds = LeRobotDataset(repo_id="local/sim", root=res.root)
    assert ds.fps == 10 and ds.num_episodes == 2
    assert ds.num_frames == sum(len(ep.action) for ep in res.episodes)
    actions = np.stack(ds.hf_dataset["action"])
    np.testing.assert_array_equal(actions, np.concatenate([ep.action for ep in res.episodes]))
    item = ds[25]
    decoded = (item["observation.images.top"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert _psnr(decoded, res.episodes[1].frames["top"][5]) > 30
    assert tuple(item["observation.state"].shape) == (2,)


def _metaworld_rollout(seed, action_noise, seeded_configs, steps=12):
    """One short 32 px rollout; returns (recorded episode, actions the env was stepped with, placement)."""
    sim = _sim().MetaWorldSim("pick-place-v3", 32, [("corner2", "corner2")], seed, action_noise,
                                      seeded_configs)
    applied, step = [], sim.step
    sim.step = lambda action: (applied.append(np.array(action)), step(action))[1]
    try:
        ep = sim.rollout(seed, steps)
        placement = np.array(sim.env.unwrapped._last_rand_vec)
    finally:
        sim.close()
    return ep, np.stack(applied), placement


def test_metaworld_action_noise_is_recorded_as_applied():
    pytest.importorskip("metaworld")
    clean, _, _ = _metaworld_rollout(0, 0.0, True)
    noisy, applied, _ = _metaworld_rollout(0, 0.3, True)
    again, _, _ = _metaworld_rollout(0, 0.3, True)
    # The label is exactly the action the env received (noise included, clipped to the action space).
    np.testing.assert_array_equal(noisy.action, applied.astype(np.float32))
    assert np.all(np.abs(noisy.action) <= 1.0)
    diff = noisy.action - clean.action
    assert np.abs(diff).max() > 0.1 and 0.1 < diff[:, :3].std() < 0.4  # noise of std ~0.3 (some clipped)
    np.testing.assert_array_equal(again.action, noisy.action)  # the noise is seeded by the episode seed
    script = _sim()
    with pytest.raises(script.SetupError, match="action_noise"):
        script.build_dataset("/nonexistent", sim="pusht", action_noise=0.1)


def test_metaworld_seeded_configs_differ_by_seed_and_repeat_by_seed():
    pytest.importorskip("metaworld")
    placements = [_metaworld_rollout(seed, 0.0, True, steps=2)[2] for seed in (0, 1, 0)]
    assert not np.allclose(placements[0], placements[1])  # a new object/goal placement per seed
    np.testing.assert_array_equal(placements[0], placements[2])  # and the same one for the same seed
