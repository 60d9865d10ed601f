"""Shared fixtures: small LeRobot v3.0 datasets written by lerobot itself, the compatibility oracle."""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("SVT_LOG", "1")
# lerobot reads through the Hugging Face cache, and huggingface_hub reads HF_HOME when it is imported (test
# modules import lerobot while they are collected): one cache of our own from the start, removed at exit.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="augment_tests_hf_home_")
_HF_HOME, _PID = os.environ["HF_HOME"], os.getpid()
atexit.register(lambda: os.getpid() == _PID and shutil.rmtree(_HF_HOME, ignore_errors=True))


def load_script(relative: str):
    """A script of the repo (scripts/, benchmarks/: not packages) as a module, by its path."""
    path = REPO / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def make_lerobot_dataset(root: Path, episodes=(12, 15, 9, 11), size=(48, 64), cameras=("front", "wrist"),
                         image_camera: str | None = None, fps: int = 10, seed: int = 0) -> dict:
    """Write a dataset with lerobot's own writer; return what was recorded, per episode.

    Frames are smooth moving blobs over a fixed backdrop (so video compression keeps them close), state
    and action are random, and an extra per-frame feature checks that unknown features survive.
    """
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    h, w = size
    features = {f"observation.images.{c}": {"dtype": "video", "shape": (h, w, 3), "names": ["height", "width", "channels"]}
                for c in cameras}
    if image_camera:
        features[f"observation.images.{image_camera}"] = {"dtype": "image", "shape": (h, w, 3),
                                                          "names": ["height", "width", "channels"]}
    features.update({
        "observation.state": {"dtype": "float32", "shape": (3,), "names": ["x", "y", "z"]},
        "action": {"dtype": "float32", "shape": (2,), "names": ["dx", "dy"]},
        "observation.environment_state": {"dtype": "float32", "shape": (4,), "names": None},
    })
    ds = LeRobotDataset.create("test/source", fps=fps, features=features, root=root, robot_type="testbot")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    backdrop = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 90)], -1).astype(np.uint8)
    recorded = []
    for e, n in enumerate(episodes):
        task = ["push the block", "lift the cube"][e % 2]
        rec = {"task": task, "state": [], "action": [], "env": [], "frames": {k: [] for k in features if "images" in k}}
        for t in range(n):
            frame = {}
            for k in rec["frames"]:
                img = backdrop.copy()
                cy, cx = int(h * 0.3 + t * 1.5) % h, int(w * 0.2 + t * 2 + e * 5) % w
                img[max(0, cy - 6):cy + 6, max(0, cx - 6):cx + 6] = (220, 40, 40)
                frame[k] = img
                rec["frames"][k].append(img)
            state = rng.normal(size=3).astype(np.float32)
            action = rng.normal(size=2).astype(np.float32)
            env = rng.normal(size=4).astype(np.float32)
            rec["state"].append(state), rec["action"].append(action), rec["env"].append(env)
            ds.add_frame({**frame, "observation.state": state, "action": action,
                          "observation.environment_state": env, "task": task})
        ds.save_episode()
        recorded.append({k: (np.stack(v) if isinstance(v, list) else v) for k, v in rec.items() if k != "frames"}
                        | {"frames": {k: np.stack(v) for k, v in rec["frames"].items()}})
    ds.finalize()
    return {"root": root, "episodes": recorded, "fps": fps}


@pytest.fixture(scope="session")
def source_dataset(tmp_path_factory) -> dict:
    """Four episodes, two video cameras, packed by lerobot into shared parquet and mp4 files."""
    return make_lerobot_dataset(tmp_path_factory.mktemp("src") / "ds")


@pytest.fixture(scope="session")
def image_dataset(tmp_path_factory) -> dict:
    """Two episodes with one video camera and one camera stored as images in the parquet."""
    return make_lerobot_dataset(tmp_path_factory.mktemp("src_img") / "ds", episodes=(6, 7), cameras=("front",),
                                image_camera="side")


def write_spec(path: Path, source: Path, sink: Path, stages: str = "", extra: str = "") -> Path:
    text = f"name: test\nsource:\n  root: {source}\n{extra}"
    if stages:
        text += f"stages:\n{stages}"
    text += f"sink:\n  root: {sink}\n  episodes_per_file: 2\n"
    path.write_text(text)
    return path


@pytest.fixture
def copy_tree():
    def _copy(src: Path, dst: Path) -> Path:
        shutil.copytree(src, dst)
        return dst

    return _copy


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """A SeaweedFS S3 server on 127.0.0.1 (tests/s3server.py) with the AWS settings that reach it in
    os.environ for the session, as a user would export them; the bucket `data` exists."""
    from s3server import SeaweedS3

    server = SeaweedS3(tmp_path_factory.mktemp("s3")).start()
    saved = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    server.create_bucket("data")
    try:
        yield server
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()
