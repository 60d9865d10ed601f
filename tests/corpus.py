"""A conformance corpus: small LeRobot v3.0 datasets written by lerobot's own API, in the shapes that
datasets in the wild have (hub-like pusht, aloha and metaworld layouts, scalar reward/done/success
features of every dtype, images in parquet, several cameras of other names and sizes, AV1/h264/HEVC,
episodes spread over several files and chunks, several tasks, fps 10/15/30/50, one-frame and long
episodes, no observation.state, no action, no camera).

Our own dataset script writes what our reader expects; these are written by lerobot, so they show
what users' datasets hold. The tests run every member through both runners (tests/test_corpus.py).

    python tests/corpus.py --out /tmp/corpus            # the fast set (make test)
    python tests/corpus.py --out /tmp/corpus --full     # bigger frames and episodes (make test-slow)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("SVT_LOG", "1")


@dataclass(frozen=True)
class Camera:
    key: str
    size: tuple[int, int]  # (height, width)
    mounted: str = "fixed"  # "fixed": a static scene with a moving arm; "wrist": the whole view moves
    stored: str = "video"  # "video" or "image" (PNG in the parquet)


@dataclass(frozen=True)
class Member:
    name: str
    fps: int
    episodes: tuple[int, ...]  # length of each episode
    cameras: tuple[Camera, ...] = ()
    numeric: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)  # key -> (dtype, shape)
    tasks: tuple[str, ...] = ("push the block to the target",)
    codec: str | None = None  # lerobot's vcodec; None: its default (libsvtav1)
    chunks_size: int | None = None
    files_size_in_mb: float | None = None  # small: episodes spread over several data and video files
    robot_type: str | None = None


def _scalars() -> dict[str, tuple[str, tuple[int, ...]]]:
    return {"next.reward": ("float32", (1,)), "next.done": ("bool", (1,)), "next.success": ("bool", (1,))}


# The fast set: every shape the issue lists, at sizes that write and run in seconds.
MEMBERS = (
    Member("pusht", fps=10, episodes=(1, 14, 40), robot_type="2d pointer",
           cameras=(Camera("observation.image", (48, 48)),),
           numeric={"observation.state": ("float32", (2,)), "action": ("float32", (2,)), **_scalars()}),
    Member("aloha", fps=50, episodes=(20, 25), codec="h264", robot_type="aloha",
           tasks=("insert the peg into the socket", "transfer the cube"),
           cameras=(Camera("observation.images.cam_high", (48, 64)),
                    Camera("observation.images.cam_left_wrist", (32, 40), mounted="wrist")),
           numeric={"observation.state": ("float32", (14,)), "action": ("float32", (14,)),
                    "observation.effort": ("float32", (14,)), "observation.velocity": ("float64", (14,)),
                    "next.reward": ("int64", (1,))}),
    Member("metaworld", fps=15, episodes=(12, 9), robot_type="sawyer",
           cameras=(Camera("observation.image", (40, 40), stored="image"),),
           numeric={"observation.state": ("float32", (4,)), "action": ("float32", (4,)),
                    "observation.environment_state": ("float64", (39,)),
                    "next.reward": ("float64", (1,)), "next.success": ("int64", (1,)), "next.done": ("bool", (1,))}),
    Member("chunked", fps=30, episodes=(10, 8, 12, 9, 11), codec="hevc", chunks_size=2, files_size_in_mb=0.0001,
           tasks=("open the drawer", "close the drawer", "press the button"),
           cameras=(Camera("observation.images.top", (40, 56)),
                    Camera("observation.images.wrist", (32, 32), mounted="wrist")),
           numeric={"observation.state": ("float32", (6,)), "action": ("float32", (6,)),
                    "next.done": ("bool", (1,))}),
    Member("no_state", fps=15, episodes=(8, 10),
           cameras=(Camera("observation.images.front", (32, 48)),),
           numeric={"action": ("float32", (3,)), "next.reward": ("float32", (1,))}),
    Member("no_action", fps=10, episodes=(9, 7),
           cameras=(Camera("observation.images.front", (32, 48)),),
           numeric={"observation.state": ("float32", (3,))}),
    Member("no_camera", fps=50, episodes=(30, 20),
           numeric={"observation.state": ("float32", (7,)), "action": ("float32", (7,)),
                    "next.done": ("bool", (1,))}),
)


def _bigger(member: Member) -> Member:
    """The slow set's twin of a member: longer episodes and larger frames."""
    cams = tuple(Camera(c.key, (c.size[0] * 3, c.size[1] * 3), c.mounted, c.stored) for c in member.cameras)
    lengths = tuple(n * 8 for n in member.episodes) + (1,)
    return Member(f"{member.name}_large", member.fps, lengths, cams, member.numeric, member.tasks, member.codec,
                  member.chunks_size, member.files_size_in_mb and member.files_size_in_mb * 20, member.robot_type)


FULL_MEMBERS = MEMBERS + tuple(_bigger(m) for m in MEMBERS)


def _scene(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A still scene: a wall, a table with some texture, so compression and motion look like a room."""
    yy, xx = np.mgrid[0:h, 0:w]
    wall = np.stack([110 + 20 * np.sin(xx / 5.0), 120 + 0 * xx, 140 + 10 * np.cos(yy / 7.0)], -1)
    table = np.stack([150 + 15 * np.sin((xx + yy) / 3.0), 110 + 0 * xx, 70 + 0 * xx], -1)
    scene = np.where((yy > h * 0.45)[..., None], table, wall)
    return (scene + rng.normal(0, 3, size=scene.shape)).clip(0, 255).astype(np.uint8)


def _close_up(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """What a wrist camera sees: objects and table texture close up, in blocks of colour."""
    blocks = rng.integers(0, 256, size=(h // 6 + 1, w // 6 + 1, 3), dtype=np.uint8)
    return np.kron(blocks, np.ones((6, 6, 1), dtype=np.uint8))[:h, :w]


def _frame(camera: Camera, scene: np.ndarray, t: int, n: int, episode: int) -> np.ndarray:
    h, w = camera.size
    phase = t / max(n - 1, 1)
    if camera.mounted == "wrist":
        # The camera rides on the arm: the whole view shifts, the gripper stays put at the bottom.
        dy, dx = int(h * 0.25 * np.sin(2 * np.pi * phase)), int(w * 0.4 * phase)
        img = np.roll(scene, (dy, dx), axis=(0, 1)).copy()
        img[int(h * 0.8):, int(w * 0.35):int(w * 0.65)] = (60, 60, 60)
        return img
    img = scene.copy()
    # The arm: a dark bar from the top edge to the gripper, which moves across the table.
    gx = int(w * (0.2 + 0.5 * phase + 0.05 * episode)) % w
    gy = int(h * (0.5 + 0.2 * np.sin(np.pi * phase)))
    img[:gy, max(0, gx - 2):gx + 2] = (40, 40, 45)
    img[max(0, gy - 3):gy + 3, max(0, gx - 4):gx + 4] = (30, 30, 35)
    # The object: red, pushed along once the gripper reaches it.
    ox = max(int(w * 0.55), gx + 5)
    img[int(h * 0.65):int(h * 0.65) + 5, min(ox, w - 5):min(ox, w - 5) + 5] = (210, 30, 30)
    return img


def _value(dtype: str, shape: tuple[int, ...], t: int, n: int, rng: np.random.Generator):
    if dtype == "bool":
        return np.full(shape, t == n - 1, dtype=bool)
    if dtype.startswith("int"):
        return np.full(shape, t % 3, dtype=dtype)
    return rng.normal(size=shape).astype(dtype)


def build(member: Member, root: Path, seed: int = 0) -> dict:
    """Write one member with lerobot's create / add_frame / save_episode / finalize; return what was
    recorded per episode (values exactly as given to add_frame)."""
    from lerobot.configs.video import RGBEncoderConfig
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {}
    for cam in member.cameras:
        features[cam.key] = {"dtype": cam.stored, "shape": (*cam.size, 3), "names": ["height", "width", "channels"]}
    for key, (dtype, shape) in member.numeric.items():
        names = [f"{key.split('.')[-1]}_{i}" for i in range(shape[0])] if shape[0] > 1 else None
        features[key] = {"dtype": dtype, "shape": shape, "names": names}
    encoder = RGBEncoderConfig(vcodec=member.codec) if member.codec else None
    use_videos = any(c.stored == "video" for c in member.cameras)
    ds = LeRobotDataset.create(f"corpus/{member.name}", fps=member.fps, features=features, root=root,
                               robot_type=member.robot_type, use_videos=use_videos, rgb_encoder=encoder,
                               data_files_size_in_mb=member.files_size_in_mb,
                               video_files_size_in_mb=member.files_size_in_mb)
    if member.chunks_size:
        ds.meta.update_chunk_settings(chunks_size=member.chunks_size)
    rng = np.random.default_rng(seed)
    scenes = {c.key: (_close_up if c.mounted == "wrist" else _scene)(*c.size, rng) for c in member.cameras}
    recorded = []
    for e, n in enumerate(member.episodes):
        task = member.tasks[e % len(member.tasks)]
        rec = {"task": task, "length": n, "numeric": {k: [] for k in member.numeric}, "frames": {}}
        for t in range(n):
            frame = {"task": task}
            for cam in member.cameras:
                frame[cam.key] = _frame(cam, scenes[cam.key], t, n, e)
            for key, (dtype, shape) in member.numeric.items():
                frame[key] = _value(dtype, shape, t, n, rng)
                rec["numeric"][key].append(frame[key])
            ds.add_frame(frame)
        ds.save_episode()
        rec["numeric"] = {k: np.stack(v) for k, v in rec["numeric"].items()}
        recorded.append(rec)
    ds.finalize()
    return {"root": root, "member": member, "episodes": recorded}


def build_all(out: Path, full: bool = False) -> list[Path]:
    roots = []
    for member in FULL_MEMBERS if full else MEMBERS:
        root = Path(out) / member.name
        if not (root / "meta" / "info.json").is_file():
            build(member, root)
        roots.append(root)
    return roots


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder to write one dataset per member into")
    p.add_argument("--full", action="store_true", help="also the larger twins (longer episodes, bigger frames)")
    args = p.parse_args()
    for root in build_all(args.out, args.full):
        info = json.loads((root / "meta" / "info.json").read_text())
        print(f"{root}: {info['total_episodes']} episodes, {info['total_frames']} frames, fps {info['fps']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
