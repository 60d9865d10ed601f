"""Object storage: source and sink on a real S3 server (SeaweedFS on 127.0.0.1, tests/s3server.py),
reached through the standard AWS settings; no client is mocked."""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pytest

from augment.spec import load_spec
from conftest import write_spec


def _prefix(name: str) -> str:
    return f"s3://data/{name}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def s3_source(s3, source_dataset):
    url = _prefix("src")
    s3.upload(source_dataset["root"], url.removeprefix("s3://"))
    return url


def test_a_job_reads_from_and_writes_to_s3(s3, s3_source, source_dataset, tmp_path):
    """Ray job, S3 in and out: one camera edited (decoded from the store), one passed through (its
    packets copied from the store); the output reads back with ray.data.read_lerobot straight from
    S3 and with lerobot after download, with the source's actions and the wrist camera's frames."""
    import ray
    import ray.data
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from augment.runner import run_ray

    out = _prefix("out")
    stages = "  - type: background\n    cameras: [observation.images.front]\n"
    ray.shutdown()
    try:
        report = run_ray(load_spec(write_spec(tmp_path / "s.yaml", s3_source, out, stages)))
        assert report["episodes_out"] == 4 and report["output"] == out
        assert report["resolved"]["sink"]["copied"] == ["observation.images.wrist"]

        rows = ray.data.read_lerobot(out).take_all()  # its videos through lerobot's fsspec: s3fs
    finally:
        ray.shutdown()
    recorded = source_dataset["episodes"]
    assert len(rows) == sum(len(e["action"]) for e in recorded) == 47
    for row in rows:
        ep = recorded[int(row["episode_index"])]
        np.testing.assert_array_equal(np.asarray(row["action"], dtype=np.float32), ep["action"][int(row["frame_index"])])

    local = s3.download(out.removeprefix("s3://"), tmp_path / "downloaded")
    ds = LeRobotDataset("test/out", root=local)
    src = LeRobotDataset("test/source", root=source_dataset["root"])
    assert len(ds) == len(src) == 47
    edited = set()
    for i in range(len(ds)):
        a, b = ds[i], src[i]
        assert int(a["episode_index"]) == int(b["episode_index"]) and int(a["frame_index"]) == int(b["frame_index"])
        np.testing.assert_array_equal(a["action"].numpy(), b["action"].numpy())
        np.testing.assert_array_equal(a["observation.state"].numpy(), b["observation.state"].numpy())
        # the wrist camera passed through: the very frames of the source
        assert np.array_equal(a["observation.images.wrist"].numpy(), b["observation.images.wrist"].numpy())
        if not np.allclose(a["observation.images.front"].numpy(), b["observation.images.front"].numpy(), atol=0.1):
            edited.add(int(a["episode_index"]))
    assert edited == {0, 1, 2, 3}  # the front camera of every episode got a new background (re-encoded)


def test_a_killed_job_resumes_on_s3(s3, s3_source, tmp_path, monkeypatch):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from augment.local import run_local
    from augment.parts import PartWriter

    out = _prefix("resume")
    spec_path = write_spec(tmp_path / "s.yaml", s3_source, out)
    real_write, calls = PartWriter.write, []

    def crash_on_second_part(self, rows):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("worker killed")
        return real_write(self, rows)

    monkeypatch.setattr(PartWriter, "write", crash_on_second_part)
    with pytest.raises(RuntimeError, match="worker killed"):
        run_local(load_spec(spec_path), progress=False)
    fs = s3.filesystem()
    bucket_out = out.removeprefix("s3://")
    assert fs.get_file_info(f"{bucket_out}/meta/info.json").type.name == "NotFound"
    # a writer killed while uploading: files of a part, no manifest; the rerun must delete it
    with fs.open_output_stream(f"{bucket_out}/.augment/parts/part-0-half/data.parquet") as f:
        f.write(b"garbage")

    monkeypatch.setattr(PartWriter, "write", real_write)
    report = run_local(load_spec(spec_path), progress=False)
    assert report["episodes_done_before"] == 2 and report["episodes_out"] == 4
    assert fs.get_file_info(f"{bucket_out}/.augment/parts/part-0-half/data.parquet").type.name == "NotFound"
    assert fs.get_file_info(f"{bucket_out}/.augment/lock.json").type.name == "NotFound"  # the lease is given back
    ds = LeRobotDataset("test/out", root=s3.download(bucket_out, tmp_path / "dl"))
    assert sorted(ds.meta.episodes[i]["augment/uid"] for i in range(ds.num_episodes)) == [
        "ep000000", "ep000001", "ep000002", "ep000003"]
    assert len(ds) == 47


def _run_cli(argv, capsys) -> tuple[int, str, float]:
    from augment.cli import main

    start = time.monotonic()
    code = main(argv)
    return code, capsys.readouterr().err, time.monotonic() - start


def test_store_errors_are_one_line_before_any_work(s3, s3_source, tmp_path, capsys, monkeypatch):
    from s3server import closed_port

    def run(source, sink):
        spec = write_spec(tmp_path / "s.yaml", source, sink)
        return _run_cli(["run", str(spec), "--local", "--quiet"], capsys)

    code, err, _ = run("s3://no-such-bucket/ds", tmp_path / "o")
    assert code == 2 and err.startswith("error: s3://no-such-bucket/ds: bucket 'no-such-bucket' does not exist")
    assert not (tmp_path / "o").exists()

    code, err, _ = run(s3_source, "s3://no-such-bucket/out")
    assert code == 2 and "bucket 'no-such-bucket' does not exist" in err and err.startswith("error: ")

    code, err, _ = run(s3_source + "-missing", tmp_path / "o")
    assert code == 2 and "no such dataset folder" in err

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    code, err, _ = run(s3_source, tmp_path / "o")
    assert code == 2 and "access denied" in err and "AWS_SECRET_ACCESS_KEY" in err, err
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.env()["AWS_SECRET_ACCESS_KEY"])

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    code, err, seconds = run(s3_source, tmp_path / "o")
    assert code == 2 and "cannot reach the object store" in err and "AWS_ENDPOINT_URL" in err, err
    assert len(err.strip().splitlines()) == 1 and seconds < 60
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("conditional", [True, False], ids=["conditional-put", "read-back"])
def test_the_sink_lease_refuses_a_second_job_and_expires(s3, monkeypatch, conditional):
    """Both ways of holding the lease: S3's conditional PUT (with s3fs), and the write, wait and read
    back that is left where there is no conditional PUT."""
    from augment import storage
    from augment.pipeline import JobError, lock_output, release_lock
    from augment.storage import Lease, Store

    monkeypatch.setattr(Lease, "SETTLE", 0.2)
    if not conditional:
        monkeypatch.setattr(storage, "_conditional_client", lambda store: None)
    store = Store(_prefix("locked"))
    first = lock_output(store)
    assert (first._s3 is not None) == conditional
    try:
        with pytest.raises(JobError, match="being written by another augment job: job .*pid"):
            lock_output(store)
    finally:
        release_lock(first)
    second = lock_output(store)  # given back: free again
    release_lock(second)

    # a job killed -9 leaves its lease; once expired, the next job takes it over
    store.write_text(".augment/lock.json", json.dumps({"job": "dead:1:x", "pid": 1, "host": "dead",
                                                       "since": "then", "expires": time.time() - 1}))
    third = lock_output(store)
    assert third.held and json.loads(store.read_text(".augment/lock.json"))["job"] == third.job
    release_lock(third)


def test_racing_jobs_get_one_lease_and_a_stalled_holder_loses_it(s3):
    """Jobs that all find the sink free at the same instant: the conditional PUT lets exactly one
    through, every time. A holder whose lease another job took over after it expired cannot renew it."""
    from concurrent.futures import ThreadPoolExecutor

    from augment.storage import Lease, Store

    for round_ in range(3):
        store = Store(_prefix("race"))
        leases = [Lease(store, ".augment/lock.json") for _ in range(6)]
        assert all(lease._s3 is not None for lease in leases)
        with ThreadPoolExecutor(len(leases)) as pool:
            refused = list(pool.map(Lease.acquire, leases))
        winners = [lease for lease, holder in zip(leases, refused) if holder is None]
        assert len(winners) == 1, refused
        assert all(h is not None and h["job"] == winners[0].job for h in refused if h is not None)
        assert json.loads(store.read_text(".augment/lock.json"))["job"] == winners[0].job
        if round_ < 2:
            winners[0].release()  # its renewal thread would outlive the server

    stalled = winners[0]
    stalled._stop.set()  # it stops renewing; its lease expires; another job takes over
    stalled._thread.join()
    record = json.loads(store.read_text(".augment/lock.json"))
    store.write_text(".augment/lock.json", json.dumps({**record, "expires": time.time() - 1}))
    taker = Lease(store, ".augment/lock.json")
    assert taker.acquire() is None
    assert stalled._write(IfMatch=stalled.etag) is False  # its renewal is refused: it no longer holds the sink
    assert json.loads(store.read_text(".augment/lock.json"))["job"] == taker.job
    taker.release()
    assert not store.exists(".augment/lock.json")


def test_a_renewal_that_cannot_reach_the_store_is_tried_again(tmp_path, monkeypatch):
    """A renewal that fails for any reason (s3fs raises botocore's EndpointConnectionError, not an
    OSError, when the store is unreachable) is a blip: the thread goes on and renews the next time, so
    the job keeps its lease; before, the thread died and the lease lapsed while the job went on."""
    from augment.storage import Lease, Store

    monkeypatch.setattr(Lease, "TTL", 0.3)
    lease = Lease(Store(str(tmp_path)), "lock.json")
    assert lease._s3 is None
    assert lease.acquire() is None
    real, failures = lease.holder, []

    def flaky():
        if len(failures) < 2:
            failures.append(time.time())
            raise RuntimeError("Could not connect to the endpoint URL")  # not an OSError
        return real()

    monkeypatch.setattr(lease, "holder", flaky)
    first = json.loads((tmp_path / "lock.json").read_text())["expires"]
    time.sleep(0.6)
    assert len(failures) == 2 and lease._thread.is_alive() and lease.held
    assert json.loads((tmp_path / "lock.json").read_text())["expires"] > first  # renewed after the blips
    monkeypatch.setattr(lease, "holder", real)
    lease.release()
    assert not (tmp_path / "lock.json").exists()


def test_an_fsspec_only_filesystem_is_a_root_too(source_dataset, tmp_path):
    """memory:// is known to fsspec, not to pyarrow: written to, then read from as a source."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from augment.local import run_local
    from augment.storage import Store

    out = f"memory://augment-test/{uuid.uuid4().hex[:6]}"
    report = run_local(load_spec(write_spec(tmp_path / "a.yaml", source_dataset["root"], out)), progress=False)
    assert report["episodes_out"] == 4
    again = run_local(load_spec(write_spec(tmp_path / "b.yaml", out, tmp_path / "local")), progress=False)
    assert again["frames_out"] == 47
    ds, src = LeRobotDataset("test/b", root=tmp_path / "local"), LeRobotDataset("test/s", root=source_dataset["root"])
    for i in (0, 20, 46):  # passed through twice: still the source's frames and values
        assert np.array_equal(ds[i]["observation.images.front"].numpy(), src[i]["observation.images.front"].numpy())
        np.testing.assert_array_equal(ds[i]["action"].numpy(), src[i]["action"].numpy())
    Store(out).delete_dir("")
