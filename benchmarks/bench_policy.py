#!/usr/bin/env python
"""Does augmented data make a policy hold up under visual shift? Measured in MetaWorld, end to end.

    python benchmarks/bench_policy.py --work /tmp/bench_policy            # the full run
    python benchmarks/bench_policy.py --work /tmp/bench_policy --quick    # smoke check, <= 10 min
    make bench-policy                                                     # the full run, into out/bench_policy

Per task:
1. record   `--demos` scripted-expert episodes (scripts/make_sim_dataset.py: lerobot's writer, one fixed
            camera, corner2, at `--size` px, placements drawn from each episode's seed);
2. augment  them with the product: `augment run` on a spec written here (background, table texture
            and pasted distractors, `--variants` new episodes per source episode, actions kept as
            recorded; `--no-surface` leaves the table's texture as recorded, `--no-lighting` the light);
            the real and the augmented datasets are merged with lerobot's `aggregate_datasets`;
3. train    the same lerobot policy (ACT, CPU-sized, no pretrained backbone) twice with `lerobot-train`,
            same steps, batch, seed: on the real episodes, and on real + augmented;
4. evaluate both in the simulator on placements no demo used (seeds from 10000), in the recorded scene
            and in scenes the augmentation never made: table and floor re-coloured or their textures
            swapped in the MuJoCo model, the lights changed, 3-D distractor objects on the table, and
            all of these at once;
5. print    task x condition x policy: success rate with its Wilson 95% interval, and a last line
            `policy: real in-dist X shifted Y | augmented in-dist X2 shifted Y2`.

Every step's output stays in --work; a rerun reuses a step's output made with the same settings (its
`<folder>.settings.json`) and redoes it, and what depends on it, when they differ.
`--frames` saves PNGs of each shifted scene and of source | augmented frames to --work/frames.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("SVT_LOG", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
import warnings
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from make_sim_dataset import MetaWorldSim, _metaworld_classes, build_dataset  # noqa: E402

CAMERA = "corner2"
IMAGE_KEY = f"observation.images.{CAMERA}"
EVAL_SEED = 10_000  # evaluation placements: seeds no demonstration used
# Tasks whose objects the edits keep at 64 px (checked on source | augmented PNGs: the pale drawer of
# drawer-close is taken for backdrop by `background`, so that task tests nothing; see the README).
TASKS = ["button-press-topdown-v3", "button-press-v3", "handle-press-v3"]
CONDITIONS = ["original", "table", "light", "distractors", "all"]
SHIFTS = CONDITIONS[1:]


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


def processes(n: int) -> ProcessPoolExecutor:
    """Worker processes for recording and evaluation (spawned: MuJoCo's GL context and torch's threads do
    not survive a fork)."""
    return ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"))


# The full run and the smoke check. Train steps and eval episodes are the same for both policies.
# Batch 20 (32 until 30 Nov) so that the full run fits 90 minutes on a 2-core CPU: side by side, one
# thread each, an ACT step took 1.0 s at batch 32 and 0.62 s at batch 20 on the CI-like machine.
PRESETS = {
    "full": dict(demos=40, variants=3, steps=2000, batch_size=20, episodes=50, max_steps=150),
    "quick": dict(demos=8, variants=2, steps=150, batch_size=16, episodes=4, max_steps=100),
}


# ----------------------------------------------------------------------------------------- record


def reusable(out: Path, done: Path, settings: dict) -> bool:
    """Whether `out` holds a finished step (`done` exists) made with `settings`, as stamped beside it by
    stamp(); if not, `out` is cleared for a fresh one. (A smoke run's 8 demos and 150-step policy in
    the same --work must not stand in for the full run's.)"""
    stamp_file = _stamp_file(out)
    if done.exists() and stamp_file.exists() and settings_of(out) == settings:
        return True
    shutil.rmtree(out, ignore_errors=True)
    stamp_file.unlink(missing_ok=True)
    return False


def stamp(out: Path, settings: dict) -> None:
    _stamp_file(out).write_text(json.dumps(settings, sort_keys=True))


def settings_of(out: Path) -> dict:
    return json.loads(_stamp_file(out).read_text())


def _stamp_file(out: Path) -> Path:
    return out.parent / f"{out.name}.settings.json"


def record(out: Path, task: str, demos: int, size: int) -> Path:
    settings = dict(task=task, demos=demos, size=size)
    if reusable(out, out / "meta" / "info.json", settings):
        return out
    t0 = time.perf_counter()
    res = build_dataset(out, task=task, episodes=demos, size=size, cameras=CAMERA, seed=0, seeded_configs=True,
                        antialias=False, max_steps=200, overwrite=True, repo_id=f"local/{task}-real", log=lambda *a: None)
    ok = sum(e.success for e in res.episodes)
    log(f"[{task}] recorded {demos} expert episodes ({ok} successful) in {time.perf_counter() - t0:.0f}s")
    stamp(out, settings)
    return out


# ---------------------------------------------------------------------------------------- augment


def write_assets(folder: Path, seed: int = 0) -> Path:
    """Distractor cut-outs for the paste edit: shaded RGBA blocks, cans and balls in plain colours
    (nothing can be downloaded here; a user points `assets` at photos of their own objects)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    colours = {"blue": (40, 90, 220), "green": (40, 170, 70), "orange": (240, 140, 30),
               "purple": (140, 60, 190), "cyan": (40, 190, 200), "white": (230, 230, 225)}
    yy, xx = np.mgrid[0:64, 0:64] / 63.0
    for i, (name, rgb) in enumerate(colours.items()):
        shape = ["block", "can", "ball"][i % 3]
        if shape == "ball":
            r = np.hypot(xx - 0.5, yy - 0.5)
            alpha = r < 0.45
            shade = np.clip(1.15 - 1.2 * np.hypot(xx - 0.38, yy - 0.35), 0.35, 1.1)
        elif shape == "can":
            alpha = (np.abs(xx - 0.5) < 0.3) & (yy > 0.12) & (yy < 0.95)
            shade = 0.55 + 0.5 * np.cos((xx - 0.42) * 4.0).clip(0, 1)
            shade = np.where(yy < 0.25, shade * 1.15, shade)  # the lid catches the light
        else:
            alpha = (np.abs(xx - 0.5) < 0.4) & (yy > 0.25) & (yy < 0.92)
            shade = np.where(yy < 0.42, 1.1, np.where(xx < 0.5, 0.85, 0.65))
        shade = shade * rng.uniform(0.9, 1.1)
        rgba = np.zeros((64, 64, 4), np.uint8)
        rgba[..., :3] = np.clip(np.array(rgb)[None, None] * shade[..., None], 0, 255)
        rgba[..., 3] = alpha * 255
        Image.fromarray(rgba, "RGBA").save(folder / f"{name}_{shape}.png")
    return folder


def augment_spec(real: Path, out: Path, assets: Path, variants: int, surface: bool = True,
                 lighting: bool = True) -> str:
    """The product's structure-preserving recipe: a new backdrop, a new table texture (`surface`,
    modulated by the table's own shading), two pasted distractors on the table in every frame and
    another light (`lighting` at its defaults: exposure, colour temperature, tint, falloff);
    robot, table geometry, task objects and the recorded actions stay as recorded. `surface` goes
    between `background` (which needs the table as recorded to keep it) and `add_object` (whose cut-outs
    would be re-textured). `add_object`'s motion segmenter counts still pixels more saturated than 0.75
    as objects (the button: 1.0) but not the wood (0.58), or no table would be free.
    The cut-outs are 8-12 px at 64 px, about the task object's size: at 5-8 px (0.08-0.13) they were
    specks no policy needs to ignore. Free table space beside the arm's sweep limits them to two;
    a variant where two do not fit is dropped by `add_object` (measured: 35-60% of variants).
    surface=False (--no-surface) is the recipe without the table edit, the default until 30 Nov: over
    the three tasks, shifted success 0.91 without it and 0.94 with it (README). lighting=False
    (--no-lighting) is the recipe without the light, the default until 30 Nov 2026 (README)."""
    table = f"  - type: surface\n    cameras: [{IMAGE_KEY}]\n" if surface else ""
    light = f"  - type: lighting\n    cameras: [{IMAGE_KEY}]\n" if lighting else ""
    return f"""name: bench-policy
seed: 0
source:
  root: {real}
stages:
  - type: background
    backgrounds: procedural
    variants: {variants}
    cameras: [{IMAGE_KEY}]
{table}  - type: add_object
    mode: paste
    assets: {assets}
    count: 2
    size: [0.13, 0.19]
    surface_box: [0.35, 0.45, 0.88, 0.85]  # the table top in corner2's view (wider: objects off its edge)
    margin: 1                             # px at 64 px: the arm sweeps most of the table
    segmenter: {{grow: 1, saturation_threshold: 0.75}}
    cameras: [{IMAGE_KEY}]
    apply_to: all
{light}  - type: source
sink:
  root: {out}
  repo_id: local/augmented
  overwrite: true
"""


def augment(work: Path, real: Path, variants: int, surface: bool = True, lighting: bool = True) -> Path:
    out = work / "augmented"
    settings = dict(real=settings_of(real), variants=variants, surface=surface)
    if lighting:  # absent from the stamps made before `lighting` joined the recipe: those match --no-lighting
        settings["lighting"] = True
    if reusable(out, out / "meta" / "info.json", settings):
        return out
    spec = work / "augment.yaml"
    spec.write_text(augment_spec(real, out, write_assets(work / "assets"), variants, surface, lighting))
    t0 = time.perf_counter()
    run([sys.executable, "-m", "augment.cli", "run", str(spec), "--quiet"], work / "augment.log")
    made = count_episodes(out)
    log(f"[{real.parent.name}] augment run: {made} episodes in {time.perf_counter() - t0:.0f}s (report: {work / 'augment.log'})")
    if not made:
        raise SystemExit(f"error: augment run made no episodes; see {work / 'augment.log'}")
    stamp(out, settings)
    return out


def merge(real: Path, augmented: Path, out: Path) -> Path:
    """real + augmented as one dataset, with lerobot's own aggregate_datasets (stats recomputed)."""
    settings = dict(real=settings_of(real), augmented=settings_of(augmented))
    if reusable(out, out / "meta" / "info.json", settings):
        return out
    from lerobot.datasets.aggregate import aggregate_datasets

    aggregate_datasets(["local/real", "local/augmented"], "local/real_augmented", roots=[real, augmented], aggr_root=out)
    stamp(out, settings)
    return out


def count_episodes(root: Path) -> int:
    return json.loads((root / "meta" / "info.json").read_text())["total_episodes"]


# ------------------------------------------------------------------------------------------ train


def train(dataset: Path, out: Path, steps: int, batch_size: int, seed: int) -> Path:
    """lerobot-train, ACT at a CPU size. Same arguments for both policies except the dataset."""
    model = out / "checkpoints" / "last" / "pretrained_model"
    settings = dict(dataset=settings_of(dataset), steps=steps, batch_size=batch_size, seed=seed)
    if reusable(out, model / "model.safetensors", settings):
        return model
    args = [
        str(Path(sys.executable).parent / "lerobot-train"),
        f"--dataset.repo_id=local/{dataset.name}", f"--dataset.root={dataset}",
        "--policy.type=act", "--policy.device=cpu", "--policy.push_to_hub=false",
        "--policy.pretrained_backbone_weights=null",  # nothing can be downloaded: train from scratch
        "--policy.dim_model=256", "--policy.n_heads=4", "--policy.dim_feedforward=1024",
        "--policy.n_encoder_layers=2", "--policy.n_vae_encoder_layers=2",
        "--policy.chunk_size=20", "--policy.n_action_steps=10",
        "--policy.optimizer_lr=1e-4", "--policy.optimizer_lr_backbone=1e-4",
        f"--steps={steps}", f"--batch_size={batch_size}", f"--seed={seed}",
        "--num_workers=1", f"--save_freq={steps}", f"--log_freq={max(steps // 10, 1)}",
        "--env_eval_freq=0", "--wandb.enable=false", f"--output_dir={out}",
    ]
    t0 = time.perf_counter()
    # One torch thread, as in evaluate(): on the shared cores with realtime jobs of other sessions, 40 steps
    # took 1.5 s each with one thread and > 7 s with two (measured on the same dataset, same minute).
    run(args, out.parent / f"{out.name}.log", extra_env={"OMP_NUM_THREADS": "1"})
    log(f"[{dataset.parent.name}] trained on {dataset.name} ({count_episodes(dataset)} episodes): "
        f"{steps} steps in {time.perf_counter() - t0:.0f}s")
    stamp(out, settings)
    return model


def run(args: list[str], log_file: Path, extra_env: dict[str, str] | None = None) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **(extra_env or {}))
    with open(log_file, "w") as f:
        done = subprocess.run(args, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if done.returncode:
        tail = log_file.read_text().splitlines()[-15:]
        raise SystemExit(f"error: {Path(args[0]).name} failed (exit {done.returncode}); see {log_file}:\n" + "\n".join(tail))


# ------------------------------------------------------------------------------- shifted scenes


@dataclass
class Shift:
    """A visual change of the MuJoCo scene the augmentation never produced; drawn per episode."""

    table: bool = False
    light: bool = False
    distractors: bool = False

    @classmethod
    def named(cls, condition: str) -> Shift:
        if condition == "all":
            return cls(True, True, True)
        return cls(**{condition: True}) if condition != "original" else cls()


class ShiftedSim(MetaWorldSim):
    """MetaWorldSim whose scene can be re-coloured, re-lit and cluttered per episode."""

    def __init__(self, task: str, size: int, shift: Shift):
        super().__init__(task, size, [(CAMERA, CAMERA)], seed=EVAL_SEED, seeded_configs=True, antialias=False)
        self.shift, self.markers = shift, []
        model = self.env.unwrapped.model
        geom_class, _ = _metaworld_classes(model)
        self.table_geoms = np.flatnonzero(geom_class == 1)
        self.floor_geoms = np.flatnonzero((geom_class == 0) & (model.geom_type == 0))  # the floor plane
        self.saved = {name: getattr(model, name).copy() for name in
                      ("geom_matid", "geom_rgba", "mat_rgba", "light_diffuse", "light_dir", "light_pos")}
        self.headlight = model.vis.headlight.diffuse.copy()

    def reset(self, seed):
        # The model is changed before the env's reset, whose forward pass computes the lights' world
        # directions from it (changed after, the first frame would still be lit as the last episode).
        model, rng = self.env.unwrapped.model, np.random.default_rng([seed, 99])
        for name, value in self.saved.items():
            getattr(model, name)[:] = value
        model.vis.headlight.diffuse[:] = self.headlight
        if self.shift.table:
            table_mat = model.geom_matid[self.table_geoms[0]]
            floor_mat = model.geom_matid[self.floor_geoms[0]]
            if rng.random() < 0.5:  # swap the wood and the floor textures, and tint them
                model.geom_matid[self.table_geoms] = np.where(model.geom_matid[self.table_geoms] == table_mat,
                                                              floor_mat, model.geom_matid[self.table_geoms])
                model.geom_matid[self.floor_geoms] = table_mat
                model.mat_rgba[[table_mat, floor_mat], :3] = rng.uniform(0.4, 1.0, (2, 3))
            else:  # plain colours, no texture
                model.geom_matid[self.table_geoms] = -1
                model.geom_rgba[self.table_geoms, :3] = rng.uniform(0.1, 0.9, 3)
                model.geom_matid[self.floor_geoms] = -1
                model.geom_rgba[self.floor_geoms, :3] = rng.uniform(0.1, 0.9, 3)
        if self.shift.light:
            tint = rng.uniform(0.5, 1.0, 3)
            scale = rng.uniform(0.2, 0.45) if rng.random() < 0.5 else rng.uniform(1.8, 2.6)  # dim or glaring
            model.light_diffuse[:] = self.saved["light_diffuse"] * scale * tint
            model.vis.headlight.diffuse[:] = self.headlight * scale * tint
            direction = rng.normal(size=(model.nlight, 3))
            direction[:, 2] = -np.abs(direction[:, 2]) - 0.5  # still from above, from elsewhere
            model.light_dir[:] = direction / np.linalg.norm(direction, axis=1, keepdims=True)
        obs = super().reset(seed)
        self.markers = self.clutter(rng) if self.shift.distractors else []
        return obs

    def clutter(self, rng) -> list[dict]:
        """Three visual-only objects on the table, off the line from the hand to the task object."""
        import mujoco

        env = self.env.unwrapped
        hand, target = env.tcp_center[:2].copy(), np.asarray(env._target_pos)[:2]
        kinds = [mujoco.mjtGeom.mjGEOM_BOX, mujoco.mjtGeom.mjGEOM_CYLINDER, mujoco.mjtGeom.mjGEOM_SPHERE]
        markers, placed = [], []
        while len(markers) < 3:
            xy = np.array([rng.uniform(-0.4, 0.4), rng.uniform(0.5, 0.85)])
            size = rng.uniform(0.03, 0.05)  # half-extent: 6-10 cm objects, about the task object's size
            t = np.clip(np.dot(xy - hand, target - hand) / (np.dot(target - hand, target - hand) + 1e-9), 0, 1)
            if (np.linalg.norm(xy - (hand + t * (target - hand))) < 0.08 + size
                    or any(np.linalg.norm(xy - p) < 0.1 + size for p in placed)):
                continue
            kind = kinds[len(markers) % 3]
            markers.append(dict(type=kind, pos=np.array([*xy, size]), size=np.array([size, size, size]),
                                rgba=np.array([*rng.uniform(0.05, 1.0, 3), 1.0]), mat=np.eye(3).flatten()))
            placed.append(xy)
        return markers

    def observe(self, obs):
        # gymnasium's renderer draws its markers once and forgets them: hand them over before each frame
        viewer = self.env.unwrapped.mujoco_renderer._get_viewer("rgb_array")
        for m in self.markers:
            viewer.add_marker(**m)
        return super().observe(obs)


# --------------------------------------------------------------------------------------- evaluate


def load_policy(model_dir: Path):
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    policy = ACTPolicy.from_pretrained(str(model_dir))
    policy.eval()
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(model_dir),
                                         preprocessor_overrides={"device_processor": {"device": "cpu"}})
    return policy, pre, post


def evaluate(model_dir: Path, task: str, size: int, condition: str, episodes: int, max_steps: int,
             frames: Path | None = None) -> list[bool]:
    """Roll the policy out on `episodes` held-out placements; success as MetaWorld reports it."""
    import torch

    # One thread: on the shared cores (load ~24) one ACT chunk took 0.18-0.23 s with one torch thread
    # and 3.1-3.8 s with two (the threads wait on each other), which made the evaluation 10x slower.
    torch.set_num_threads(1)
    policy, pre, post = load_policy(model_dir)
    n_steps = policy.config.n_action_steps
    sim = ShiftedSim(task, size, Shift.named(condition))
    results = []
    try:
        for i in range(episodes):
            obs = sim.reset(EVAL_SEED + i)
            success, done, t = False, False, 0
            while t < max_steps and not (success or done):
                # What ACT's select_action does (a chunk, then its first n_action_steps open loop),
                # rendering only the frames the policy looks at: rendering costs far more than physics.
                images, state = sim.observe(obs)
                if frames is not None and t == 0 and i < 4:
                    save_png(frames / f"{task}_{condition}_{i}.png", images[CAMERA])
                batch = {IMAGE_KEY: torch.from_numpy(images[CAMERA]).permute(2, 0, 1)[None].float() / 255,
                         "observation.state": torch.from_numpy(state)[None], "task": [sim.task]}
                with torch.inference_mode():
                    chunk = post(policy.predict_action_chunk(pre(batch))[:, :n_steps])[0].numpy()
                for action in chunk.clip(-1, 1):
                    obs, success, done = sim.step(action)
                    t += 1
                    if success or done or t >= max_steps:
                        break
            results.append(success)
    finally:
        sim.close()
    return results


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (sensible at 0 and n, unlike p +- 1.96 se)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def save_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def save_augmented_frames(real: Path, augmented: Path, out: Path, n: int = 3) -> None:
    """source | augmented variants, first and middle frame, for looking at what the policy trains on."""
    from augment.source import LeRobotSource

    src, aug = LeRobotSource(real), LeRobotSource(augmented)
    source_of = {r["episode_index"]: json.loads(r["augment/provenance"])["source"]["episode_index"] for r in aug.episodes}
    rows = []
    for ep in range(min(n, len(src.episodes))):
        video = src.read_episode(ep).frames[IMAGE_KEY]
        variants = [aug.read_episode(j).frames[IMAGE_KEY] for j, s in source_of.items() if s == ep]
        for t in (0, len(video) // 2):
            rows.append(np.concatenate([video[t]] + [v[t] for v in variants], axis=1))
    width = max(r.shape[1] for r in rows)
    save_png(out / "augmented.png", np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]))


# ------------------------------------------------------------------------------------------- main


def table(rows: list[dict]) -> str:
    lines = ["| task | condition | real only | real + augmented |", "|---|---|---|---|"]
    for task in dict.fromkeys(r["task"] for r in rows):
        for cond in CONDITIONS:
            cells = []
            for policy in ("real", "augmented"):
                r = next((r for r in rows if (r["task"], r["condition"], r["policy"]) == (task, cond, policy)), None)
                cells.append("—" if r is None else
                             f"{r['rate']:.2f} [{r['low']:.2f}, {r['high']:.2f}] ({r['successes']}/{r['episodes']})")
            lines.append(f"| {task} | {cond} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    def rate(policy, shifted):
        sel = [r for r in rows if r["policy"] == policy and (r["condition"] != "original") == shifted]
        n = sum(r["episodes"] for r in sel)
        return sum(r["successes"] for r in sel) / n if n else float("nan")

    return (f"policy: real in-dist {rate('real', False):.2f} shifted {rate('real', True):.2f} | "
            f"augmented in-dist {rate('augmented', False):.2f} shifted {rate('augmented', True):.2f}")


README_BEGIN, README_END = "<!-- bench_policy table -->", "<!-- /bench_policy table -->"


def write_readme(path: Path, text: str) -> None:
    doc = path.read_text()
    if README_BEGIN not in doc or README_END not in doc:
        raise SystemExit(f"error: {path}: no {README_BEGIN} ... {README_END} block to replace")
    head, rest = doc.split(README_BEGIN, 1)
    path.write_text(f"{head}{README_BEGIN}\n{text}\n{README_END}{rest.split(README_END, 1)[1]}")


def main(argv: list[str] | None = None) -> None:
    head, body = __doc__.split("\n\n", 1)
    p = argparse.ArgumentParser(description=head, epilog=body, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, required=True,
                   help="folder for every step's output (reused on rerun with the same settings)")
    p.add_argument("--tasks", help=f"MetaWorld tasks, comma-separated (default: {','.join(TASKS)}; --quick: the first)")
    p.add_argument("--quick", action="store_true", help="smoke check: few demos, steps and episodes (<= 10 min)")
    p.add_argument("--size", type=int, default=64, help="camera image side in px (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1000, help="training seed, the same for both policies")
    for name in PRESETS["full"]:
        p.add_argument(f"--{name.replace('_', '-')}", type=int, help=f"override the preset (full: {PRESETS['full'][name]})")
    p.add_argument("--serial", dest="parallel", action="store_false",
                   help="one job at a time: record the tasks, train the two policies and evaluate one after another "
                        "(default: two at a time, one core each)")
    p.add_argument("--conditions", default=",".join(CONDITIONS), help="evaluation scenes (default: %(default)s)")
    p.add_argument("--no-surface", dest="surface", action="store_false",
                   help="the recipe without the table edit (`surface` between `background` and `add_object`)")
    p.add_argument("--no-lighting", dest="lighting", action="store_false",
                   help="the recipe without the light change (`lighting` after `add_object`)")
    p.add_argument("--frames", action="store_true", help="save PNGs of the shifted scenes and the augmented frames")
    p.add_argument("--json", type=Path, help="write the rows here too")
    p.add_argument("--readme", type=Path, help=f"replace the table between {README_BEGIN} and {README_END} in this file")
    args = p.parse_args(argv)
    cfg = dict(PRESETS["quick" if args.quick else "full"])
    cfg.update({k: v for k, v in vars(args).items() if k in cfg and v is not None})
    conditions = [c.strip() for c in args.conditions.split(",")]
    unknown = sorted(set(conditions) - set(CONDITIONS))
    if unknown:
        p.error(f"--conditions: unknown {unknown}; choose from {CONDITIONS}")
    warnings.filterwarnings("ignore")
    import datasets

    datasets.disable_progress_bars()

    t_start = time.perf_counter()
    log(f"settings: {cfg} size={args.size} seed={args.seed} conditions={conditions}")
    rows = []
    tasks = [t.strip() for t in args.tasks.split(",")] if args.tasks else TASKS[:1] if args.quick else TASKS
    workers = 2 if args.parallel else 1
    # The demos of every task first, two tasks at a time (one core each; rendering and encoding are
    # single-threaded), then per task: augment, train both policies side by side, evaluate two at a time.
    for task in tasks:
        (args.work / task).mkdir(parents=True, exist_ok=True)
    with processes(workers) as pool:
        reals = dict(zip(tasks, pool.map(record, [args.work / t / "real" for t in tasks], tasks,
                                         [cfg["demos"]] * len(tasks), [args.size] * len(tasks))))
    for task in tasks:
        work = args.work / task
        real = reals[task]
        aug = augment(work, real, cfg["variants"], args.surface, args.lighting)
        both = merge(real, aug, work / "real_augmented")
        if args.frames:
            save_augmented_frames(real, aug, args.work / "frames" / task)
        # The two trainings run side by side, one torch thread each: on 2 cores that halves the benchmark's
        # longest step (one lerobot-train at one thread leaves the second core idle; two threads for one
        # run gained little here, see train()).
        with ThreadPoolExecutor(max_workers=workers) as pool:
            jobs = {name: pool.submit(train, data, work / f"train_{name}", cfg["steps"], cfg["batch_size"], args.seed)
                    for name, data in (("real", real), ("augmented", both))}
            models = {name: job.result() for name, job in jobs.items()}
        t0 = time.perf_counter()
        with processes(workers) as pool:
            jobs = {(cond, policy): pool.submit(evaluate, model, task, args.size, cond, cfg["episodes"], cfg["max_steps"],
                                                args.work / "frames" / task if args.frames and policy == "real" else None)
                    for cond in conditions for policy, model in models.items()}
            for (cond, policy), job in jobs.items():  # rows in order; the jobs run two at a time
                res = job.result()
                k, n = sum(res), len(res)
                low, high = wilson(k, n)
                rows.append(dict(task=task, condition=cond, policy=policy, successes=k, episodes=n,
                                 rate=k / n, low=low, high=high))
                log(f"[{task}] {cond:11s} {policy:9s} {k}/{n} (evaluating {time.perf_counter() - t0:.0f}s)")
                if args.json:  # after every row: a run stopped early keeps what it measured
                    args.json.write_text(json.dumps(dict(settings=cfg, rows=rows), indent=1))
    print("\n" + table(rows) + "\n")
    print(f"total time {time.perf_counter() - t_start:.0f}s")
    if args.readme:
        write_readme(args.readme, table(rows) + f"\n\n`{summary(rows)}`")
    print(summary(rows))


if __name__ == "__main__":
    main()
