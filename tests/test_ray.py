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


@pytest.fixture(scope="module")
def ray_session():
    import ray

    from augment.runner import init_ray

    init_ray(None)
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
