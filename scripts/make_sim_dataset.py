#!/usr/bin/env python
"""Build a small SOURCE dataset of real simulator robot episodes, in LeRobot v3.0 format.

The episodes are produced by actually running a simulator (MetaWorld with its scripted
expert, or gym-pusht with a small scripted pusher) and are written with lerobot's own
writer (`LeRobotDataset.create` / `add_frame` / `save_episode` / `finalize`), so anything
downstream can treat the result exactly like a dataset recorded by lerobot itself.

    python scripts/make_sim_dataset.py --sim metaworld --out /tmp/mw --episodes 6
    python scripts/make_sim_dataset.py --sim pusht --out /tmp/pusht --episodes 4

Load it back with `LeRobotDataset(repo_id="local/sim", root=OUT)`.
"""

from __future__ import annotations

import os

# MuJoCo picks its GL backend at import time: force headless EGL before anything imports it.
os.environ.setdefault("MUJOCO_GL", "egl")
# SVT-AV1 (lerobot's default encoder) prints its whole config for every video unless told not to.
os.environ.setdefault("SVT_LOG", "1")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import argparse
import json
import shutil
import time
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

# MetaWorld: env.dt = frame_skip (5) * timestep (0.0025 s) = 0.0125 s, i.e. exactly 80 Hz.
# We record one frame per control step, so fps=80 makes timestamps equal simulated time;
# it is also the value of metaworld's metadata["render_fps"] and of lerobot's MetaworldEnv config.
METAWORLD_FPS = 80
# gym-pusht steps its PD controller at control_hz = 10 (also the fps of lerobot/pusht).
PUSHT_FPS = 10
STEPS_AFTER_SUCCESS = 10  # keep a few frames after success so episodes don't end on the contact frame
# Ground-truth segmentation classes written by --masks (masks/classes.json says the same). An edit
# must keep 1-3 (the workspace); `background` may change only 0.
MASK_CLASSES = {0: "background", 1: "table", 2: "robot", 3: "object"}


class SetupError(ValueError):
    """An unusable argument (task, camera, codec), detected before anything is written."""


@dataclass
class Episode:
    """What was recorded for one episode (exactly what was passed to add_frame)."""

    frames: dict[str, np.ndarray]  # image key ("corner2") -> (T, H, W, 3) uint8; {} unless kept
    state: np.ndarray  # (T, D) float32
    action: np.ndarray  # (T, A) float32, the action actually applied to the env
    task: str
    success: bool
    seed: int
    # image key -> (T, H, W) uint8 ground-truth classes (MASK_CLASSES), when recorded with masks
    masks: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class BuildResult:
    root: Path
    fps: int
    features: dict
    episodes: list[Episode] = field(default_factory=list)


class Sim:
    """A simulator plus the scripted agent that drives it. Subclasses set fps, robot_type, task,
    image_keys, state_names, action_names, env, and implement the four hooks below."""

    def reset(self, seed: int): ...  # -> obs
    def observe(self, obs) -> tuple[dict[str, np.ndarray], np.ndarray]: ...  # -> (images, state)
    def act(self, obs) -> np.ndarray: ...  # -> the action that will be applied, exactly
    def step(self, action) -> tuple: ...  # -> (obs, success, done)
    def segment(self) -> dict[str, np.ndarray]:  # -> per image key, (H, W) uint8 MASK_CLASSES
        raise SetupError(f"{type(self).__name__} cannot record ground-truth masks")

    def rollout(self, seed: int, max_steps: int, masks: bool = False) -> Episode:
        # Frame t pairs the observation *before* step t with the action applied at step t.
        obs = self.reset(seed)
        frames, labels, states, actions, success_at = [], [], [], [], None
        for t in range(max_steps):
            images, state = self.observe(obs)
            if masks:
                labels.append(self.segment())
            action = self.act(obs)
            frames.append(images)
            states.append(state)
            actions.append(action)
            obs, success, done = self.step(action)
            if success and success_at is None:
                success_at = t
            if done or (success_at is not None and t - success_at >= STEPS_AFTER_SUCCESS):
                break
        stacked = {k: np.stack([f[k] for f in frames]) for k in frames[0]}
        truth = {k: np.stack([f[k] for f in labels]) for k in labels[0]} if labels else {}
        return Episode(stacked, np.stack(states), np.stack(actions), self.task, success_at is not None, seed, truth)

    def close(self):
        # For MuJoCo this frees the EGL context now, while EGL is still alive (no errors at exit).
        self.env.close()


class MetaWorldSim(Sim):
    """MetaWorld MT1 task driven by its scripted expert policy, rendered from several cameras."""

    robot_type = "sawyer"
    fps = METAWORLD_FPS
    state_names = ["hand_x", "hand_y", "hand_z", "gripper_distance"]  # obs[:4], the proprio part
    action_names = ["delta_x", "delta_y", "delta_z", "gripper_effort"]

    def __init__(self, task: str, size: int | tuple[int, int], cameras: list[tuple[str, str]], seed: int,
                 action_noise: float = 0.0, seeded_configs: bool = False, antialias: bool = True):
        """size: N for N x N frames, or (height, width)."""
        import gymnasium as gym
        import metaworld  # noqa: F401  (registers the Meta-World/* envs)
        import mujoco
        from metaworld.policies import ENV_POLICY_MAP

        size = (size, size) if isinstance(size, int) else size
        self.env = gym.make(
            "Meta-World/MT1", env_name=task, seed=seed, render_mode="rgb_array",
            width=size[1], height=size[0], camera_name=cameras[0][0], disable_env_checker=True,
        )
        self.policy = ENV_POLICY_MAP[task]()
        self.task = _metaworld_description(task)
        self.action_noise, self.seeded_configs = action_noise, seeded_configs
        model = self.env.unwrapped.model
        # Rendering is CPU-bound here (Mesa llvmpipe) and the 4096^2 shadow map costs ~1/3 of
        # every frame; a map 8x the image size looks identical at these resolutions.
        model.vis.quality.shadowsize = min(4096, max(512, 8 * max(size)))
        if not antialias:  # 4x multisampling is ~2/3 of a small frame's cost (what a policy benchmark renders)
            model.vis.quality.offsamples = 0
        self.cam_ids = {}
        for cam, key in cameras:
            self.cam_ids[key] = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, cam)
            if self.cam_ids[key] < 0:
                raise ValueError(f"unknown metaworld camera {cam!r}")
        self.image_keys = list(self.cam_ids)
        self.geom_class, self.site_class = _metaworld_classes(model)
        if seeded_configs:
            # The task-select wrapper calls set_task (which freezes the placement) on every reset:
            # let it do so once (the env refuses to step before), then switch that off.
            self.env.reset(seed=seed)
            wrapper = self.env
            while wrapper is not self.env.unwrapped:
                if hasattr(wrapper, "sample_tasks_on_reset"):
                    wrapper.sample_tasks_on_reset = False
                wrapper = wrapper.env

    def reset(self, seed):
        if self.seeded_configs:
            # MT1 freezes the object/goal placement to one of a fixed pool of ~50 configurations
            # (set_task), so different seeds can replay the very same episode. Here the placement is
            # drawn afresh from the task's own reset distribution with the episode's seed instead.
            env = self.env.unwrapped
            env._freeze_rand_vec, env.seeded_rand_vec = False, True
            env.seed(seed)
        self.noise_rng = np.random.default_rng([seed, 7])  # the noise of an episode depends on its seed only
        obs, _ = self.env.reset(seed=seed)
        # The corner* cameras are defined with their "up" axis pointing down (their images show
        # the table at the top): a 180 degree roll of the camera, so we rotate those images by
        # 180 degrees (not a mirror). Detected from the camera frame rather than hard-coded.
        xmat = self.env.unwrapped.data.cam_xmat
        self.upside_down = {k: xmat[c].reshape(3, 3)[2, 1] < -0.1 for k, c in self.cam_ids.items()}
        return obs

    def observe(self, obs):
        # The gymnasium MujocoRenderer reads `camera_id` on every render(), so one offscreen
        # GL context serves all cameras: we just point it at each camera in turn.
        renderer = self.env.unwrapped.mujoco_renderer
        images = {}
        for key, cid in self.cam_ids.items():
            renderer.camera_id = cid
            img = self.env.render()
            images[key] = np.ascontiguousarray(img[::-1, ::-1]) if self.upside_down[key] else img
        return images, obs[:4].astype(np.float32)

    def segment(self):
        """Ground truth for the frame observe() just rendered: MuJoCo's segmentation rendering
        (every geom and site drawn in a flat colour that encodes its id), mapped to classes."""
        import mujoco

        env = self.env.unwrapped
        viewer = env.mujoco_renderer._get_viewer("rgb_array")
        scn, out = viewer.scn, {}
        for key, cid in self.cam_ids.items():
            viewer.cam.type, viewer.cam.fixedcamid = mujoco.mjtCamera.mjCAMERA_FIXED, cid
            mujoco.mjv_updateScene(env.model, env.data, viewer.vopt, viewer.pert, viewer.cam,
                                   mujoco.mjtCatBit.mjCAT_ALL, scn)
            scn.flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = scn.flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = 1
            try:
                mujoco.mjr_render(viewer.viewport, scn, viewer.con)
            finally:
                scn.flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = scn.flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = 0
            rgb = np.zeros((viewer.viewport.height, viewer.viewport.width, 3), np.uint8)
            mujoco.mjr_readPixels(rgb, None, viewer.viewport, viewer.con)
            # segid + 1 is encoded in the colour (0: nothing drawn, the sky); gymnasium's own
            # segmentation path overflows on numpy 2, so it is decoded here.
            segid = rgb[::-1].astype(np.int64) @ np.array([1, 256, 65536]) - 1
            lut = np.zeros(scn.ngeom + 1, np.uint8)  # index segid + 1; unknown ids stay background
            for i in range(scn.ngeom):
                g = scn.geoms[i]
                table = {mujoco.mjtObj.mjOBJ_GEOM: self.geom_class, mujoco.mjtObj.mjOBJ_SITE: self.site_class}
                if g.segid >= 0 and g.objtype in table and g.segid + 1 < len(lut):
                    lut[g.segid + 1] = table[g.objtype][g.objid]
            labels = lut[np.clip(segid + 1, 0, scn.ngeom)]
            out[key] = np.ascontiguousarray(labels[::-1, ::-1]) if self.upside_down[key] else labels
        return out

    def act(self, obs):
        action = self.policy.get_action(obs)
        if self.action_noise > 0:
            # DART-style: perturb the expert so the data covers states (and motions) off its
            # trajectory; the expert corrects from wherever the noise took the arm.
            action = action + self.noise_rng.normal(0.0, self.action_noise, size=action.shape)
        # The expert may exceed the action space; the env would clip it, we record what it gets.
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def step(self, action):
        obs, _, terminated, truncated, info = self.env.step(action)
        return obs, bool(info["success"]), terminated or truncated


class PushTSim(Sim):
    """gym-pusht with a scripted pusher: go behind the T (w.r.t. the goal), then push it there."""

    robot_type = "pusht_agent"
    fps = PUSHT_FPS
    state_names = ["agent_x", "agent_y"]
    action_names = ["target_x", "target_y"]  # PD set-point of the agent, in the 512x512 frame
    image_keys = ["top"]
    task = "push the T-shaped block onto the target"

    def __init__(self, size: int, seed: int):
        import gymnasium as gym
        import gym_pusht  # noqa: F401  (registers gym_pusht/PushT-v0)

        self.env = gym.make(
            "gym_pusht/PushT-v0", obs_type="pixels_agent_pos", render_mode="rgb_array",
            observation_width=size, observation_height=size, disable_env_checker=True,
        )
        self.rng = np.random.default_rng(seed)
        self.size = size

    def reset(self, seed):
        obs, _ = self.env.reset(seed=seed)
        # Per-episode variation of the pusher, so episodes are not all alike.
        self.ctl = {"pushing": False, "standoff": self.rng.uniform(65, 85), "bias": self.rng.uniform(-6, 6)}
        return obs

    def observe(self, obs):
        return {"top": obs["pixels"]}, np.asarray(obs["agent_pos"], dtype=np.float32)

    def segment(self):
        """Ground truth for the frame observe() returned: the env's own scene (its 512 px canvas, the
        goal T drawn first, then walls, block and agent, as gym-pusht draws them) filled with classes
        instead of colours, and brought to the frame's size as the env brings its image (each pixel
        takes the class that covers most of it). The canvas and its walls are the work surface, the
        agent the robot, the block and the goal marker objects; nothing is background."""
        import cv2

        env = self.env.unwrapped
        canvas = np.zeros((512, 512), np.uint8)  # 0: table (the canvas), then objects, then the agent
        goal = env.get_goal_pose_body(env.goal_pose)
        for body in (goal, env.block):
            for shape in env.block.shapes:
                points = np.array([body.local_to_world(v) for v in shape.get_vertices()])
                cv2.fillPoly(canvas, [np.round(points).astype(np.int32)], 2)
        agent = env.agent
        cv2.circle(canvas, tuple(int(round(c)) for c in agent.position), int(round(list(agent.shapes)[0].radius)), 1, -1)
        onehot = np.stack([canvas == 0, canvas == 1, canvas == 2], -1).astype(np.float32)
        small = cv2.resize(onehot, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return {"top": np.array([1, 2, 3], np.uint8)[small.argmax(-1)]}

    def act(self, obs):
        agent, ctl = np.asarray(obs["agent_pos"], dtype=np.float64), self.ctl
        block = self.env.unwrapped.block
        com = np.array(block.local_to_world(block.center_of_gravity))
        gx, gy, gth = self.env.unwrapped.goal_pose
        goal_com = np.array([gx, gy]) + _rot(gth) @ np.array(block.center_of_gravity)
        u = (goal_com - com) / (np.linalg.norm(goal_com - com) + 1e-6)  # push direction
        perp = np.array([-u[1], u[0]])
        along, lateral = (agent - com) @ u, (agent - com) @ perp
        behind = com - u * ctl["standoff"]
        if ctl["pushing"] and (abs(lateral) > 35 or along > -20):
            ctl["pushing"] = False  # lost the block: go around again
        if ctl["pushing"]:
            target = agent + u * 40 + perp * ctl["bias"]
        elif along > -ctl["standoff"] + 25:  # beside / in front of the block: detour around its side,
            side = np.sign(lateral) or 1.0  # first sideways out of its way, then back behind it
            target = com + perp * side * 100 + u * (along if abs(lateral) < 85 else -ctl["standoff"])
        else:
            target = behind
            ctl["pushing"] = np.linalg.norm(agent - behind) < 15
        step = target - agent  # limit the per-step motion so the PD set-point moves smoothly
        step *= min(1.0, 30.0 / (np.linalg.norm(step) + 1e-6))
        return np.clip(agent + step, 15, 497).astype(np.float32)  # stay inside the walls

    def step(self, action):
        # On success the env reports terminated but keeps simulating; we record a few more frames.
        obs, _, _, truncated, info = self.env.step(action)
        return obs, bool(info["is_success"]), truncated


class AlohaSim(Sim):
    """gym-aloha's bimanual ViperX scene (insertion or transfer_cube), seen from its top camera. The
    arms follow a seeded smooth sweep of their joints about the start pose instead of a task policy:
    these recordings are for segmentation ground truth, where what matters is that the arms move
    over the table and its objects."""

    robot_type = "aloha"
    fps = 50  # gym-aloha's control rate (DT = 0.02 s)
    image_keys = ["top"]
    state_names = [f"{side}_{j}" for side in ("left", "right") for j in
                   ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper")]
    action_names = state_names

    def __init__(self, task: str, size: int, seed: int):
        import gymnasium as gym
        import gym_aloha  # noqa: F401  (registers gym_aloha/*)

        env_id = {"insertion": "gym_aloha/AlohaInsertion-v0", "transfer_cube": "gym_aloha/AlohaTransferCube-v0"}
        if task not in env_id:
            raise ValueError(f"unknown aloha task {task!r} (choices: {', '.join(env_id)})")
        self.env = gym.make(env_id[task], obs_type="pixels_agent_pos", observation_width=size,
                            observation_height=size, disable_env_checker=True)
        self.task = {"insertion": "insert the peg into the socket", "transfer_cube": "pick up the cube and hand it over"}[task]
        self.size = size
        physics = self.env.unwrapped._env.physics
        model = physics.model.ptr
        self.geom_class = _body_tree_classes(model, robot=lambda name: name.startswith("vx300s"),
                                             table=lambda name: name == "table")[model.geom_bodyid]

    def reset(self, seed):
        obs, _ = self.env.reset(seed=seed)
        rng = np.random.default_rng([seed, 11])
        self.t, self.home = 0, np.asarray(obs["agent_pos"], np.float64).copy()
        # per joint: amplitude (rad; the grippers' in their normalised 0-1 range), period (s), phase
        amp = np.tile([0.5, 0.35, 0.35, 0.4, 0.5, 0.6, 0.4], 2) * rng.uniform(0.5, 1.0, 14)
        self.sweep = (amp, rng.uniform(1.5, 3.0, 14), rng.uniform(0, 2 * np.pi, 14))
        return obs

    def observe(self, obs):
        # the env's own observation is always 640x480; the frame is rendered at the recorded size
        # (square: the top camera's view, cropped at the sides)
        physics = self.env.unwrapped._env.physics
        image = physics.render(height=self.size, width=self.size, camera_id="top")
        return {"top": image}, np.asarray(obs["agent_pos"], np.float32)

    def segment(self):
        """MuJoCo's segmentation rendering of the top camera (geom ids), mapped to classes by the body
        tree: the two arms are the robot, `table` the work surface, geoms on the world body (floor)
        background, every other body (peg, socket, cube) an object."""
        import mujoco

        physics = self.env.unwrapped._env.physics
        seg = physics.render(height=self.size, width=self.size, camera_id="top", segmentation=True)
        ids, types = seg[..., 0], seg[..., 1]
        labels = np.zeros(ids.shape, np.uint8)
        geom = (types == mujoco.mjtObj.mjOBJ_GEOM) & (ids >= 0)
        labels[geom] = self.geom_class[ids[geom]]
        return {"top": labels}

    def act(self, obs):
        amp, period, phase = self.sweep
        target = self.home + amp * np.sin(2 * np.pi * self.t / (period * self.fps) + phase) * \
            np.minimum(1.0, self.t / 25)  # ease in from the start pose
        for g in (6, 13):  # the grippers take a normalised opening in [0, 1]
            target[g] = 0.5 + amp[g] * np.sin(2 * np.pi * self.t / (period[g] * self.fps) + phase[g])
        self.t += 1
        return target.astype(np.float32)

    def step(self, action):
        obs, _, terminated, truncated, info = self.env.step(action)
        return obs, bool(info.get("is_success", False)), terminated or truncated


def _body_tree_classes(model, robot, table) -> np.ndarray:
    """MASK_CLASSES per body: the world body background, a tree whose top body name satisfies
    `robot` the robot, `table` the work surface, every other body an object."""
    import mujoco

    def top(i):  # the ancestor just below the world body
        while model.body_parentid[i] != 0:
            i = model.body_parentid[i]
        return i

    out = np.full(model.nbody, 3, np.uint8)
    out[0] = 0
    for b in range(1, model.nbody):
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, top(b)) or ""
        out[b] = 2 if robot(name) else 1 if table(name) else 3
    return out


def _metaworld_classes(model) -> tuple[np.ndarray, np.ndarray]:
    """MASK_CLASSES of every geom and site, from the body tree: the robot is the tree that holds the
    hand (pedestal and controller box included), the work surface is the table with its metal rim
    (`RetainingWall`), the floor plane and anything else on the world body is background, and every
    other body or site (puck, goal marker, drawer, button box ...) is a task object."""
    import mujoco

    def name(i):
        return mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, i) or ""

    def top(i):  # the ancestor just below the world body
        while model.body_parentid[i] != 0:
            i = model.body_parentid[i]
        return i

    hand = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "hand")
    robot_root = top(hand) if hand >= 0 else -1
    body_class = np.full(model.nbody, 3, np.uint8)
    body_class[0] = 0
    for b in range(1, model.nbody):
        root = top(b)
        if root == robot_root:
            body_class[b] = 2
        elif name(root) in ("tablelink", "RetainingWall") or name(root).startswith("table"):
            body_class[b] = 1
    site_class = body_class[model.site_bodyid].copy()
    site_class[model.site_bodyid == 0] = 3  # sites on the world body are goal markers (task objects)
    return body_class[model.geom_bodyid], site_class


def _rot(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def _metaworld_description(task: str) -> str:
    """Natural-language instruction: lerobot's own MetaWorld descriptions, else derived from the name."""
    try:
        text = resources.files("lerobot.envs").joinpath("metaworld_config.json").read_text()
        return json.loads(text)["TASK_DESCRIPTIONS"][task]
    except (FileNotFoundError, KeyError, ModuleNotFoundError):
        return task.removesuffix("-v3").replace("-", " ")


def _parse_size(text: str) -> int | tuple[int, int]:
    """--size: "128" (square) or "480x640" (height x width)."""
    try:
        if "x" in text.lower():
            height, width = (int(v) for v in text.lower().split("x"))
            return (height, width) if height != width else height
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or HxW (e.g. 128 or 480x640), got {text!r}") from None


def _parse_cameras(spec: str) -> list[tuple[str, str]]:
    """'corner2,gripperPOV=gripper' -> [('corner2', 'corner2'), ('gripperPOV', 'gripper')]."""
    pairs = [c.strip().split("=", 1) for c in spec.split(",") if c.strip()]
    return [(p[0], p[-1]) for p in pairs]


def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    # LeRobotDatasetMetadata.create() insists on creating the root itself.
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty (use --overwrite to replace it)")
        if not (out / "meta" / "info.json").exists():  # guard against `--overwrite --out ~`
            raise FileExistsError(f"{out} does not look like a LeRobot dataset; refusing to delete it")
        shutil.rmtree(out)
    elif out.exists():
        out.rmdir()


def build_dataset(
    out: str | Path, sim: str = "metaworld", task: str = "pick-place-v3", episodes: int = 6,
    size: int | tuple[int, int] = 128, cameras: str = "corner2,gripperPOV", seed: int = 0, max_steps: int = 150,
    codec: str | None = None, fps: int | None = None, overwrite: bool = False,
    keep_frames: bool = False, repo_id: str = "local/sim", log=print,
    action_noise: float = 0.0, seeded_configs: bool = False, masks: bool = False, antialias: bool = True,
) -> BuildResult:
    """Roll out `episodes` simulator episodes and write them to `out` as a LeRobot v3.0 dataset.

    `size`: N for N x N frames, or (height, width) for MetaWorld (a real camera's 480x640).
    metaworld only: `action_noise` adds Gaussian noise (std, in action units) to the expert's action
    before it is applied (the recorded action is the applied one, after clipping); `seeded_configs`
    draws each episode's object/goal placement from its seed instead of MT1's fixed task pool.
    `antialias=False` (metaworld) renders without multisampling, 3x faster on a CPU.
    `masks` (metaworld, pusht, aloha) also writes the simulator's ground-truth segmentation of every recorded frame
    beside the episodes: OUT/masks/episode_NNNNNN.npz, one (T, H, W) uint8 array per image key with
    the classes of OUT/masks/classes.json (MASK_CLASSES); see load_masks().

    Returns a BuildResult whose `episodes` hold the state/action arrays passed to add_frame
    (and the frames too if `keep_frames`), for checking what lerobot reads back.
    """
    from lerobot.configs.video import RGBEncoderConfig
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    # Check the arguments (codec, task, cameras) before touching the output dir.
    try:
        # rgb_encoder=None means lerobot's own default encoder (libsvtav1 in lerobot 0.6.1).
        encoder = RGBEncoderConfig(vcodec=codec) if codec else None
        if sim not in ("metaworld", "pusht", "aloha"):
            raise ValueError(f"unknown sim {sim!r}")
        if action_noise < 0:
            raise ValueError(f"action_noise must be >= 0, got {action_noise}")
        if sim != "metaworld" and (action_noise or seeded_configs):
            raise ValueError("action_noise and seeded_configs are metaworld options")
        height, width = (size, size) if isinstance(size, int) else size
        if min(height, width) < 1:
            raise ValueError(f"size must be positive, got {height}x{width}")
        if sim != "metaworld" and height != width:
            raise ValueError(f"{sim} records square frames; {height}x{width} is a metaworld size")
        if sim == "metaworld":
            env = MetaWorldSim(task, (height, width), _parse_cameras(cameras), seed, action_noise, seeded_configs,
                               antialias)
        elif sim == "aloha":
            env = AlohaSim("insertion" if task == "pick-place-v3" else task, height, seed)
        else:
            env = PushTSim(height, seed)
    except (ValueError, KeyError) as e:
        raise SetupError(f"bad argument: {e}") from e
    out = Path(out)
    try:
        _prepare_out_dir(out, overwrite)
    except FileExistsError:
        env.close()
        raise

    img = {"dtype": "video", "shape": (height, width, 3), "names": ["height", "width", "channels"]}
    features = {f"observation.images.{k}": dict(img) for k in env.image_keys}
    features["observation.state"] = {"dtype": "float32", "shape": (len(env.state_names),), "names": env.state_names}
    features["action"] = {"dtype": "float32", "shape": (len(env.action_names),), "names": env.action_names}
    fps = fps or env.fps
    ds = LeRobotDataset.create(repo_id, fps=fps, features=features, root=out,
                               robot_type=env.robot_type, use_videos=True, rgb_encoder=encoder)
    result = BuildResult(root=out, fps=fps, features=ds.meta.features)
    try:
        for i in range(episodes):
            t0 = time.perf_counter()
            ep = env.rollout(seed + i, max_steps, masks=masks)
            if masks:
                write_masks(out, i, ep.masks)
            for t in range(len(ep.action)):
                frame = {f"observation.images.{k}": v[t] for k, v in ep.frames.items()}
                frame.update({"observation.state": ep.state[t], "action": ep.action[t], "task": ep.task})
                ds.add_frame(frame)
            # Sequential encoding: a process pool per episode costs more than it saves on 2 cores,
            # and we don't want to fork a process that holds a live GL context.
            ds.save_episode(parallel_encoding=False)
            if not keep_frames:
                ep.frames = {}
            result.episodes.append(ep)
            log(f"episode {i + 1}/{episodes}: seed={ep.seed} frames={len(ep.action)} "
                f"success={ep.success} ({time.perf_counter() - t0:.1f}s)")
    finally:
        ds.finalize()  # writes parquet footers; the dataset is unreadable without it
        env.close()
    return result


def write_masks(root: Path, episode_index: int, masks: dict[str, np.ndarray]) -> Path:
    folder = Path(root) / "masks"
    folder.mkdir(exist_ok=True)
    (folder / "classes.json").write_text(json.dumps({str(k): v for k, v in MASK_CLASSES.items()}) + "\n")
    path = folder / f"episode_{episode_index:06d}.npz"
    np.savez_compressed(path, **{f"observation.images.{k}": v for k, v in masks.items()})
    return path


def load_masks(root: str | Path, episode_index: int) -> dict[str, np.ndarray]:
    """Ground truth written by --masks: video key -> (T, H, W) uint8 classes (MASK_CLASSES)."""
    with np.load(Path(root) / "masks" / f"episode_{episode_index:06d}.npz") as data:
        return {k: data[k] for k in data.files}


def main(argv: list[str] | None = None) -> None:
    head, body = __doc__.split("\n\n", 1)
    p = argparse.ArgumentParser(description=head, epilog=body, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sim", choices=["metaworld", "pusht", "aloha"], required=True, help="simulator to record")
    p.add_argument("--out", required=True, type=Path, help="output dataset root (must be empty or absent)")
    p.add_argument("--task", default="pick-place-v3",
                   help="metaworld task (default: %(default)s); aloha: insertion (default) or transfer_cube")
    p.add_argument("--episodes", type=int, default=6, help="number of episodes (default: %(default)s)")
    p.add_argument("--size", type=_parse_size, default=128,
                   help="image size in pixels: N for N x N, or HxW (metaworld only, e.g. 480x640 as real "
                        "cameras record) (default: %(default)s)")
    p.add_argument("--cameras", default="corner2,gripperPOV",
                   help="metaworld cameras, comma-separated; CAM=KEY stores CAM as observation.images.KEY "
                        "(cameras: corner, corner2, corner3, corner4, topview, behindGripper, gripperPOV; "
                        "default: %(default)s). pusht always records one view: observation.images.top")
    p.add_argument("--seed", type=int, default=0, help="episode i is reset with seed+i (default: %(default)s)")
    p.add_argument("--max-steps", type=int, default=150, help="max control steps per episode (default: %(default)s)")
    p.add_argument("--codec", help="video codec: libsvtav1, h264, hevc, libaom-av1, auto "
                                   "(default: lerobot's default, libsvtav1 in lerobot 0.6.1)")
    p.add_argument("--fps", type=int, help=f"override the recorded fps (default: the control rate, "
                                           f"metaworld {METAWORLD_FPS}, pusht {PUSHT_FPS})")
    p.add_argument("--action-noise", type=float, default=0.0, metavar="SIGMA",
                   help="metaworld: std of Gaussian noise added to the expert's action before it is applied; "
                        "the applied (clipped) action is recorded (default: %(default)s)")
    p.add_argument("--seeded-configs", action="store_true",
                   help="metaworld: draw each episode's object/goal placement from its seed, instead of MT1's "
                        "fixed pool of ~50 configurations (where different seeds can repeat an episode)")
    p.add_argument("--masks", action="store_true",
                   help="also write the simulator's ground-truth segmentation (background / table / "
                        "robot / object per pixel) of every frame to OUT/masks/, for benchmarks/bench_edits.py")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    args = p.parse_args(argv)

    warnings.filterwarnings("ignore", module="metaworld")  # "Constant(s) may be too high" spam
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")  # from pygame (pusht)
    import datasets

    datasets.disable_progress_bars()  # one "Map" bar per saved episode otherwise
    import av

    av.logging.set_level(av.logging.ERROR)  # the mp4 muxer's "Starting second pass" line per video
    t0 = time.perf_counter()
    try:
        res = build_dataset(args.out, sim=args.sim, task=args.task, episodes=args.episodes, size=args.size,
                            cameras=args.cameras, seed=args.seed, max_steps=args.max_steps, codec=args.codec,
                            fps=args.fps, overwrite=args.overwrite, action_noise=args.action_noise,
                            seeded_configs=args.seeded_configs, masks=args.masks)
    except (FileExistsError, SetupError) as e:  # bad --out, --cameras, --codec, --task
        p.error(str(e))
    n_frames = sum(len(e.action) for e in res.episodes)
    n_success = sum(e.success for e in res.episodes)
    print(f"\nwrote {res.root}: {len(res.episodes)} episodes ({n_success} successful), {n_frames} frames, "
          f"fps={res.fps}, {time.perf_counter() - t0:.1f}s")
    for name, ft in res.features.items():
        print(f"  {name:32s} {ft['dtype']:8s} {tuple(ft['shape'])}")


if __name__ == "__main__":
    main()
