"""Per-frame stages streamed in chunks through the writer (augment/stream.py) against whole episodes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from augment.local import run_local
from augment.source import LeRobotSource
from augment.spec import load_spec
from conftest import write_spec
from editors.background import BackgroundStage
from editors.lighting import LightingStage
from editors.specs import LightingSpec

# A lossless sink (x264 at crf 0), so that two runs' decoded frames are equal exactly when the frames
# the stages handed the encoder were: the chunked path must give the whole-episode path's frames.
LOSSLESS = "  codec: h264\n  crf: 0\n"


def _spy(monkeypatch, stage_class) -> list[int]:
    """Episode lengths the stage is called with, from now on."""
    seen: list[int] = []
    call = stage_class.__call__

    def spy(self, episodes):
        seen.extend(e.length for e in episodes)
        return call(self, episodes)

    monkeypatch.setattr(stage_class, "__call__", spy)
    return seen


def _run(tmp_path, name: str, source: dict, stages: str) -> dict[int, dict]:
    """Run the stages; return the output's episodes as read back, and note how it ran in `_run.notes`."""
    spec_path = write_spec(tmp_path / f"{name}.yaml", source["root"], tmp_path / name, stages)
    spec_path.write_text(spec_path.read_text() + LOSSLESS)
    report = run_local(load_spec(spec_path), progress=False)
    _run.notes = report["resolved"]["sink"].get("streamed")
    out = LeRobotSource(tmp_path / name)
    episodes = {i: out.read_episode(i) for i in out.select(None)}
    assert report["episodes_out"] == len(episodes)
    return episodes


@pytest.mark.parametrize("fixture", ["source_dataset", "image_dataset"])
def test_chunks_give_the_whole_episode_frames(fixture, request, tmp_path, monkeypatch):
    source = request.getfixturevalue(fixture)
    stages = "  - type: lighting\n    variants: 2\n  - type: source\n"
    monkeypatch.setattr("augment.stream.CHUNK_FRAMES", 5)  # 12 frames: chunks of 5, 5 and 2
    seen = _spy(monkeypatch, LightingStage)
    chunked = _run(tmp_path, "chunked", source, stages)
    lengths = [len(e["state"]) for e in source["episodes"]]
    assert max(seen) == 5 and sum(seen) == sum(lengths)  # called on chunks, every frame once
    assert _run.notes["stages"] == ["lighting", "source"]
    meta = LeRobotSource(tmp_path / "chunked").episodes[0]
    video = json.loads(meta["augment/provenance"])["video"]
    assert all(v == {"copied": False, "why": "changed by a per-frame stage, encoded chunk by chunk"}
               for v in video.values()) and video
    seen.clear()
    monkeypatch.setattr(LightingSpec, "whole_episode", True)
    whole = _run(tmp_path, "whole", source, stages)
    assert sorted(seen) == sorted(lengths)  # now on whole episodes
    assert _run.notes["stages"] == ["source"]
    assert chunked.keys() == whole.keys() and len(whole) == 2 * len(lengths)
    for i, a in chunked.items():
        b = whole[i]
        assert a.frames.keys() == b.frames.keys()
        for key in a.frames:
            np.testing.assert_array_equal(a.frames[key], b.frames[key])
        np.testing.assert_array_equal(a.action, b.action)
        np.testing.assert_array_equal(a.state, b.state)
        src = LeRobotSource(source["root"]).read_episode(i // 2)
        assert not np.array_equal(a.frames[next(iter(a.frames))], src.frames[next(iter(src.frames))])  # relit


def test_a_whole_episode_stage_gets_whole_episodes(source_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr("augment.stream.CHUNK_FRAMES", 4)
    whole, chunks = _spy(monkeypatch, BackgroundStage), _spy(monkeypatch, LightingStage)
    # with a model segmenter (here its weight-free kind) the background edit needs whole episodes
    stages = ("  - type: background\n    cameras: [observation.images.front]\n    segmenter: {kind: motion}\n"
              "  - type: lighting\n  - type: source\n")
    episodes = _run(tmp_path, "bg", source_dataset, stages)
    lengths = [len(e["state"]) for e in source_dataset["episodes"]]
    assert whole == lengths  # the segmenter sees every frame of an episode at once
    assert max(chunks) == 4 and sum(chunks) == sum(lengths)  # the light after it, in chunks
    assert [e.length for e in episodes.values()] == lengths


def test_the_ray_runner_streams_the_tail_in_its_writers(source_dataset, tmp_path, monkeypatch):
    import ray

    from augment.runner import run_ray

    ray.shutdown()
    monkeypatch.setenv("AUGMENT_CHUNK_FRAMES", "5")  # the embedded Ray's workers inherit it
    monkeypatch.setattr("augment.stream.CHUNK_FRAMES", 5)
    stages = "  - type: lighting\n    variants: 2\n  - type: source\n"
    try:
        spec_path = write_spec(tmp_path / "ray.yaml", source_dataset["root"], tmp_path / "ray", stages)
        spec_path.write_text(spec_path.read_text() + LOSSLESS)
        report = run_ray(load_spec(spec_path))
    finally:
        ray.shutdown()
    assert report["resolved"]["sink"]["streamed"]["stages"] == ["lighting", "source"]
    assert set(report["seconds_per_stage"]) == {"read", "lighting", "source"}
    local = _run(tmp_path, "local", source_dataset, stages)
    out = LeRobotSource(tmp_path / "ray")
    for i, b in local.items():
        a = out.read_episode(i)
        for key in b.frames:
            np.testing.assert_array_equal(a.frames[key], b.frames[key])


def _lerobot_frames(root) -> dict[int, dict[str, np.ndarray]]:
    """Every episode's frames per camera as lerobot's own loader decodes them (float, C x H x W)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("test/out", root=root)
    out = {}
    for i in range(ds.num_episodes):
        meta = ds.meta.episodes[i]
        items = [ds[t] for t in range(meta["dataset_from_index"], meta["dataset_to_index"])]
        out[i] = {k: np.stack([item[k].numpy() for item in items]) for k in ds.meta.video_keys}
    return out


@pytest.fixture(scope="module")
def room_dataset(tmp_path_factory) -> dict:
    """tests/corpus.py's room (a wall, a table, an arm pushing a red block), written by lerobot: a fixed
    camera whose backdrop the background edit replaces, and a wrist camera it leaves alone."""
    from corpus import Camera, Member, build

    root = tmp_path_factory.mktemp("room") / "ds"
    member = Member("room", fps=10, episodes=(14, 11), cameras=(
        Camera("observation.images.top", (48, 64)), Camera("observation.images.wrist", (32, 40), mounted="wrist")),
        numeric={"observation.state": ("float32", (3,)), "action": ("float32", (2,))})
    return build(member, root) | {"root": root}


def test_background_streams_in_two_passes_and_writes_the_whole_episode_frames(room_dataset, tmp_path, monkeypatch):
    """The background edit surveys an episode chunk by chunk (plate, motion counts), then edits it chunk by
    chunk, every variant: the written frames, records and review images are those of the whole-episode path."""
    from editors.specs import BackgroundSpec

    source_dataset = room_dataset

    monkeypatch.setattr("augment.stream.CHUNK_FRAMES", 5)  # 9-15 frames: chunks of 5, 5, 5 and less
    surveyed: list[int] = []
    survey = BackgroundStage.survey

    def spy_survey(self, episode, chunks):
        surveyed.append(max(c.length for c in chunks()))
        return survey(self, episode, chunks)

    monkeypatch.setattr(BackgroundStage, "survey", spy_survey)
    seen = _spy(monkeypatch, BackgroundStage)
    stages = ("  - type: background\n    cameras: [observation.images.top]\n    variants: 2\n"
              "    review_dir: {review}\n  - type: source\n")
    chunked = _run(tmp_path, "chunked", source_dataset, stages.format(review=tmp_path / "review_chunked"))
    lengths = [e["length"] for e in source_dataset["episodes"]]
    assert _run.notes["stages"] == ["background", "source"]
    assert max(seen) == 5 and sum(seen) == sum(lengths)  # edited in chunks, every frame once
    assert surveyed == [5] * len(lengths)  # and surveyed in chunks too
    seen.clear()
    monkeypatch.setattr(BackgroundSpec, "whole_episode", True)
    whole = _run(tmp_path, "whole", source_dataset, stages.format(review=tmp_path / "review_whole"))
    assert sorted(seen) == sorted(lengths) and _run.notes["stages"] == ["source"]
    assert chunked.keys() == whole.keys() and len(whole) == 2 * len(lengths)
    source = LeRobotSource(source_dataset["root"])
    for i, a in chunked.items():
        b = whole[i]
        for key in b.frames:
            np.testing.assert_array_equal(a.frames[key], b.frames[key])
        np.testing.assert_array_equal(a.state, b.state)
        src = source.read_episode(i // 2).frames
        changed = (np.abs(a.frames["observation.images.top"].astype(int) - src["observation.images.top"]).max(-1) > 30)
        assert 0.1 < changed.mean() < 0.9  # the backdrop is replaced, the workspace kept
    a, b = _lerobot_frames(tmp_path / "chunked"), _lerobot_frames(tmp_path / "whole")
    for i in b:
        for key in b[i]:
            np.testing.assert_array_equal(a[i][key], b[i][key])
    records = {}
    for name in ("chunked", "whole"):
        for meta in LeRobotSource(tmp_path / name).episodes:
            stage = next(s for s in json.loads(meta["augment/provenance"])["stages"] if s["stage"] == "background")
            review = Path(stage.pop("review"))  # written with the episode's last chunk
            assert review.name == f"{meta['augment/uid']}.png" and review.is_file()
            stage["settings"].pop("review_dir")
            records.setdefault(name, []).append(stage)
    assert records["chunked"] == records["whole"]  # the kept share is the whole episode's, not a chunk's
    import cv2

    pngs = sorted(p.name for p in (tmp_path / "review_whole").glob("ep*.png"))
    assert pngs and pngs == sorted(p.name for p in (tmp_path / "review_chunked").glob("ep*.png"))
    for name in pngs:  # first, middle and last frames, gathered from three chunks
        np.testing.assert_array_equal(cv2.imread(str(tmp_path / "review_chunked" / name)),
                                      cv2.imread(str(tmp_path / "review_whole" / name)))


def test_a_surveying_stage_opens_the_streamed_tail():
    """background surveys what the tail gets: a per-frame stage before it runs on whole episodes; with a
    model segmenter it is a whole-episode stage itself."""
    from augment.stage import split_stages
    from editors.specs import BackgroundSpec
    from labelers.specs import SourceLabelSpec

    light, background, source = LightingSpec(), BackgroundSpec(), SourceLabelSpec()
    assert split_stages([background, light, source]) == 0
    assert split_stages([light, background, source]) == 1
    assert split_stages([background, BackgroundSpec(variants=2), source]) == 1
    assert split_stages([light, BackgroundSpec(segmenter={"kind": "motion"}), source]) == 2
