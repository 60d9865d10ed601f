"""A job on a Ray cluster of two nodes on this machine (`ray start --head`, `ray start --address`),
each with its own custom resource, stages pinned to one node each, parts written into S3 from both.

Each node is its own `ray start --block` process in its own session, on free ports and its own temp
folder, stopped by its process group: `ray stop` would stop every Ray on the machine."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from conftest import write_spec
from s3server import free_ports

BIN = os.path.dirname(sys.executable)


def _start_node(head_port: int | None, resources: dict, temp_dir: str, port: int | None = None) -> subprocess.Popen:
    agent, agent_grpc, runtime_env, metrics, node_manager, object_manager = free_ports(6)
    args = [f"{BIN}/ray", "start", "--block", "--num-cpus=2", f"--resources={json.dumps(resources)}",
            "--node-ip-address=127.0.0.1", "--disable-usage-stats", f"--temp-dir={temp_dir}",
            f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
            f"--runtime-env-agent-port={runtime_env}", f"--metrics-export-port={metrics}",
            f"--node-manager-port={node_manager}", f"--object-manager-port={object_manager}"]
    if head_port is None:
        args += ["--head", f"--port={port}", "--include-dashboard=false"]
    else:
        args += [f"--address=127.0.0.1:{head_port}"]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _stop(node: subprocess.Popen) -> None:
    if node.poll() is None:
        os.killpg(node.pid, signal.SIGTERM)
        try:
            node.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait()


@pytest.mark.slow
def test_two_nodes_run_one_job_into_s3(s3, source_dataset, tmp_path):
    import ray

    source = f"s3://data/cluster-src-{uuid.uuid4().hex[:6]}"
    out = f"s3://data/cluster-out-{uuid.uuid4().hex[:6]}"
    s3.upload(source_dataset["root"], source.removeprefix("s3://"))
    temp_dir = tempfile.mkdtemp(prefix="r13c", dir="/tmp")  # short: Ray's socket paths live under it
    (port,) = free_ports(1)
    nodes = [_start_node(None, {"node_a": 2}, temp_dir, port)]
    try:
        time.sleep(8)
        nodes.append(_start_node(port, {"node_b": 2}, temp_dir))
        time.sleep(8)
        assert [n.poll() for n in nodes] == [None, None], "a node did not start (run its `ray start` by hand to see why)"
        ray.init(address=f"127.0.0.1:{port}", log_to_driver=False)
        try:
            deadline = time.monotonic() + 90
            while len([n for n in ray.nodes() if n["Alive"]]) < 2 and time.monotonic() < deadline:
                time.sleep(1)
            which = {n["NodeID"]: ("node_a" if "node_a" in n["Resources"] else "node_b")
                     for n in ray.nodes() if n["Alive"]}
        finally:
            ray.shutdown()
        assert sorted(which.values()) == ["node_a", "node_b"]

        # Two actor pools, one per node: a per-frame stage after the last whole-episode one would run in
        # the writers (augment/stream.py) and pin them, with its custom resource, to its node; so lighting
        # first, and background with a model segmenter's kind (a whole-episode stage: the weight-free
        # default surveys and streams, in the writers)
        stages = ("  - type: lighting\n    resources: {num_cpus: 1, custom: {node_b: 1}}\n"
                  "  - type: background\n    cameras: [observation.images.front]\n    segmenter: {kind: motion}\n"
                  "    resources: {num_cpus: 1, custom: {node_a: 1}}\n")
        spec = write_spec(tmp_path / "s.yaml", source, out, stages)
        spec.write_text(spec.read_text().replace("episodes_per_file: 2", "episodes_per_file: 1"))
        done = subprocess.run([f"{BIN}/augment", "run", str(spec), "--address", f"127.0.0.1:{port}", "--quiet"],
                              capture_output=True, text=True, timeout=400)
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        for node in reversed(nodes):
            _stop(node)
        shutil.rmtree(temp_dir, ignore_errors=True)

    store_fs, prefix = s3.filesystem(), out.removeprefix("s3://")
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    episodes = pq.read_table(f"{prefix}/meta/episodes/chunk-000/file-000.parquet", filesystem=store_fs).to_pylist()
    assert len(episodes) == 4
    for row in episodes:  # every episode was edited on node_a, relit on node_b
        placed = json.loads(row["augment/provenance"])["nodes"]
        assert {stage: which[node] for stage, node in placed.items()} == {"background": "node_a", "lighting": "node_b"}
    manifests = [f.path for f in store_fs.get_file_info(pafs.FileSelector(f"{prefix}/.augment/parts", recursive=True))
                 if f.path.endswith("/manifest.json")]
    writers = [json.loads(store_fs.open_input_stream(m).read())["node_id"] for m in manifests]
    assert len(writers) == 4 and {which[w] for w in writers} == {"node_a", "node_b"}, writers  # parts from both nodes
