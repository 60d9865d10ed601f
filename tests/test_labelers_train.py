"""Labelers, end to end on a tiny dataset written by lerobot: a blob moves by the recorded action each
step, so the action at t is what the frames t and t+1 show, and the state is where the blob is.
A model that learns nothing fails the R² bounds; a model with the wrong scale fails the scale bounds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from augment.source import LeRobotSource
from labelers.config import IdmConfig

SIZE = 32
TINY = dict(image_size=32, offsets=[0, 1], width=16, hidden=128, dropout=0.2, weight_decay=0.01, epochs=60,
            patience=60, batch_size=32, lr=3e-3, edit_variants=0, edit_prob=0.0, val_fraction=0.25, select_fraction=0.1,
            device="cpu", plot_episodes=1)


def make_blob_dataset(root, episodes=40, steps=16, seed=0, noise_left=0.0):
    """A 10 px bright square on a dark gradient; action = (dx, dy) to the next frame, state = position.
    noise_left: std of noise added to the recorded action (not to the motion) while the blob is in the
    image's left half: labels there cannot be read off the frames, as where a real robot's command and
    its motion part (contact, a joint limit)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {
        "observation.images.top": {"dtype": "video", "shape": (SIZE, SIZE, 3), "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": (2,), "names": ["x", "y"]},
        "action": {"dtype": "float32", "shape": (2,), "names": ["dx", "dy"]},
    }
    ds = LeRobotDataset.create("test/blob", fps=10, features=features, root=root, robot_type="blob")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    backdrop = np.stack([xx * 3, yy * 3, np.full_like(xx, 40)], -1).astype(np.uint8)
    for _ in range(episodes):
        pos = rng.integers(8, SIZE - 8, size=2).astype(np.float32)
        for _ in range(steps):
            step = rng.integers(-3, 4, size=2).astype(np.float32)
            step = np.where((pos + step < 5) | (pos + step > SIZE - 6), -step, step)
            image = backdrop.copy()
            x, y = int(pos[0]), int(pos[1])
            image[y - 5:y + 5, x - 5:x + 5] = (250, 250, 250)
            action = step + (rng.normal(0, noise_left, 2).astype(np.float32) if pos[0] < SIZE / 2 else 0)
            ds.add_frame({"observation.images.top": image, "observation.state": pos.copy(), "action": action,
                          "task": "move the blob"})
            pos = pos + step
        ds.save_episode()
    ds.finalize()
    return root


@pytest.fixture(scope="module")
def blob_dataset(tmp_path_factory):
    return make_blob_dataset(tmp_path_factory.mktemp("blob") / "ds")


@pytest.fixture(scope="module")
def trained(blob_dataset, tmp_path_factory):
    from labelers.train import train_idm

    out = tmp_path_factory.mktemp("idm") / "ckpt"
    report = train_idm(str(blob_dataset), str(out), IdmConfig(**TINY), log=lambda *_: None)
    return out, report


def test_learnable_mapping_reaches_high_r2_with_the_right_scale(trained):
    out, report = trained
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["action"] == report["action"]
    for group in ("action", "state"):
        assert set(report[group]) == {"r2", "mse", "scale", "bias"}
        assert all(len(v) == 2 for v in report[group].values())
    assert min(report["action"]["r2"]) > 0.85, report["action"]
    assert all(0.85 < s < 1.15 for s in report["action"]["scale"]), report["action"]
    assert min(report["state"]["r2"]) > 0.95, report["state"]
    assert (out / "model.safetensors").is_file() and (out / "plot.png").is_file()
    assert "edited" in report and report["training"]["best_epoch"] >= 1


def test_labels_are_calibrated_on_the_selection_episodes_and_judged_per_dimension(trained):
    out, report = trained
    config = json.loads((out / "config.json").read_text())
    calibration = config["calibration"]
    assert calibration["fitted_on"] == config["source"]["split"]["select"] != []
    assert len(calibration["scale"]) == len(calibration["bias"]) == 2
    assert calibration == report["training"]["calibration"]
    assert len(calibration["fitted_on"]) >= 3 and calibration["weight"] == 1.0  # enough selection: as fitted
    assert calibration["scale"] == calibration["fitted"]["scale"] and calibration["bias"] == calibration["fitted"]["bias"]
    assert set(report["action_uncalibrated"]) == {"r2", "mse", "scale", "bias"}
    weights = config["uncertainty"]  # the uncertainty's parts, weighed on the same selection episodes
    assert weights["fitted_on"] == calibration["fitted_on"] and weights == report["training"]["uncertainty"]
    assert weights["error_head"] > 0 and weights["disagreement"] > 0
    assert [v["dimension"] for v in report["trust"]] == ["dx", "dy"]
    for verdict, r2, scale in zip(report["trust"], report["action"]["r2"], report["action"]["scale"]):
        assert verdict["trust"] == (r2 >= 0.9 and 0.9 <= scale <= 1.1)
        assert verdict["trust"] or verdict["why"]


def test_checkpoint_config_holds_features_stats_and_split(trained, blob_dataset):
    out, report = trained
    config = json.loads((out / "config.json").read_text())
    assert config["features"]["action"] == {"dtype": "float32", "shape": [2], "names": ["dx", "dy"]}
    assert config["features"]["observation.state"]["names"] == ["x", "y"]
    stats = json.loads((blob_dataset / "meta" / "stats.json").read_text())
    np.testing.assert_allclose(config["action"]["mean"], stats["action"]["mean"], rtol=1e-6)
    split = config["source"]["split"]
    assert not set(split["val"]) & set(split["train"] + split["select"])
    assert report["training"]["split"] == split


def test_idm_stage_labels_in_dataset_units_with_uncertainty(trained, blob_dataset):
    from labelers.specs import IdmLabelSpec

    out, report = trained
    source = LeRobotSource(blob_dataset)
    val = report["training"]["split"]["val"][0]
    episode = source.read_episode(val)
    unlabelled = episode.replace(action=None, state=None, uid="gen-0")
    spec = IdmLabelSpec(checkpoint=str(out), device="cpu", mc_samples=4, seed=1)
    stage = spec.build()
    stage.setup()
    (labelled,) = stage([unlabelled])
    assert labelled.action.shape == episode.action.shape and labelled.action.dtype == np.float32
    assert np.abs(labelled.action - episode.action).mean() < 1.0  # steps are -3..3 px
    assert np.abs(labelled.state - episode.state).mean() < 2.0
    labels = labelled.provenance["labels"]
    assert labels["actions"] == "idm" and labels["uncertainty"]["method"] == "error-head"  # no MC pass needed
    assert 0 < labels["uncertainty"]["action"] < 1 and len(labels["uncertainty"]["action_per_dim"]) == 2
    per_step = labels["uncertainty"]["action_per_step"]
    assert len(per_step) == len(episode.action) and labels["uncertainty"]["action"] == pytest.approx(np.mean(per_step), abs=1e-3)
    (again,) = stage([unlabelled])  # the same seed and uid give the same labels and spread
    np.testing.assert_array_equal(again.action, labelled.action)
    assert again.provenance["labels"]["uncertainty"] == labels["uncertainty"]
    features = spec.output_features({"observation.images.top": source.features["observation.images.top"]})
    assert features["action"]["shape"] == [2] and features["observation.state"]["names"] == ["x", "y"]
    with pytest.raises(ValueError, match="needs camera.*observation.images.top"):
        stage([unlabelled.replace(frames={"observation.images.side": unlabelled.frames["observation.images.top"]})])


def test_idm_stage_drops_uncertain_episodes(trained, blob_dataset):
    from labelers.specs import IdmLabelSpec

    out, _ = trained
    episode = LeRobotSource(blob_dataset).read_episode(0)
    stage = IdmLabelSpec(checkpoint=str(out), device="cpu", mc_samples=3, max_uncertainty=1e-6).build()
    stage.setup()
    (dropped,) = stage([episode])
    assert "IDM action uncertainty" in dropped.provenance["dropped"]["reason"]


def test_error_head_learns_where_labels_cannot_be_read_off_the_frames(tmp_path):
    """Recorded actions are noisy only while the blob is left of centre: on validation episodes the
    per-step uncertainty the stage writes must be larger there and rank the label errors."""
    from scipy.stats import spearmanr

    from labelers.idm import _uncertainty
    from labelers.predictor import IdmPredictor
    from labelers.train import train_idm

    root = make_blob_dataset(tmp_path / "noisy", episodes=32, seed=3, noise_left=3.0)
    config = IdmConfig(**{**TINY, "epochs": 40, "patience": 40, "motion": "none", "calibrate": False})
    report = train_idm(str(root), str(tmp_path / "ckpt"), config, log=lambda *_: None)
    predictor = IdmPredictor.load(str(tmp_path / "ckpt"), "cpu")
    source = LeRobotSource(root)
    left, right, uncertain, errors = [], [], [], []
    for index in report["training"]["split"]["val"]:
        episode = source.read_episode(index)
        pred = predictor.predict(predictor.frames_to_video(episode.frames))
        per_step = np.asarray(_uncertainty(pred)["action_per_step"])
        is_left = episode.state[:, 0] < SIZE / 2
        left.extend(per_step[is_left])
        right.extend(per_step[~is_left])
        uncertain.extend(per_step)
        errors.extend(np.abs(predictor.action_norm.normalize(pred["action"]) -
                             predictor.action_norm.normalize(episode.action)).mean(axis=1))
    assert np.mean(left) > 1.5 * np.mean(right), (np.mean(left), np.mean(right))  # measured: 0.77 vs 0.38
    assert spearmanr(uncertain, errors).statistic > 0.3, spearmanr(uncertain, errors).statistic


def test_error_head_never_changes_the_labels_and_older_checkpoints_use_mc_dropout(blob_dataset, tmp_path):
    from safetensors.numpy import load_file

    from labelers.specs import IdmLabelSpec
    from labelers.train import train_idm

    quick = {**TINY, "epochs": 2, "episodes": ["0:12"], "motion": "none"}
    with_head = train_idm(str(blob_dataset), str(tmp_path / "a"), IdmConfig(**quick), log=lambda *_: None)
    without = train_idm(str(blob_dataset), str(tmp_path / "b"), IdmConfig(**quick, error_head=False), log=lambda *_: None)
    assert with_head["action"] == without["action"]  # the head reads detached features: the same labels
    wa, wb = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert {k for k in wa if k not in wb} and all(k.startswith("error_head.") for k in wa if k not in wb)
    assert all(np.array_equal(wa[k], wb[k]) for k in wb)
    config_path = tmp_path / "b" / "config.json"  # as a checkpoint written before the error head existed
    config = json.loads(config_path.read_text())
    del config["train"]["error_head"]
    config_path.write_text(json.dumps(config))
    stage = IdmLabelSpec(checkpoint=str(tmp_path / "b"), device="cpu", mc_samples=3).build()
    stage.setup()
    (labelled,) = stage([LeRobotSource(blob_dataset).read_episode(20).replace(action=None, state=None)])
    assert labelled.provenance["labels"]["uncertainty"]["method"] == "mc-dropout"


def test_idm_stage_in_a_pipeline_writes_a_labelled_dataset(trained, blob_dataset, tmp_path):
    from augment.local import run_local
    from augment.spec import load_spec

    out, _ = trained
    spec_path = tmp_path / "label.yaml"
    spec_path.write_text(f"name: label\nsource:\n  root: {blob_dataset}\n  episodes: [0, 1]\n"
                         f"stages:\n  - type: idm\n    checkpoint: {out}\n    device: cpu\n    mc_samples: 2\n"
                         f"sink:\n  root: {tmp_path / 'out'}\n")
    report = run_local(load_spec(spec_path), progress=False)
    assert report["episodes_out"] == 2
    info = json.loads((tmp_path / "out" / "meta" / "info.json").read_text())
    assert info["features"]["action"]["names"] == ["dx", "dy"]
    labelled = LeRobotSource(tmp_path / "out").read_episode(0)
    truth = LeRobotSource(blob_dataset).read_episode(0)
    assert labelled.action.shape == truth.action.shape
    assert not np.array_equal(labelled.action, truth.action)  # written by the IDM, not copied


def test_training_is_deterministic(blob_dataset, tmp_path):
    from safetensors.numpy import load_file

    from labelers.train import train_idm

    quick = IdmConfig(**{**TINY, "epochs": 2, "edit_variants": 1, "edit_prob": 0.5, "motion": "none"})  # RGB only
    a = train_idm(str(blob_dataset), str(tmp_path / "a"), quick, log=lambda *_: None)
    b = train_idm(str(blob_dataset), str(tmp_path / "b"), quick, log=lambda *_: None)
    assert a["action"] == b["action"] and a["edited"] == b["edited"]
    wa, wb = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    assert a["training"]["calibration"] == b["training"]["calibration"] and a["trust"] == b["trust"]


def test_flow_model_trains_deterministically_and_labels_through_the_stage(blob_dataset, tmp_path):
    from labelers.specs import IdmLabelSpec
    from labelers.train import train_idm

    assert IdmConfig().motion == "flow"  # the default
    quick = IdmConfig(**{**TINY, "epochs": 2, "episodes": ["0:12"]})
    a = train_idm(str(blob_dataset), str(tmp_path / "a"), quick, log=lambda *_: None)
    b = train_idm(str(blob_dataset), str(tmp_path / "b"), quick, log=lambda *_: None)
    assert a["action"] == b["action"] and a["training"]["calibration"] == b["training"]["calibration"]
    split = a["training"]["split"]
    assert sorted(split["train"] + split["select"] + split["val"]) == list(range(12))  # episodes=["0:12"]
    calibration = a["training"]["calibration"]  # one selection episode: a third of the fit is applied
    assert len(split["select"]) == 1 and calibration["weight"] == pytest.approx(1 / 3, abs=1e-4)
    np.testing.assert_allclose(calibration["scale"], 1 + (np.array(calibration["fitted"]["scale"]) - 1) / 3, rtol=1e-6)
    np.testing.assert_allclose(calibration["bias"], np.array(calibration["fitted"]["bias"]) / 3, rtol=1e-6)
    stage = IdmLabelSpec(checkpoint=str(tmp_path / "a"), device="cpu", mc_samples=2).build()
    stage.setup()
    episode = LeRobotSource(blob_dataset).read_episode(20)
    (labelled,) = stage([episode.replace(action=None, state=None)])
    assert labelled.action.shape == episode.action.shape and np.isfinite(labelled.action).all()


def test_cli_train_idm_reports_bad_settings(blob_dataset, tmp_path, capsys):
    from augment.cli import main

    assert main(["train-idm", "--dataset", str(blob_dataset), "--out", str(tmp_path / "x"),
                 "--set", "image_size=20"]) == 2
    assert "image_size" in capsys.readouterr().err
    assert main(["train-idm", "--dataset", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "not a LeRobot dataset" in capsys.readouterr().err


def test_cli_train_idm_writes_checkpoint_report_and_table(blob_dataset, tmp_path, capsys):
    from augment.cli import main

    out = tmp_path / "ckpt"
    sets = [f"{k}={json.dumps(v)}" for k, v in {**TINY, "epochs": 2, "edit_variants": 1}.items()]
    assert main(["train-idm", "--dataset", str(blob_dataset), "--out", str(out),
                 *[a for s in sets for a in ("--set", s)]]) == 0
    printed = capsys.readouterr().out
    assert "R2" in printed and "dx" in printed and "background edited" in printed
    assert "warning" not in printed  # 10 validation episodes
    report = json.loads((out / "report.json").read_text())
    assert len(report["action"]["scale"]) == 2 and len(report["edited"]["state"]["bias"]) == 2
    assert {p.name for p in out.iterdir()} >= {"model.safetensors", "config.json", "report.json", "plot.png",
                                                "plot_state.png"}


def test_few_validation_episodes_are_flagged(blob_dataset, tmp_path):
    from labelers.train import train_idm

    lines = []
    train_idm(str(blob_dataset), str(tmp_path / "ckpt"), IdmConfig(**{**TINY, "epochs": 1, "val_fraction": 0.05}),
              log=lines.append)
    assert any(line.startswith("warning: 40 episodes leave 2 for validation") for line in lines)


def test_future_change_is_the_picture_after_the_window_minus_its_last_frame():
    from labelers.pretrain import AHEAD, future_change, gray_frames

    video = np.zeros((1, 12, 8, 8, 5), np.uint8)
    video[:, :, :, :, :3] = (np.arange(12) * 20)[None, :, None, None, None]  # frame t is gray 20 t
    gray = gray_frames(video, 4)
    assert gray.shape == (1, 12, 4, 4) and gray[0, 3, 0, 0] == pytest.approx(60 / 255)
    change = future_change(gray, [0, 9], last=2).reshape(2, 1, len(AHEAD), 4, 4)
    np.testing.assert_allclose(change[0, 0, :, 0, 0], np.array(AHEAD) * 20 / 255, rtol=1e-5)  # frames 4, 6 minus 2
    np.testing.assert_allclose(change[1], 0)  # past the episode's end: the last frame repeats, no change


def test_pretraining_fits_the_trunks_within_the_budget_and_leaves_a_plain_checkpoint(blob_dataset, tmp_path):
    from safetensors.numpy import load_file

    from labelers.train import train_idm

    plain = IdmConfig(**{**TINY, "epochs": 2, "edit_variants": 1, "edit_prob": 0.5})
    pretrained = plain.model_copy(update={"pretrain": "future", "pretrain_steps": 60})
    lines = []
    report = train_idm(str(blob_dataset), str(tmp_path / "p"), pretrained, log=lines.append)
    done = report["training"]["pretrain"]
    assert done["objective"] == "future" and done["steps"] == 60 and done["loss_last"] < done["loss_first"]
    assert any(line.startswith("pretrain step") for line in lines)
    base = train_idm(str(blob_dataset), str(tmp_path / "b"), plain, log=lambda *_: None)
    assert base["training"]["pretrain"] is None
    wp, wb = load_file(str(tmp_path / "p" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert wp.keys() == wb.keys()  # the decoder is not part of the checkpoint
    assert not np.array_equal(wp["trunks.0.0.0.weight"], wb["trunks.0.0.0.weight"])
    assert np.isfinite(report["action"]["r2"]).all()


def test_pretraining_stops_at_its_share_of_the_time_budget(blob_dataset, tmp_path):
    from labelers.train import train_idm

    config = IdmConfig(**{**TINY, "epochs": 1, "episodes": ["0:6"], "pretrain": "future", "pretrain_steps": 100000,
                          "max_minutes": 0.05})  # a quarter of 3 s: a handful of steps
    lines = []
    report = train_idm(str(blob_dataset), str(tmp_path / "p"), config, log=lines.append)
    assert 1 <= report["training"]["pretrain"]["steps"] < 100000
    assert any(line.startswith("pretrain: time share reached") for line in lines)
