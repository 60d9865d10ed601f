"""Labelers, fast parts: normalisation, metrics, windows, the network and its checkpoint, config
parsing, the split, the plots, the `source` labeller and the `idm` spec's checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from augment.episode import Episode
from augment.settings import parse_overrides
from labelers.config import IdmConfig, config_from_overrides
from labelers.data import PixelNormalizer, gather_windows, split_episodes
from labelers.metrics import format_table, regression_metrics
from labelers.network import build_network, load_checkpoint, save_checkpoint
from labelers.normalize import Normalizer
from labelers.plot import _plot_pil
from labelers.specs import SourceLabelSpec


def test_normalizer_round_trip_and_zero_std():
    stats = {"action": {"mean": [1.0, -2.0, 0.5], "std": [2.0, 0.5, 0.0]}}
    norm = Normalizer.from_stats(stats, "action")
    x = np.array([[3.0, -2.5, 0.5], [1.0, -2.0, 0.5]], dtype=np.float32)
    z = norm.normalize(x)
    np.testing.assert_allclose(z[0, :2], [1.0, -1.0])
    assert np.isfinite(z).all()  # a constant dimension does not divide by zero
    np.testing.assert_allclose(norm.unnormalize(z), x, atol=1e-6)
    again = Normalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    np.testing.assert_allclose(again.unnormalize(z), x, atol=1e-6)
    with pytest.raises(ValueError, match="no entry for 'observation.state'"):
        Normalizer.from_stats(stats, "observation.state")


def test_regression_metrics_values():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(500, 3))
    perfect = regression_metrics(truth, truth)
    np.testing.assert_allclose(perfect["r2"], 1.0)
    np.testing.assert_allclose(perfect["scale"], 1.0)
    np.testing.assert_allclose(perfect["bias"], 0.0, atol=1e-12)
    doubled = regression_metrics(2 * truth, truth)
    np.testing.assert_allclose(doubled["scale"], 2.0)
    shifted = regression_metrics(truth + 1.0, truth)
    np.testing.assert_allclose(shifted["bias"], 1.0)
    np.testing.assert_allclose(shifted["mse"], 1.0)
    assert all(r < 0.1 for r in regression_metrics(rng.normal(size=(500, 3)), truth)["r2"])
    table = format_table({"action": doubled}, {"action": ["dx", "dy", "dz"]})
    assert "dy" in table and "2.000" in table
    with pytest.raises(ValueError, match="differ in shape"):
        regression_metrics(truth[:, :2], truth)


def test_windows_repeat_border_frames_and_normalise():
    video = np.zeros((2, 5, 16, 16, 3), dtype=np.uint8)
    for t in range(5):
        video[:, t] = t * 10
    video[1] += 100  # second camera
    windows = gather_windows(video, [0, 4], [-1, 0, 1])
    assert windows.shape == (2, 2, 3, 16, 16, 3)
    assert [int(windows[0, 0, k, 0, 0, 0]) for k in range(3)] == [0, 0, 10]
    assert [int(windows[1, 0, k, 0, 0, 0]) for k in range(3)] == [30, 40, 40]
    pixels = PixelNormalizer([[0.0] * 3, [0.5] * 3], [[1.0] * 3, [0.25] * 3])
    x = pixels(windows)
    assert x.shape == (2, 2, 9, 16, 16) and x.dtype == torch.float32
    assert x[1, 0, 3, 0, 0].item() == pytest.approx(40 / 255)            # camera 0, frame t, red
    assert x[1, 1, 3, 0, 0].item() == pytest.approx((140 / 255 - 0.5) / 0.25)


def test_network_shapes_and_checkpoint_round_trip(tmp_path):
    config = IdmConfig(image_size=32, offsets=[0, 1], width=8, hidden=16, action_chunk=1, motion="none")
    torch.manual_seed(0)
    net = build_network(config, num_cameras=2, action_dim=4, state_dim=3).eval()
    x = torch.randn(5, 2, 6, 32, 32)
    action, state = net(x)
    assert action.shape == (5, 4) and state.shape == (5, 3)
    chunked = build_network(config.model_copy(update={"action_chunk": 3}), 2, 4, 3)
    assert chunked(x)[0].shape == (5, 12)  # three actions per window
    ckpt = {"train": config.model_dump(mode="json"), "cameras": ["a", "b"],
            "action": {"mean": [0.0] * 4, "std": [1.0] * 4}, "state": {"mean": [0.0] * 3, "std": [1.0] * 3}}
    save_checkpoint(tmp_path, net, ckpt)
    assert (tmp_path / "model.safetensors").is_file()
    loaded, loaded_config = load_checkpoint(tmp_path)
    assert loaded_config["cameras"] == ["a", "b"]
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)[0], action)
    torch.manual_seed(0)
    same = build_network(config, 2, 4, 3).eval()  # the same seed builds the same weights
    with torch.no_grad():
        torch.testing.assert_close(same(x)[0], action)
    with pytest.raises(ValueError, match="not an IDM checkpoint"):
        load_checkpoint(tmp_path / "nowhere")


def test_config_overrides_parse_and_explain_errors():
    assert parse_overrides(["epochs=5", "offsets=[0, 1]", "device=cpu"]) == {
        "epochs": 5, "offsets": [0, 1], "device": "cpu"}
    config = config_from_overrides(["offsets=[2,0]", "image_size=96"])
    assert config.offsets == [0, 2] and config.image_size == 96
    with pytest.raises(ValueError, match="image_size.*multiple of 16"):
        config_from_overrides(["image_size=50"])
    with pytest.raises(ValueError, match="epoch.*valid keys: cameras"):
        config_from_overrides(["epoch=5"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["epochs"])


def test_split_is_by_episode_disjoint_and_seeded():
    train, select, val = split_episodes(list(range(20)), 0.2, 0.1, seed=3)
    assert len(val) == 4 and len(select) == 2 and len(train) == 14
    assert sorted(train + select + val) == list(range(20))
    assert split_episodes(list(range(20)), 0.2, 0.1, seed=3) == (train, select, val)
    assert split_episodes(list(range(20)), 0.2, 0.1, seed=4) != (train, select, val)
    with pytest.raises(ValueError, match="at least 3"):
        split_episodes([0, 1], 0.2, 0.1, 0)


def test_pil_plot_fallback_draws_both_series(tmp_path):
    from PIL import Image

    t = np.linspace(0, 1, 30)[:, None]
    path = _plot_pil(tmp_path / "p.png", [("ep0", np.hstack([t, -t]) + 0.1, np.hstack([t, -t]))], ["a", "b"])
    pixels = np.asarray(Image.open(path).convert("RGB"))
    assert pixels.shape == (120, 480, 3)
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 80)
    black = pixels.max(axis=-1) < 60
    assert red.sum() > 50 and black.sum() > 50


def _episode(action=True, state=True, uid="ep000001"):
    n = 6
    return Episode(frames={"observation.images.top": np.zeros((n, 8, 8, 3), np.uint8)}, task="t", fps=10, uid=uid,
                   action=np.ones((n, 2), np.float32) if action else None,
                   state=np.zeros((n, 3), np.float32) if state else None)


def test_source_labeller_keeps_and_records_recorded_actions():
    stage = SourceLabelSpec().build()
    episode = _episode()
    (out,) = stage([episode])
    np.testing.assert_array_equal(out.action, episode.action)
    assert out.provenance["labels"] == {"actions": "recorded", "action_dims": 2, "state": "recorded", "state_dims": 3}
    assert out.provenance["stages"][-1]["stage"] == "source"


def test_source_labeller_refuses_or_drops_missing_actions():
    with pytest.raises(ValueError, match="ep000002: has no recorded action.*type: idm"):
        SourceLabelSpec().build()([_episode(action=False, uid="ep000002")])
    (dropped,) = SourceLabelSpec(on_missing="drop").build()([_episode(state=False)])
    assert dropped.provenance["dropped"]["reason"] == "has no recorded observation.state"
    (kept,) = SourceLabelSpec(require_state=False).build()([_episode(state=False)])
    assert "dropped" not in kept.provenance and "state" not in kept.provenance["labels"]


def test_idm_spec_names_a_missing_checkpoint(tmp_path):
    from pydantic import ValidationError

    from labelers.specs import IdmLabelSpec

    with pytest.raises(ValidationError, match="not an IDM checkpoint.*config.json is missing"):
        IdmLabelSpec(checkpoint=str(tmp_path))


def test_stage_types_are_registered_and_spec_modules_stay_light():
    import subprocess
    import sys

    code = ("import sys; from augment.registry import spec_class; spec_class('idm'); spec_class('source'); "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_example_pipelines_validate(tmp_path):
    from pathlib import Path

    import yaml

    from augment.registry import spec_class

    pipelines = Path(__file__).resolve().parents[1] / "pipelines"
    source = yaml.safe_load((pipelines / "label_source.yaml").read_text())
    assert [spec_class(s["type"]).model_validate(s).type for s in source["stages"]] == ["background", "source"]
    idm = yaml.safe_load((pipelines / "label_idm.yaml").read_text())["stages"][0]
    with pytest.raises(Exception, match="checkpoints/idm is not an IDM checkpoint"):
        spec_class("idm").model_validate(idm)  # the checkpoint exists only after `augment train-idm`


def test_learning_rate_warms_up_then_anneals():
    from labelers.train import learning_rate

    assert learning_rate(1.0, 0.0) == pytest.approx(0.1)
    assert learning_rate(1.0, 0.05) == pytest.approx(1.0)
    assert learning_rate(1.0, 1.0) == pytest.approx(0.02)
    assert learning_rate(1.0, 2.0) == pytest.approx(0.02)  # past the time budget: stays annealed
    values = [learning_rate(1.0, p / 100) for p in range(5, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_split_keeps_identical_episodes_together():
    groups = {i: f"config{i % 5}" for i in range(20)}  # 20 recordings of 5 distinct configurations
    train, select, val = split_episodes(list(range(20)), 0.2, 0.2, seed=0, groups=groups)
    parts = [{groups[i] for i in part} for part in (train, select, val)]
    assert all(p for p in parts) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert sorted(train + select + val) == list(range(20))
    with pytest.raises(ValueError, match="2 distinct"):
        split_episodes(list(range(6)), 0.2, 0.1, 0, {i: str(i % 2) for i in range(6)})


def test_duplicate_groups_with_action_and_state_of_different_sizes(source_dataset):
    from labelers.data import duplicate_groups

    groups = duplicate_groups(str(source_dataset["root"]))  # state (3,), action (2,)
    assert sorted(groups) == [0, 1, 2, 3] and len(set(groups.values())) == 4  # random actions: all distinct


def test_action_chunks_target_neighbours_and_average_back():
    from labelers.config import chunk_steps
    from labelers.predictor import IdmPredictor
    from labelers.train import _targets

    assert chunk_steps(1) == [0] and chunk_steps(3) == [-1, 0, 1] and chunk_steps(4) == [-2, -1, 0, 1]
    identity = Normalizer(np.zeros(2, np.float32), np.ones(2, np.float32))
    action = np.arange(10, dtype=np.float32).reshape(5, 2)  # step t: [2t, 2t+1]

    class Ep:
        pass

    ep = Ep()
    ep.action, ep.state = action, np.zeros((5, 1), np.float32)
    targets, _ = _targets([ep], identity, identity, chunk=3)
    # window t predicts steps t-1, t, t+1 (clipped to the episode), step-major
    np.testing.assert_array_equal(targets[0][0], [0, 1, 0, 1, 2, 3])
    np.testing.assert_array_equal(targets[0][2], [2, 3, 4, 5, 6, 7])
    np.testing.assert_array_equal(targets[0][4], [6, 7, 8, 9, 8, 9])

    predictor = IdmPredictor.__new__(IdmPredictor)
    predictor.config = IdmConfig(action_chunk=3)
    # Perfect chunks average back to the truth, clipped border guesses excluded.
    np.testing.assert_allclose(predictor._average_chunks(targets[0]), action)
    noisy = targets[0].copy()
    noisy[2, 2:4] += 3.0  # one window's guess for its own step is off by 3: shared among 3 guesses
    out = predictor._average_chunks(noisy)
    np.testing.assert_allclose(out[2], action[2] + 1.0)
    np.testing.assert_allclose(np.delete(out, 2, axis=0), np.delete(action, 2, axis=0))


def test_action_chunk_defaults_to_what_the_window_sees_and_old_checkpoints_load_as_one():
    from labelers.network import checkpoint_train_config

    assert IdmConfig().action_chunk == 5  # offsets -2..7 see the motion of steps -2..6: a centred chunk of 5
    assert IdmConfig(offsets=[-1, 0, 1, 2]).action_chunk == 3
    assert IdmConfig(offsets=[0, 1]).action_chunk == 1
    with pytest.raises(ValueError, match=r"action_chunk=3 labels steps \[-1, 0, 1\] but offsets \[0, 1\]"):
        IdmConfig(offsets=[0, 1], action_chunk=3)
    old = IdmConfig(offsets=[-1, 0, 1, 2]).model_dump(mode="json")
    del old["action_chunk"]  # written before chunks existed: one action per window
    assert checkpoint_train_config({"train": old}).action_chunk == 1


def test_calibration_undoes_shrinkage_and_leaves_flat_dimensions_alone():
    from labelers.calibrate import SCALE_LIMITS, apply_calibration, fit_calibration

    rng = np.random.default_rng(0)
    truth = rng.normal(size=(400, 3)) * [1.0, 2.0, 0.0] + [0.0, 1.0, 0.5]
    shrunk = 0.6 * truth + 0.3 + rng.normal(scale=0.05, size=truth.shape)  # labels regressed to the mean
    shrunk[:, 2] = 0.0  # a dimension that never moves (an unused gripper)
    calibration = fit_calibration([shrunk], [truth])
    assert calibration["scale"][0] == pytest.approx(1 / 0.6, rel=0.02)
    assert calibration["scale"][2] == 1.0 and calibration["bias"][2] == 0.0
    fixed = apply_calibration(shrunk.astype(np.float32), calibration)
    after = regression_metrics(fixed, truth)
    before = regression_metrics(shrunk, truth)
    assert before["scale"][0] == pytest.approx(0.6, abs=0.02)
    np.testing.assert_allclose(after["scale"][:2], 1.0, atol=1e-4)   # the spread matches the truth's
    np.testing.assert_allclose(after["bias"][:2], 0.0, atol=1e-4)    # and so does the mean
    assert min(after["r2"][:2]) > 0.99
    assert apply_calibration(fixed, None) is fixed                  # no calibration: labels as they are
    far = fit_calibration([0.01 * truth[:, :1] + rng.normal(scale=0.01, size=(400, 1))], [truth[:, :1]])
    assert far["scale"][0] == SCALE_LIMITS[1]                      # a few episodes cannot blow labels up
    with pytest.raises(ValueError, match="matching"):
        fit_calibration([shrunk[:, :2]], [truth])


def test_calibration_is_not_carried_by_one_odd_selection_episode():
    """Seven episodes whose labels are 0.8 of the truth, and one whose truth sits far out for most of its
    steps where the labels fall short (pusht's agent pinned at the edge): the scale follows the seven."""
    from labelers.calibrate import fit_calibration

    rng = np.random.default_rng(1)
    truths = [rng.normal(size=(150, 1)) for _ in range(7)]
    preds = [0.8 * t + rng.normal(scale=0.05, size=t.shape) for t in truths]
    odd = np.concatenate([np.linspace(0, 3, 30), np.full(120, 3.0)])[:, None]
    truths.append(odd)
    preds.append(np.minimum(0.8 * odd, 1.5))
    assert fit_calibration(preds, truths)["scale"][0] == pytest.approx(1 / 0.8, rel=0.03)
    pooled = fit_calibration([np.concatenate(preds)], [np.concatenate(truths)])["scale"][0]
    assert pooled > 1.4  # as one pool, the odd episode would have blown every label up


def test_uncertainty_weights_recover_how_the_residuals_were_drawn():
    """Residuals drawn with variance 0.25 * head**2 + 4 * disagreement**2: the fit finds both weights,
    and a part that carries no information gets a small weight."""
    from labelers.calibrate import fit_uncertainty

    rng = np.random.default_rng(2)
    head, disagreement = rng.uniform(0.05, 1.0, (4000, 2)), rng.uniform(0.01, 0.3, (4000, 2))
    residuals = rng.normal(size=head.shape) * np.sqrt(0.25 * head ** 2 + 4 * disagreement ** 2)
    weights = fit_uncertainty(head, disagreement, residuals)
    assert weights["error_head"] == pytest.approx(0.25, rel=0.3) and weights["disagreement"] == pytest.approx(4, rel=0.3)
    only_head = fit_uncertainty(head, disagreement, rng.normal(size=head.shape) * head)
    assert only_head["error_head"] == pytest.approx(1, rel=0.3) and only_head["disagreement"] < 0.3
    with pytest.raises(ValueError, match="matching"):
        fit_uncertainty(head, disagreement[:10], residuals)


def test_calibration_from_few_selection_episodes_is_pulled_towards_identity():
    from labelers.calibrate import FULL_WEIGHT_EPISODES, apply_calibration, calibration_weight, shrink_calibration

    assert [calibration_weight(n) for n in (0, 1, 2, 3, 8)] == pytest.approx([0, 1 / 3, 2 / 3, 1, 1])
    assert FULL_WEIGHT_EPISODES == 3
    fitted = {"scale": [0.6, 1.5], "bias": [0.3, -0.2]}
    labels = np.array([[1.0, -2.0], [0.0, 4.0]], np.float32)
    assert shrink_calibration(fitted, 1.0) == fitted  # enough selection episodes: as fitted
    np.testing.assert_allclose(apply_calibration(labels, shrink_calibration(fitted, 0.0)), labels)
    third = apply_calibration(labels, shrink_calibration(fitted, 1 / 3))
    full = apply_calibration(labels, fitted)
    np.testing.assert_allclose(third, labels + (full - labels) / 3, rtol=1e-5)  # a third of the way


def test_trust_verdicts_name_what_misses_the_bar():
    from labelers.metrics import format_verdicts, trust_verdicts

    metrics = {"r2": [0.95, 0.75, 0.93, 0.5], "scale": [1.02, 0.97, 0.85, 1.3]}
    verdicts = trust_verdicts(metrics, ["dx", "dy", "dz", "grip"])
    assert [v["trust"] for v in verdicts] == [True, False, False, False]
    assert verdicts[0]["why"] == ""
    assert verdicts[1]["why"] == "R² 0.75 < 0.9"
    assert verdicts[2]["why"] == "scale 0.85 < 0.9 (labels too small)"
    assert verdicts[3]["why"] == "R² 0.50 < 0.9; scale 1.30 > 1.1 (labels too large)"
    text = format_verdicts(verdicts)
    assert "dx    trust" in text and "dy    do not trust: R² 0.75 < 0.9" in text
    assert [v["dimension"] for v in trust_verdicts(metrics)] == ["0", "1", "2", "3"]  # unnamed dimensions


def test_epochs_scale_with_the_data_unless_set():
    from labelers.train import epoch_plan

    config = IdmConfig()
    assert epoch_plan(config, steps_per_epoch=7) == (286, 58)      # 3 short episodes: 2000 steps, not 210
    assert epoch_plan(config, steps_per_epoch=100) == (20, 6)      # large data: fewer, longer epochs
    assert epoch_plan(IdmConfig(epochs=5, patience=2), 7) == (5, 2)


def test_optical_flow_channels_show_the_motion():
    from labelers.data import FLOW_PER_PX, FLOW_ZERO, optical_flow, stack_cameras

    yy, xx = np.mgrid[0:64, 0:64]
    frames = []
    for t in range(4):  # a textured square moving 2 px right per frame
        image = np.full((64, 64, 3), 30, np.uint8)
        x0 = 20 + 2 * t
        patch = ((xx[20:36, x0:x0 + 16] - x0) * 13 + yy[20:36, x0:x0 + 16] * 7) % 200 + 55
        image[20:36, x0:x0 + 16] = patch[..., None]
        frames.append(image)
    video = np.stack(frames)
    flow = (optical_flow(video).astype(np.float32) - FLOW_ZERO) / FLOW_PER_PX
    assert flow.shape == (4, 64, 64, 2)
    inside = flow[0, 24:32, 26:34]
    assert np.median(inside[..., 0]) == pytest.approx(2.0, abs=0.3)  # x: 2 px per frame
    assert abs(np.median(inside[..., 1])) < 0.3                      # y: still
    assert np.abs(flow[0, :8, :8]).max() < 0.2 and not flow[-1].any()  # still backdrop; none after the end
    stacked = stack_cameras({"top": video}, ["top"], 64, motion="flow")
    assert stacked.shape == (1, 4, 64, 64, 5) and np.array_equal(stacked[0, ..., :3], video)
    x = PixelNormalizer([[0.5] * 3], [[0.25] * 3], motion="flow")(gather_windows(stacked, [0], [0, 1]))
    assert x.shape == (1, 1, 10, 64, 64)
    assert x[0, 0, 3, 28, 30].item() == pytest.approx(float(flow[0, 28, 30, 0]), abs=1e-5)  # flow in pixels
    net = build_network(IdmConfig(image_size=64, offsets=[0, 1], motion="flow", width=8, hidden=16), 1, 2, 2)
    assert net(x)[0].shape == (1, 2)
    from labelers.network import checkpoint_train_config

    old = IdmConfig().model_dump(mode="json")
    del old["motion"]  # written before motion existed: RGB only
    assert checkpoint_train_config({"train": old}).motion == "none"


def test_weight_average_follows_the_network_with_a_short_start():
    import torch

    from labelers.train import update_average

    net, averaged = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    with torch.no_grad():
        averaged.weight.fill_(0.0)
        net.weight.fill_(1.0)
    update_average(averaged, net, step=0, horizon=50)  # first step: decay 1/10, mostly the network
    assert averaged.weight[0, 0].item() == pytest.approx(0.9)
    for step in range(1, 2000):
        update_average(averaged, net, step, horizon=50)
    torch.testing.assert_close(averaged.weight, net.weight)  # a still network is reached
    with torch.no_grad():
        net.weight.fill_(2.0)
    update_average(averaged, net, step=2000, horizon=50)  # later: 1/50 of the way per step
    assert averaged.weight[0, 0].item() == pytest.approx(1.0 + 1.0 / 50)
