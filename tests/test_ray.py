"""The same job on Ray Data: actor pools per stage, parallel part writers, one commit."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from augment.runner import run_ray
from augment.spec import load_spec
from conftest import write_spec


@pytest.fixture
def ray_session():
    """A fresh embedded Ray per test: run_ray sizes it to the spec it runs."""
    import ray

    ray.shutdown()
    yield
    ray.shutdown()


def test_ray_run_matches_the_in_process_run(source_dataset, tmp_path, ray_session):
    import ray.data
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from augment.local import run_local

    stages = "  - type: background\n    variants: 2\n    resources: {concurrency: 1, batch_size: 2}\n"
    spec_ray = load_spec(write_spec(tmp_path / "r.yaml", source_dataset["root"], tmp_path / "ray", stages))
    spec_local = load_spec(write_spec(tmp_path / "l.yaml", source_dataset["root"], tmp_path / "local", stages))
    report = run_ray(spec_ray)
    run_local(spec_local, progress=False)
    assert report["episodes_in"] == 4 and report["episodes_out"] == 8
    assert set(report["seconds_per_stage"]) == {"read", "background"}

    a = LeRobotDataset("test/ray", root=tmp_path / "ray")
    b = LeRobotDataset("test/local", root=tmp_path / "local")
    uids = lambda ds: sorted(ds.meta.episodes[i]["augment/uid"] for i in range(ds.num_episodes))  # noqa: E731
    assert uids(a) == uids(b) and len(a) == len(b) == 94
    for ds in (a, b):
        for i in range(len(ds)):
            ds[i]  # every frame decodes
    by_uid = lambda ds: {ds.meta.episodes[i]["augment/uid"]: ds.meta.episodes[i]["dataset_from_index"]  # noqa: E731
                         for i in range(ds.num_episodes)}
    ua, ub = by_uid(a), by_uid(b)
    for uid in ua:  # same seeds, same edits: the same pixels whichever runner ran them
        np.testing.assert_array_equal(a[ua[uid] + 3]["observation.images.front"].numpy(),
                                      b[ub[uid] + 3]["observation.images.front"].numpy())
        np.testing.assert_array_equal(a[ua[uid] + 3]["action"].numpy(), b[ub[uid] + 3]["action"].numpy())
    assert ray.data.read_lerobot(str(tmp_path / "ray")).count() == 94


def test_stages_that_hold_more_cpus_than_the_machine_still_run(source_dataset, tmp_path, ray_session):
    """Each actor pool holds its CPUs for the whole job; an embedded Ray gets enough logical CPUs for
    all of them (here two background pools of 1 - whole-episode stages with a model segmenter's kind -,
    the writers with the two per-frame `source` stages 1, the reader 0.25: 3.25 on a 2-core machine)
    instead of waiting forever."""
    import ray

    stages = "".join("  - type: background\n    segmenter: {kind: motion}\n    resources: {num_cpus: 1}\n"
                     for _ in range(2))
    stages += "".join("  - type: source\n    resources: {num_cpus: 1}\n" for _ in range(2))
    spec = load_spec(write_spec(tmp_path / "s.yaml", source_dataset["root"], tmp_path / "out", stages,
                                extra="  episodes: [0, 1]\n"))
    report = run_ray(spec, progress=False)  # `augment run --quiet`
    assert report["episodes_out"] == 2 and ray.cluster_resources()["CPU"] >= 3.25
    # --quiet under Ray too: no bars, and none of Ray Data's progress lines (logged where stdout is no terminal)
    import logging

    from ray.data import DataContext

    from augment.runner import _quiet_ray_data_console

    assert DataContext.get_current().enable_progress_bars is False
    console = [h for h in logging.getLogger("ray.data").handlers
               if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]
    line = logging.LogRecord("ray.data", logging.INFO, __file__, 0, "Total Progress: 0/?", None, None)
    assert console and not any(h.filter(line) for h in console)
    _quiet_ray_data_console(quiet=False)  # what a run without --quiet sets
    assert all(h.filter(line) for h in console)


def test_a_job_that_cannot_fit_a_cluster_is_refused_with_the_numbers(tmp_path):
    from augment.pipeline import JobError
    from augment.runner import check_fits, resource_demand

    text = ("source: {root: /x}\nsink: {root: /y, num_cpus: 0.5}\nstages:\n"
            "  - {type: background, segmenter: {kind: motion}, resources: {num_cpus: 2, concurrency: 2}}\n"
            "  - {type: source, resources: {num_cpus: 0.25, num_gpus: 0.5, concurrency: 2}}\n")
    (tmp_path / "s.yaml").write_text(text)
    spec = load_spec(tmp_path / "s.yaml")
    # reader 0.25, background's pool 2 x 2 (a model segmenter makes it a whole-episode stage; the
    # weight-free default would stream in the writers too); `source` is per-frame and last, so it runs in the write
    # tasks (augment/stream.py), which then hold max(sink 0.5, its 0.25) CPU and its 0.5 GPU
    assert resource_demand(spec) == {"CPU": 0.25 + 4 + 0.5, "GPU": 0.5}
    check_fits(spec, {"CPU": 8, "GPU": 1})
    with pytest.raises(JobError, match=r"ask for 4.75 CPUs at once \(background: 2.0 x 2, source: 0.25 x 2.*has 4"):
        check_fits(spec, {"CPU": 4, "GPU": 1})
    with pytest.raises(JobError, match=r"ask for 0.5 GPUs at once .* has 0; lower resources.num_gpus"):
        check_fits(spec, {"CPU": 8})


@pytest.mark.slow
def test_joins_a_cluster_started_with_ray_start(source_dataset, tmp_path):
    """`ray start --head` on this machine, then `augment run --address`: the cluster path users take."""
    import signal
    import socket
    import time

    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    bindir = os.path.dirname(sys.executable)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # --block keeps `ray start` in the foreground so that this cluster alone is stopped afterwards
    # (`ray stop` would stop every Ray on the machine).
    head = subprocess.Popen([f"{bindir}/ray", "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
                             "--node-ip-address=127.0.0.1", "--include-dashboard=false", "--disable-usage-stats"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(8)
        spec = write_spec(tmp_path / "s.yaml", source_dataset["root"], tmp_path / "out", extra="  episodes: [0, 1]\n")
        done = subprocess.run([f"{bindir}/augment", "run", str(spec), "--address", f"127.0.0.1:{port}"],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "episodes out           2" in done.stdout
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)


def _cli(*argv) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "augment.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_a_worker_error_under_ray_is_one_error_line(source_dataset, tmp_path, copy_tree):
    """A reader's error in a Ray actor reaches the user as our own line, not Ray's traceback nor its
    "please open an issue on the Ray project"."""
    import json

    src = copy_tree(source_dataset["root"], tmp_path / "src")
    info = json.loads((src / "meta" / "info.json").read_text())
    info["fps"] *= 2
    (src / "meta" / "info.json").write_text(json.dumps(info))
    spec = write_spec(tmp_path / "s.yaml", src, tmp_path / "out")
    proc = _cli("run", str(spec), "--quiet")
    text, _ = proc.communicate(timeout=300)
    assert proc.returncode == 2, text
    errors = [line for line in text.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "the video runs at 10 fps, meta/info.json says fps 20" in errors[0], text
    assert "Traceback" not in text and "Ray project" not in text and "Failed to apply" not in text


def test_an_embedded_ray_dies_with_its_driver(source_dataset, tmp_path):
    """kill -9 of `augment run`: nothing it started (raylet, agents, workers) outlives it by more
    than a few seconds (augment/reaper.py)."""
    import time

    from augment.reaper import descendants, processes

    stages = "  - type: background\n    variants: 4\n"
    spec = write_spec(tmp_path / "s.yaml", source_dataset["root"], tmp_path / "out", stages)
    proc = _cli("run", str(spec), "--quiet")
    started: set[int] = set()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        table = processes()
        started |= descendants({proc.pid}, table)
        workers = [p for p in started if p in table and b"ray::" in _cmdline(p)]
        if workers:
            break
        time.sleep(0.2)
    assert proc.poll() is None and workers, "the job ended before its Ray workers were seen"
    os.kill(proc.pid, 9)
    proc.wait()
    _assert_gone(started, 60)  # at a load of 30 on 2 cores a dying agent can take 20 s


def _assert_gone(pids: set[int], seconds: float) -> None:
    """Every one of `pids` has exited within `seconds`."""
    import time

    from augment.reaper import processes

    deadline = time.monotonic() + seconds
    while True:
        alive = [p for p in pids if p in processes() and _cmdline(p)]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not alive, [(p, _cmdline(p)[:80]) for p in alive]


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def test_a_finished_job_leaves_no_process_behind(source_dataset, tmp_path):
    """`augment run` stops its embedded Ray on the way out (cli.entry: once the dataset is committed
    and the report printed, runner.kill_ray SIGKILLs every process it started): nothing it started
    outlives it, and the dataset it reported is whole."""
    import time

    from augment.reaper import descendants, processes

    spec = write_spec(tmp_path / "s.yaml", source_dataset["root"], tmp_path / "out")
    proc = _cli("run", str(spec), "--quiet")
    seen: dict[int, bytes] = {}
    while proc.poll() is None:
        for pid in descendants({proc.pid}, processes()) - set(seen):
            seen[pid] = _cmdline(pid)
        time.sleep(0.1)
    output = proc.stdout.read()
    assert proc.returncode == 0, output
    started = set(seen)
    assert any(b"raylet" in cmd for cmd in seen.values()), seen  # the job did start Ray
    # runner._lean_head: none of the head's Python helpers an embedded Ray does not use was started
    helpers = (b"autoscaler/_private/monitor.py", b"autoscaler/v2/monitor.py", b"_private/log_monitor.py",
               b"dashboard/dashboard.py")
    assert not [cmd for cmd in seen.values() if any(h in cmd for h in helpers)], seen
    # --quiet: the report only; not the C++ logger's note that it read RAY_BACKEND_LOG_LEVEL
    assert output.lstrip().startswith("augment job"), output
    _assert_gone(started, 30)
    from augment.source import LeRobotSource

    out = LeRobotSource(tmp_path / "out")
    assert f"dataset: {tmp_path / 'out'}" in output, output
    assert out.verify(out.select(None)) == [] and len(out.episodes) == len(source_dataset["episodes"])
