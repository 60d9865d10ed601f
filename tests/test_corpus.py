"""Every member of the conformance corpus (tests/corpus.py, written by lerobot's own API) through
pipelines/copy.yaml and pipelines/demo.yaml, on both runners. The output must load in lerobot and
return every frame, hold the source's non-video values exactly, have the data schema lerobot
writes, merge with its source through aggregate_datasets, and read with ray.data.read_lerobot."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from augment.local import run_local
from augment.runner import run_ray
from augment.spec import SpecError, load_spec
from corpus import FULL_MEMBERS, MEMBERS, build

REPO = Path(__file__).resolve().parents[1]
FAST = [m.name for m in MEMBERS]
SLOW = [m.name for m in FULL_MEMBERS if m not in MEMBERS]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Datasets are written on first use, once per test session."""
    folder = tmp_path_factory.mktemp("corpus")
    built: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in built:
            member = next(m for m in FULL_MEMBERS if m.name == name)
            built[name] = build(member, folder / name)
        return built[name]

    return get


@pytest.fixture(scope="module")
def ray_cluster():
    """One embedded Ray for the module: both runners' outputs are read back with ray.data.read_lerobot."""
    import ray

    ray.shutdown()
    ray.init(address="local", num_cpus=8, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def run(pipeline: str, runner: str, source: Path, out: Path) -> dict:
    overrides = [f"source.root={source}", f"sink.root={out}"]
    if pipeline == "demo":  # its review pages go beside the output, not into the checkout's out/
        overrides.append(f"stages.0.review_dir={out.parent / 'review'}")
    spec = load_spec(REPO / "pipelines" / f"{pipeline}.yaml", overrides)
    return run_local(spec, progress=False) if runner == "local" else run_ray(spec)


def frame_value(item, key: str) -> np.ndarray:
    value = item[key]
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def check_faithful(data: dict, out: Path, variants: int) -> None:
    """...and every frame of a camera whose packets were copied decodes to the source's frame, bit for bit."""
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    member, recorded = data["member"], data["episodes"]
    src = LeRobotDataset("corpus/src", root=data["root"])
    ds = LeRobotDataset("corpus/out", root=out)
    assert ds.num_episodes == variants * len(recorded)
    assert ds.fps == member.fps and ds.meta.robot_type == member.robot_type
    table = pa.concat_tables([pq.read_table(f) for f in sorted((out / "data").glob("chunk-*/file-*.parquet"))])
    seen = []
    for i in range(ds.num_episodes):
        meta = ds.meta.episodes[i]
        source_index = json.loads(meta["augment/provenance"])["source"]["episode_index"]
        seen.append(source_index)
        rec = recorded[source_index]
        start, n = meta["dataset_from_index"], meta["length"]
        assert n == rec["length"]
        items = [ds[start + t] for t in range(n)]  # every frame loads, cameras decoded
        copied = [k for k, v in json.loads(meta["augment/provenance"]).get("video", {}).items() if v["copied"]]
        if copied:
            source_start = src.meta.episodes[source_index]["dataset_from_index"]
            for t in range(n):
                theirs = src[source_start + t]
                for key in copied:
                    assert torch.equal(items[t][key], theirs[key]), f"{out}: {key}, episode {i}, frame {t}"
        rows = table.filter(pc.equal(table["episode_index"], i))
        for key, values in rec["numeric"].items():
            # In the files: the recorded values, bit for bit, in the recorded dtype.
            stored = np.array(rows[key].to_pylist())
            assert stored.dtype.kind == values.dtype.kind, key
            np.testing.assert_array_equal(stored.astype(values.dtype).reshape(values.shape), values,
                                          err_msg=f"{out}: {key}, episode {i}")
            # Through lerobot's loader (which hands float64 out as float32, for ours as for the source).
            got = np.stack([frame_value(it, key) for it in items]).reshape(values.shape)
            np.testing.assert_array_equal(got, values.astype(got.dtype), err_msg=f"{out}: {key}, episode {i}")
        for cam in member.cameras:
            assert tuple(items[0][cam.key].shape) == (3, *cam.size)
        assert [it["task"] for it in items] == [rec["task"]] * n
        assert [frame_value(it, "frame_index").item() for it in items] == list(range(n))
        np.testing.assert_allclose([frame_value(it, "timestamp").item() for it in items],
                                   np.arange(n) / member.fps, atol=1e-6)
    assert sorted(seen) == sorted(list(range(len(recorded))) * variants)


def check_schema_is_lerobots(source: Path, out: Path) -> None:
    """The data files' Arrow schema (types and Hugging Face features) is the one lerobot wrote."""
    theirs = pq.read_schema(next((source / "data").glob("chunk-*/file-*.parquet")))
    for path in (out / "data").glob("chunk-*/file-*.parquet"):
        ours = pq.read_schema(path)
        assert ours.equals(theirs, check_metadata=False), f"{path}:\n{ours}\n!=\n{theirs}"
        hf = lambda s: json.loads(s.metadata[b"huggingface"])["info"]["features"]  # noqa: E731
        assert hf(ours) == hf(theirs)


def check_episodes_start_on_key_frames(out: Path) -> None:
    """As in lerobot's files: an episode's first frame is a key frame, so no episode is predicted from
    the one before it (which would leak pixels across episodes and break lerobot's remuxing merge)."""
    import av
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("corpus/out", root=out)
    for key in ds.meta.video_keys:
        starts: dict[Path, set[float]] = {}
        for i in range(ds.num_episodes):
            meta = ds.meta.episodes[i]
            path = out / ds.meta.get_video_file_path(i, key)
            starts.setdefault(path, set()).add(round(meta[f"videos/{key}/from_timestamp"], 4))
        for path, times in starts.items():
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                keys = {round(float(p.pts * stream.time_base), 4) for p in container.demux(stream)
                        if p.pts is not None and p.is_keyframe}
            assert times <= keys, f"{path}: episodes start at {sorted(times - keys)} s on non-key frames"


def check_merges_and_reads(source: Path, out: Path, tmp_path: Path) -> None:
    import ray.data
    from lerobot.datasets.aggregate import aggregate_datasets
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    src, ours = LeRobotDataset("corpus/src", root=source), LeRobotDataset("corpus/out", root=out)
    merged_root = tmp_path / "merged"
    aggregate_datasets(["corpus/src", "corpus/out"], "corpus/merged", roots=[source, out], aggr_root=merged_root)
    merged = LeRobotDataset("corpus/merged", root=merged_root)
    assert len(merged) == len(src) + len(ours) and merged.num_episodes == src.num_episodes + ours.num_episodes
    for i in range(merged.num_episodes):  # the first and last frame of every merged episode load
        meta = merged.meta.episodes[i]
        merged[meta["dataset_from_index"]], merged[meta["dataset_to_index"] - 1]
    assert ray.data.read_lerobot(str(out)).count() == len(ours)


def check_member(name, pipeline, runner, corpus, tmp_path):
    data = corpus(name)
    out = tmp_path / "out"
    if pipeline == "demo" and not data["member"].cameras:
        with pytest.raises(SpecError, match="the dataset has none"):
            run(pipeline, runner, data["root"], out)
        assert not out.exists()  # refused before anything was written
        return
    report = run(pipeline, runner, data["root"], out)
    variants = 2 if pipeline == "demo" else 1
    assert report["episodes_out"] == variants * len(data["episodes"]) and report["dropped"] == []
    videos = [c.key for c in data["member"].cameras if c.stored == "video"]
    edited = report["resolved"].get("background", {}).get("cameras", [])
    # Every video camera no stage changed is copied, in every episode (check_faithful compares the frames).
    assert report["resolved"].get("sink", {}).get("copied", []) == [c for c in videos if c not in edited]
    with_video = [json.loads(r)["video"] for r in pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet")
                  ["augment/provenance"].to_pylist() if "video" in json.loads(r)]
    assert all(v[c] == {"copied": True} for v in with_video for c in videos if c not in edited)
    # An edited video camera is streamed (the background edit surveys, then edits chunk by chunk) and says so.
    streamed = report["resolved"].get("sink", {}).get("streamed", {}).get("cameras", [])
    assert all(c in streamed for c in videos if c in edited)
    assert all(v[c] == {"copied": False, "why": "changed by a per-frame stage, encoded chunk by chunk"}
               for v in with_video for c in streamed)
    assert len(with_video) == (report["episodes_out"] if len(edited) < len(videos) or streamed else 0)
    check_faithful(data, out, variants)
    check_schema_is_lerobots(data["root"], out)
    check_episodes_start_on_key_frames(out)
    check_merges_and_reads(data["root"], out, tmp_path)


@pytest.mark.parametrize("runner", ["local", "ray"])
@pytest.mark.parametrize("pipeline", ["copy", "demo"])
@pytest.mark.parametrize("name", FAST)
def test_member(name, pipeline, runner, corpus, tmp_path, ray_cluster):
    check_member(name, pipeline, runner, corpus, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["local", "ray"])
@pytest.mark.parametrize("pipeline", ["copy", "demo"])
@pytest.mark.parametrize("name", SLOW)
def test_large_member(name, pipeline, runner, corpus, tmp_path, ray_cluster):
    check_member(name, pipeline, runner, corpus, tmp_path)


@pytest.mark.parametrize("name", FAST)
def test_check_judges_every_episode_of_a_lerobot_dataset(name, corpus, capsys):
    """`augment check` on lerobot-written data, as recorded (pusht has a one-frame episode): a verdict
    per episode and exit 0 (clean recordings), never a traceback."""
    from augment.cli import main

    data = corpus(name)
    code = main(["check", str(data["root"]), "--json"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert sorted(r["episode_index"] for r in lines) == list(range(len(data["episodes"])))
    assert code == 0, [r for r in lines if not r["passed"]]


def test_train_verifier_leaves_out_episodes_too_short_to_corrupt(corpus, tmp_path):
    # lerobot's pusht member has a one-frame episode: the corruption generator has nothing to cut there
    from verifiers.learned import MIN_FRAMES, train_verifier

    data = corpus("pusht")
    logs: list[str] = []
    report = train_verifier(data["root"], tmp_path / "v", log=logs.append)
    assert data["episodes"][0]["length"] < MIN_FRAMES <= min(e["length"] for e in data["episodes"][1:])
    assert any(line.startswith("skipped 1 episode") and "[0]" in line for line in logs)
    assert report["episodes"] == 2 and (tmp_path / "v" / "verifier.json").is_file()
    with pytest.raises(ValueError, match="no episode has 8 frames or more"):
        train_verifier(data["root"], tmp_path / "w", episodes=1, log=logs.append)


def test_demo_edits_the_fixed_camera_and_says_why(corpus, tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    data = corpus("aloha")
    report = run("demo", "local", data["root"], tmp_path / "out")
    chosen = report["resolved"]["background"]
    assert chosen["cameras"] == ["observation.images.cam_high"]
    assert "moving" in chosen["why"]["observation.images.cam_left_wrist"]
    assert "fixed" in chosen["why"]["observation.images.cam_high"]
    ds = LeRobotDataset("corpus/out", root=tmp_path / "out")
    records = json.loads(ds.meta.episodes[0]["augment/provenance"])["stages"]
    assert list(records[0]["background"]) == ["observation.images.cam_high"]
    spec_text = (tmp_path / "out" / "meta" / "augment_spec.yaml").read_text()
    assert "- observation.images.cam_high" in spec_text  # the resolved spec says what ran


@pytest.mark.parametrize("name, camera", [("aloha", "observation.images.cam_high"),
                                          ("metaworld", "observation.image")])
def test_surface_retextures_a_saturated_table_not_the_wall(name, camera, corpus):
    """The corpus's table is brown wood of HSV saturation 0.53: strongly coloured, as the survey calls a
    coloured robot, so no growth entered it and `surface` re-textured the wall the arm moves over instead
    (a quarter to a third of the frame). A coloured group that covers a quarter of the frame or more and
    hardly moves is a table now. Truth from the scene's own geometry: the table is the rows below 45%."""
    from augment.source import LeRobotSource
    from editors.specs import SurfaceSpec

    episode = LeRobotSource(corpus(name)["root"]).read_episode(1)
    stage = SurfaceSpec(cameras=[camera]).build()
    stage.setup()
    [edited] = stage([episode])
    source, new = episode.frames[camera], edited.frames[camera]
    h = source.shape[1]
    changed = (np.abs(source.astype(int) - new.astype(int)).max(axis=-1) > 12)
    wall, table = changed[:, : int(h * 0.45) - 1], changed[:, int(h * 0.45) + 2:]
    assert wall.mean() <= 0.02, wall.mean()  # was 0.57 (aloha) and 0.69 (metaworld), now 0
    assert table.mean() >= 0.8, table.mean()  # was 0.002 and 0, now 0.95 and 0.91


@pytest.mark.parametrize("override, message", [
    ("stages.0.cameras=[observation.images.top]",
     "camera(s) ['observation.images.top'] not in the dataset; it has ['observation.images.front']"),
    ("stages.1.require_state=true", "needs feature(s) ['observation.state'], which the dataset lacks; it has "
                                    "['action', 'next.reward']"),
    ("source.episodes=[7]", "episode 7 does not exist; the dataset has episodes 0..1"),
    ("source.cameras=[observation.images.cam_high]", "unknown camera(s) ['observation.images.cam_high']"),
])
def test_what_the_source_lacks_is_an_error_before_anything_runs(corpus, tmp_path, capsys, override, message):
    from augment.cli import main

    data = corpus("no_state")
    argv = ["pipelines/demo.yaml", "--set", f"source.root={data['root']}", "--set", f"sink.root={tmp_path / 'o'}",
            "--set", override]
    for command in (["validate"], ["run"]):  # `run` without --local: refused before Ray starts
        code = main([*command, *[str(REPO / argv[0])], *argv[1:]])
        text = capsys.readouterr().err
        assert code == 2 and text.startswith("error: ") and message in text, text
    assert not (tmp_path / "o").exists()


def test_validate_reports_the_cameras_it_chose(corpus, capsys):
    from augment.cli import main

    data = corpus("chunked")
    assert main(["validate", str(REPO / "pipelines/demo.yaml"), "--set", f"source.root={data['root']}"]) == 0
    out = capsys.readouterr().out
    assert '"cameras": ["observation.images.top"]' in out and "moving" in out


def test_source_labeller_requires_what_the_dataset_records(corpus, tmp_path):
    """`type: source` keeps the recorded labels: a dataset without action runs (nothing to keep),
    and asking for actions it does not have is refused up front."""
    data = corpus("no_action")
    report = run("demo", "local", data["root"], tmp_path / "out")
    assert report["episodes_out"] == 4
    spec = load_spec(REPO / "pipelines/demo.yaml", [f"source.root={data['root']}", f"sink.root={tmp_path / 'x'}",
                                                    "stages.1.require_action=true"])
    with pytest.raises(SpecError, match=r"stages\[1\] \(source\): needs feature\(s\) \['action'\]"):
        run_local(spec, progress=False)


def test_corpus_script_writes_the_fast_set(tmp_path):
    import subprocess
    import sys

    shutil.rmtree(tmp_path / "c", ignore_errors=True)
    done = subprocess.run([sys.executable, str(REPO / "tests/corpus.py"), "--out", str(tmp_path / "c")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == sorted(FAST)
    chunked = tmp_path / "c" / "chunked"
    assert len(list((chunked / "data").glob("chunk-*/file-*.parquet"))) >= 3
    assert len(list((chunked / "data").glob("chunk-*"))) >= 2

