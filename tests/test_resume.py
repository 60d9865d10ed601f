"""A killed job leaves nothing that looks finished; a rerun finishes only what is missing."""

from __future__ import annotations

import json

import pytest

from augment.local import run_local
from augment.spec import load_spec
from augment.parts import PartWriter, select_complete
from conftest import write_spec


def test_rerun_after_a_crash_finishes_only_what_is_missing(source_dataset, tmp_path, monkeypatch):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    out = tmp_path / "out"
    spec = load_spec(write_spec(tmp_path / "s.yaml", source_dataset["root"], out,
                                stages="  - type: background\n"))
    real_write, calls = PartWriter.write, []

    def crash_on_second_part(self, rows):
        calls.append([r["uid"] for r in rows])
        if len(calls) == 2:
            raise RuntimeError("worker killed")
        return real_write(self, rows)

    monkeypatch.setattr(PartWriter, "write", crash_on_second_part)
    with pytest.raises(RuntimeError, match="worker killed"):
        run_local(spec, progress=False)
    assert not (out / "meta" / "info.json").exists()  # not a dataset yet
    # A part whose writer died before its manifest: files but no manifest.json. It must be ignored.
    half = out / ".augment" / "parts" / "part-99999999-half"
    (half / "videos").mkdir(parents=True)
    (half / "data.parquet").write_bytes(b"garbage")

    monkeypatch.setattr(PartWriter, "write", real_write)
    report = run_local(spec, progress=False)
    assert report["episodes_done_before"] == 2 and report["episodes_out"] == 4
    ds = LeRobotDataset("test/out", root=out)
    uids = [ds.meta.episodes[i]["augment/uid"] for i in range(ds.num_episodes)]
    assert sorted(uids) == ["ep000000", "ep000001", "ep000002", "ep000003"]  # no duplicates
    assert len(ds) == 47
    ds[len(ds) - 1]


def manifest(run_id: str, part: str, kept: list[tuple[str, str, str]], dropped=()) -> dict:
    entries = [{"uid": u, "source_uid": s, "share": share, "provenance": {}} for u, s, share in kept]
    gone = [{"uid": u, "source_uid": s, "share": share} for u, s, share in dropped]
    return {"run_id": run_id, "part": part, "episodes": entries, "dropped": gone}


def test_a_source_episode_is_done_when_its_shares_add_up():
    manifests = [
        # run 1 wrote two of the three samples of ep0 before it died, and all of ep1
        manifest("1", "a", [("ep0-s0", "ep0", "1/3"), ("ep0-s1", "ep0", "1/3"), ("ep1", "ep1", "1")]),
        # run 2 redid ep0 completely: one kept, two dropped by a verifier
        manifest("2", "b", [("ep0-s0", "ep0", "1/3")], dropped=[("ep0-s1", "ep0", "1/3"), ("ep0-s2", "ep0", "1/3")]),
        # run 2 also started ep2 but did not finish it
        manifest("2", "c", [("ep2-s0", "ep2", "1/2")]),
    ]
    kept, dropped, done = select_complete(manifests)
    assert done == {"ep0", "ep1"}
    assert sorted((m["part"], e["uid"]) for m, e in kept) == [("a", "ep1"), ("b", "ep0-s0")]
    assert sorted(e["uid"] for e in dropped) == ["ep0-s1", "ep0-s2"]


def test_top_k_keeps_the_best_per_group(source_dataset, tmp_path):
    out = tmp_path / "out"
    spec = load_spec(write_spec(tmp_path / "s.yaml", source_dataset["root"], out,
                                stages="  - type: background\n    variants: 3\n", extra="  episodes: [0, 1]\n"),
                     ["sink.top_k=1"])
    report = run_local(spec, progress=False)
    assert report["episodes_out"] == 2 and len(report["dropped"]) == 4
    assert all(d["stage"] == "rank" and "of 3" in d["reason"] for d in report["dropped"])
    saved = json.loads((out / "meta" / "augment_report.json").read_text())
    assert saved["dropped"] == report["dropped"]


def test_report_times_are_not_multiplied_by_best_of_n():
    """An input's time (inherited ones too) is split among its outputs, so a family adds up to it."""
    import numpy as np

    from augment.episode import Episode
    from augment.pipeline import RunStage, batch_to_rows, episode_row, rows_to_batch
    from editors.specs import BackgroundSpec

    frames = np.zeros((6, 16, 16, 3), np.uint8)
    frames[:, 4:8, 4:8] = 200
    episode = Episode(frames={"cam": frames}, task="t", fps=10, uid="ep000000",
                      provenance={"timings": {"read": 1.0}})
    rows = batch_to_rows(RunStage(BackgroundSpec(variants=4))(rows_to_batch([episode_row(episode, "ep000000", "1")])))
    children = [Episode.from_bytes(r["episode"]) for r in rows]
    assert [r["share"] for r in rows] == ["1/4"] * 4
    assert [c.provenance["timings"]["read"] for c in children] == [0.25] * 4
    total = sum(c.provenance["timings"]["background"] for c in children)
    assert all(c.provenance["timings"]["background"] == total / 4 for c in children)


def test_the_report_is_written_before_the_completion_marker(source_dataset, tmp_path, monkeypatch):
    """A job that dies while making its report is not finished: the rerun commits again, with a report."""
    import augment.pipeline as pipeline
    from augment.commit import is_committed

    out = tmp_path / "out"
    spec = load_spec(write_spec(tmp_path / "s.yaml", source_dataset["root"], out, extra="  episodes: [0]\n"))
    real = pipeline.build_report

    def disk_full(job, summary):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pipeline, "build_report", disk_full)
    with pytest.raises(pipeline.JobError, match="disk full writing .* finished parts are kept"):
        run_local(spec, progress=False)
    assert not is_committed(out)
    monkeypatch.setattr(pipeline, "build_report", real)
    report = run_local(load_spec(tmp_path / "s.yaml"), progress=False)
    assert report["episodes_out"] == 1 and is_committed(out)
    assert json.loads((out / "meta" / "augment_report.json").read_text())["episodes_out"] == 1


def test_remove_ours_keeps_everything_else(tmp_path):
    from augment.commit import foreign_files, remove_ours

    ours = [".augment/parts/p/manifest.json", "data/chunk-000/file-000.parquet",
            "videos/observation.images.front/chunk-000/file-001.mp4", "meta/info.json",
            "meta/episodes/chunk-000/file-000.parquet", "meta/augment_report.json", "meta/info.json.tmp-1a2b3c4d"]
    theirs = ["notes.txt", "meta/eval.json", "data/extra/data/chunk-000/file-000.parquet", "videos/readme.md"]
    for rel in ours + theirs:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    assert foreign_files(tmp_path) == sorted(theirs)
    remove_ours(tmp_path)
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert left == sorted(theirs) and not (tmp_path / ".augment").exists()
    assert not (tmp_path / "meta" / "episodes").exists()  # emptied folders go too
