"""The rollout recipe (DreamGen) end to end, on the CPU, with every stage real and chained:

    lerobot-written source -> add_object (paste an RGBA asset on the first frame)
    -> cogvideox-i2v (tiny random-weight pipeline, 2 samples per edit)
    -> idm (a checkpoint trained here by labelers' own train_idm) -> consistency -> sink (top_k 1)

run in-process and through Ray. The models are tiny and random, so nothing here measures quality;
it checks the contracts between the stages: what the output dataset holds, where each number came
from (provenance), best-of-N ranking, refusal to overwrite and determinism.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from augment.local import run_local
from augment.spec import load_spec
from augment.stage import derive_seed

FRONT = "observation.images.front"
STAGES = ["add_object", "cogvideox-i2v", "idm", "consistency"]
SOURCE_EPISODES = [0, 1]  # lengths 12 and 15 in conftest's dataset
CLIP_FRAMES, MODEL_FPS = 9, 8  # one 9-frame clip at 8 fps ...
SOURCE_FPS = 10  # ... resampled to the dataset's 10 fps
SAMPLES = 2

# The smallest IDM that trains: it only has to be a valid checkpoint; accuracy is tested in test_labelers*.
TINY_IDM = dict(cameras=[FRONT], image_size=16, offsets=[0, 1], width=4, hidden=8, epochs=1, patience=1,
                edit_variants=0, edit_prob=0.0, device="cpu", num_threads=1, plot_episodes=0)


def write_asset(folder: Path) -> Path:
    """One RGBA asset: a yellow disc on a transparent square."""
    from PIL import Image

    folder.mkdir(parents=True)
    yy, xx = np.mgrid[0:24, 0:24]
    alpha = ((yy - 12) ** 2 + (xx - 12) ** 2 < 110).astype(np.uint8) * 255
    rgba = np.dstack([np.full_like(alpha, 245), np.full_like(alpha, 210), np.full_like(alpha, 20), alpha])
    Image.fromarray(rgba, "RGBA").save(folder / "yellow_ball.png")
    return folder


def rollout_spec(path: Path, source: Path, sink: Path, models: dict) -> Path:
    """The shape of pipelines/rollout_dreamgen.yaml, pointed at the tiny models.

    Each stage's actor pool holds its num_cpus for the whole job, and Ray Data starts every pool at once:
    with four 1-CPU stages on a 2-CPU machine the idm and consistency actors can take both CPUs before the
    generator's starts, and the job waits forever. So the stages ask for 0.25 CPU, the sink for 0.5."""
    spec = {
        "name": "rollout-dreamgen-test",
        "seed": 0,
        "source": {"root": str(source), "episodes": SOURCE_EPISODES},
        "stages": [
            {"type": "add_object", "mode": "paste", "assets": str(models["assets"]), "apply_to": "first",
             "cameras": [FRONT],
             # the fixture's backdrop is a saturated gradient: "strongly coloured" would make it all foreground
             "segmenter": {"saturation_threshold": None}, "resources": {"num_cpus": 0.25}},
            {"type": "cogvideox-i2v", "model": str(models["generator"]), "dtype": "float32", "device": "cpu",
             "camera": FRONT, "num_frames": CLIP_FRAMES, "model_fps": MODEL_FPS, "max_clips": 1,
             "num_inference_steps": 2, "max_sequence_length": 16, "samples_per_edit": SAMPLES,
             "resources": {"num_cpus": 0.25}},
            {"type": "idm", "checkpoint": str(models["idm"]), "device": "cpu", "mc_samples": 4,
             "resources": {"num_cpus": 0.25}},
            {"type": "consistency", "thresholds": {"min_score": 0.0, "min_check": {}},  # lenient: rank, never drop
             "resources": {"num_cpus": 0.25}},
        ],
        "sink": {"root": str(sink), "top_k": 1, "episodes_per_file": 2, "num_cpus": 0.5},
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def models(source_dataset, tmp_path_factory):
    from tiny_models import save_tiny_pipeline
    from labelers.config import IdmConfig
    from labelers.train import train_idm

    base = tmp_path_factory.mktemp("recipe")
    train_idm(str(source_dataset["root"]), str(base / "idm"), IdmConfig(**TINY_IDM), log=lambda *_: None)
    return {"idm": base / "idm", "generator": save_tiny_pipeline("cogvideox-i2v", base / "generator"),
            "assets": write_asset(base / "assets"), "base": base}


def read_output(root: Path) -> dict:
    """What a run wrote, read with pyarrow (independent of the writer's own code)."""
    data = pq.read_table(sorted((root / "data").rglob("*.parquet"))).to_pydict()
    episodes = pq.read_table(sorted((root / "meta" / "episodes").rglob("*.parquet"))).to_pylist()
    out = {"info": json.loads((root / "meta" / "info.json").read_text()),
           "report": json.loads((root / "meta" / "augment_report.json").read_text()), "episodes": []}
    index = np.asarray(data["episode_index"])
    for row in episodes:
        rows = index == row["episode_index"]
        out["episodes"].append({
            "uid": row["augment/uid"], "length": row["length"],
            "provenance": json.loads(row["augment/provenance"]),
            "action": np.asarray(data["action"], dtype=np.float32)[rows],
            "state": np.asarray(data["observation.state"], dtype=np.float32)[rows],
        })
    return out


@pytest.fixture(scope="module")
def local_run(models, source_dataset):
    spec_path = rollout_spec(models["base"] / "spec.yaml", source_dataset["root"], models["base"] / "out", models)
    report = run_local(load_spec(spec_path), progress=False)
    return {"spec": spec_path, "root": models["base"] / "out", "report": report,
            "output": read_output(models["base"] / "out")}


def expected_length(source_length: int) -> int:
    """Output steps i / SOURCE_FPS whose nearest model frame (i * MODEL_FPS / SOURCE_FPS, rounded) exists."""
    nearest = np.floor(np.arange(source_length) * MODEL_FPS / SOURCE_FPS + 0.5)
    return int((nearest < CLIP_FRAMES).sum())


def test_local_run_keeps_the_best_rollout_per_edit_as_a_lerobot_dataset(local_run, models, source_dataset):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root, out = local_run["root"], local_run["output"]
    ckpt = json.loads((models["idm"] / "config.json").read_text())["features"]

    # lerobot loads it and decodes every frame
    ds = LeRobotDataset("local/augmented", root=root)
    assert ds.num_episodes == len(SOURCE_EPISODES) * 1  # source episodes x top_k
    assert list(ds.meta.video_keys) == [FRONT]  # the wrist camera's real frames would contradict the rollout
    for i in range(ds.num_frames):
        item = ds[i]
        assert tuple(item[FRONT].shape) == (3, 48, 64)
        assert tuple(item["action"].shape) == tuple(ckpt["action"]["shape"])
        assert tuple(item["observation.state"].shape) == tuple(ckpt["observation.state"]["shape"])
    assert "observation.environment_state" not in out["info"]["features"]

    recorded = source_dataset["episodes"]
    for index, episode in zip(SOURCE_EPISODES, out["episodes"]):
        prov = episode["provenance"]
        source_uid = f"ep{index:06d}"
        assert episode["uid"].startswith(source_uid + "-s")
        # 11 steps at 10 fps are what one 9-frame clip at 8 fps covers (cut short of the 12 / 15 source steps)
        n = expected_length(len(recorded[index]["action"]))
        generated = prov["stages"][1]
        assert episode["length"] == n == generated["frames"] == 11 and generated["cut_short"]
        assert episode["action"].shape == (n, *ckpt["action"]["shape"])
        assert episode["state"].shape == (n, *ckpt["observation.state"]["shape"])
        assert np.isfinite(episode["action"]).all() and episode["action"].std() > 0

        # provenance: the edit, the generator's seed, the IDM's uncertainty, the verifier's scores
        assert [s["stage"] for s in prov["stages"]] == STAGES
        assert prov["source"]["episode_index"] == index
        edit = prov["stages"][0]["cameras"][FRONT]
        assert edit["objects"] == ["yellow ball"] and edit["mode"] == "paste" and len(edit["boxes"]) == 1
        sample = prov["generator"]["sample"]
        assert prov["generator"]["seed"] == derive_seed(0, source_uid, source_uid, sample) == generated["seed"]
        assert prov["rank_group"] == f"{source_uid}/{source_uid}"
        uncertainty = prov["labels"]["uncertainty"]
        assert prov["labels"]["actions"] == "idm" and uncertainty["method"] == "error-head"
        assert uncertainty["action"] > 0 and len(uncertainty["action_per_dim"]) == ckpt["action"]["shape"][0]
        assert len(uncertainty["action_per_step"]) == n and min(uncertainty["action_per_step"]) > 0
        scores = prov["scores"]
        assert 0 <= scores["total"] <= 1 and scores["total"] == scores["consistency"]
        assert {"consistency/frozen", "consistency/action"} <= set(scores)

    # the pasted object survives the rollout: output frame 0 is the edited frame, pinned
    first = ds[0][FRONT].permute(1, 2, 0).numpy() * 255
    x0, y0, x1, y1 = out["episodes"][0]["provenance"]["stages"][0]["cameras"][FRONT]["boxes"][0]
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    centre = first[cy - 1:cy + 2, cx - 1:cx + 2].reshape(-1, 3).mean(0)
    assert centre[0] > 170 and centre[1] > 140 and centre[2] < 110, centre  # yellow, not the backdrop

    # the other sample of each edit was ranked out, with its scores, in the job report
    report = out["report"]
    assert report["episodes_out"] == len(SOURCE_EPISODES)
    ranked_out = {d["source_uid"]: d for d in report["dropped"]}
    assert len(report["dropped"]) == len(SOURCE_EPISODES)
    for episode in out["episodes"]:
        prov = episode["provenance"]
        source_uid = f"ep{prov['source']['episode_index']:06d}"
        loser = ranked_out[source_uid]
        assert loser["stage"] == "rank" and loser["reason"].startswith("rank 2 of 2")
        assert {loser["uid"], episode["uid"]} == {f"{source_uid}-s0", f"{source_uid}-s1"}
        assert loser["scores"]["total"] <= prov["scores"]["total"]


def test_ray_run_writes_the_same_episodes(local_run, models):
    from augment.runner import run_ray

    sink = models["base"] / "out_ray"
    report = run_ray(load_spec(local_run["spec"], [f"sink.root={sink}"]))
    ray_out, local_out = read_output(sink), local_run["output"]
    assert report["episodes_out"] == len(SOURCE_EPISODES)
    assert [e["uid"] for e in ray_out["episodes"]] == [e["uid"] for e in local_out["episodes"]]
    assert sorted(d["uid"] for d in ray_out["report"]["dropped"]) == \
        sorted(d["uid"] for d in local_out["report"]["dropped"])
    assert ray_out["info"]["features"] == local_out["info"]["features"]
    for a, b in zip(ray_out["episodes"], local_out["episodes"]):
        assert a["provenance"]["generator"] == b["provenance"]["generator"]
        # same seeds; Ray's actors may use another torch thread count, so allow float reordering
        np.testing.assert_allclose(a["action"], b["action"], atol=1e-5)
        np.testing.assert_allclose(a["state"], b["state"], atol=1e-5)


def test_rerun_refuses_a_finished_dataset_and_overwrite_reproduces_it(local_run, models, capsys):
    from augment.cli import main

    root = models["base"] / "out_rerun"
    shutil.copytree(local_run["root"], root)
    args = ["run", str(local_run["spec"]), "--local", "--quiet", "--set", f"sink.root={root}"]
    assert main(args) == 2
    assert "already holds a finished dataset" in capsys.readouterr().err

    assert main([*args, "--set", "sink.overwrite=true"]) == 0
    again, first = read_output(root), local_run["output"]
    assert [e["uid"] for e in again["episodes"]] == [e["uid"] for e in first["episodes"]]
    for a, b in zip(again["episodes"], first["episodes"]):
        assert np.array_equal(a["action"], b["action"]) and np.array_equal(a["state"], b["state"])
        assert a["provenance"]["scores"] == b["provenance"]["scores"]


def test_committed_dreamgen_spec_validates(models, source_dataset):
    """pipelines/rollout_dreamgen.yaml, with what the user must supply pointed at the tiny stand-ins."""
    path = Path(__file__).parent.parent / "pipelines" / "rollout_dreamgen.yaml"
    spec = load_spec(path, [f"source.root={source_dataset['root']}", f"stages.0.assets={models['assets']}",
                            f"stages.2.checkpoint={models['idm']}"])
    assert [s.type for s in spec.stages] == ["add_object", "wan-i2v", "idm", "consistency"]
    assert spec.stages[0].apply_to == "first" and spec.stages[1].samples_per_edit > 1 and spec.sink.top_k == 1
    assert spec.stages[1].camera in (spec.source.cameras or [spec.stages[1].camera])
