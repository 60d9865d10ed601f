"""`augment finetune` on the tiny random-weight Wan 2.2 I2V pipeline and a tiny blob dataset written by
lerobot: the loss falls, the LoRA it writes loads into the wan-i2v stage and changes its rollout, a seed
reproduces a run, and a run killed mid-way resumes from its checkpoint to the same weights."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("peft")

from augment.cli import main  # noqa: E402
from augment.registry import spec_class  # noqa: E402
from generators.finetune_clips import ClipCache  # noqa: E402
from generators.finetune_config import FinetuneConfig  # noqa: E402
from tiny_models import TINY_SETTINGS, save_tiny_pipeline  # noqa: E402
from test_labelers_train import make_blob_dataset  # noqa: E402

CAMERA = "observation.images.top"
# 20 frames at 10 fps: two 9-frame clips per episode at model_fps 10; 16x16 is the tiny model's multiple
TINY = {"height": 16, "width": 16, "num_frames": 9, "model_fps": 10, "max_sequence_length": 16, "rank": 8,
        "lr": 1e-3, "batch_size": 2, "val_fraction": 0.25, "device": "cpu", "rollout_steps": 2,
        "num_threads": 1}  # tiny models gain nothing from threads, and lose a lot to them on loaded cores


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    base = tmp_path_factory.mktemp("finetune")
    return {"dataset": make_blob_dataset(base / "ds", episodes=8, steps=20),
            "model": save_tiny_pipeline("wan-i2v", base / "wan"), "base": base}


@pytest.fixture(scope="module")
def trained(files):
    """40 steps through the command line, as a user runs it."""
    out = files["base"] / "lora"
    sets = [f"{k}={json.dumps(v)}" for k, v in {**TINY, "steps": 40, "checkpoint_every": 20}.items()]
    assert main(["finetune", "--dataset", str(files["dataset"]), "--model", str(files["model"]), "--out", str(out),
                 *[a for s in sets for a in ("--set", s)]]) == 0
    return out


def lora_tensors(folder):
    from safetensors.torch import load_file

    return load_file(folder / "pytorch_lora_weights.safetensors")


def run(files, out, log=None, on_step=None, **settings):
    from generators.finetune import finetune

    config = FinetuneConfig(**{**TINY, "rollout_episodes": 0, **settings})
    return finetune(str(files["dataset"]), str(files["model"]), out, config,
                    log=log or (lambda _m: None), on_step=on_step)


def test_loss_falls_and_the_report_compares_held_out_episodes(trained):
    report = json.loads((trained / "report.json").read_text())
    setup = json.loads((trained / "finetune.json").read_text())
    assert setup["family"] == "wan-i2v" and setup["camera"] == CAMERA
    assert len(setup["held_out_episodes"]) == 2 and not set(setup["held_out_episodes"]) & set(setup["train_episodes"])
    assert report["train_clips"] == 12 and report["held_out_clips"] == 4  # 6 + 2 episodes, 2 clips each
    curve = report["train_loss_curve"]
    assert len(curve) == 40 and np.mean(curve[-10:]) < 0.9 * np.mean(curve[:10])
    loss = report["denoising_loss"]
    # episodes never trained on, the same noise and noise levels: the fine-tuned model denoises them better
    assert loss["after"]["held_out"]["mean"] < 0.9 * loss["before"]["held_out"]["mean"]
    assert loss["after"]["train"]["mean"] < 0.9 * loss["before"]["train"]["mean"]
    assert set(loss["after"]["held_out"]["per_sigma"]) == {"0.1", "0.3", "0.5", "0.7", "0.9"}
    # the held-out episodes rolled out by the wan-i2v stage from their first frames, against what was recorded
    rollouts = report["rollouts"]
    assert rollouts["episodes"] == setup["held_out_episodes"]
    assert all(0 < rollouts[k]["psnr"] < 60 and rollouts[k]["mae"] > 0 and -1 < rollouts[k]["ssim"] < 1
               for k in ("before", "after"))
    assert rollouts["before"]["psnr"] != rollouts["after"]["psnr"]
    assert sorted(p.name for p in (trained / "cache").glob("shard-*")) == ["shard-00000.safetensors"]
    assert sorted(p.name for p in (trained / "checkpoints").iterdir()) == ["step-00000020", "step-00000040"]


def rollout(model, **fields) -> np.ndarray:
    from augment.source import LeRobotSource

    spec = spec_class("wan-i2v").model_validate({"type": "wan-i2v", "model": str(model), "dtype": "float32",
                                                 "device": "cpu", "max_clips": 1, **TINY_SETTINGS["wan-i2v"],
                                                 "model_fps": 10, **fields})
    stage = spec.build()
    stage.setup()
    episode = LeRobotSource(rollout.dataset, [CAMERA]).read_episode(0)
    return stage([episode])[0].frames[CAMERA].astype(int)


def test_the_lora_loads_into_the_wan_stage_and_changes_its_rollout(files, trained):
    rollout.dataset = files["dataset"]
    base = rollout(files["model"])
    tuned = rollout(files["model"], lora=[{"path": str(trained)}])
    assert np.array_equal(tuned[0], base[0])  # pinned first frame
    assert np.abs(tuned - base).mean() > 0.1  # 40 steps of a tiny random model, 2 denoising steps: small, never 0
    off = rollout(files["model"], lora=[{"path": str(trained), "scale": 0.0}])
    assert np.array_equal(off, base)


def test_a_seed_reproduces_a_run_and_another_seed_does_not(files, tmp_path):
    logs = []
    run(files, tmp_path / "a", steps=6)
    run(files, tmp_path / "b", steps=6)
    run(files, tmp_path / "c", steps=6, seed=1)
    a, b, c = (lora_tensors(tmp_path / x) for x in "abc")
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)
    assert any(not bool((a[k] == c[k]).all()) for k in a)
    # a second run in the same folder (more steps) reuses the cached encodings and resumes at step 6
    report = run(files, tmp_path / "a", steps=8, log=logs.append)
    assert any(m.startswith("cached encodings") for m in logs) and report["resumed_from"] == 6


def test_a_killed_run_resumes_from_its_checkpoint_to_the_same_weights(files, tmp_path):
    def kill(step, _loss):
        if step == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(files, tmp_path / "killed", steps=12, checkpoint_every=4, on_step=kill)
    assert sorted(p.name for p in (tmp_path / "killed" / "checkpoints").iterdir()) == ["step-00000004"]
    assert not (tmp_path / "killed" / "pytorch_lora_weights.safetensors").exists()
    logs = []
    report = run(files, tmp_path / "killed", steps=12, checkpoint_every=4, log=logs.append)
    assert report["resumed_from"] == 4 and len(report["train_loss_curve"]) == 8
    assert any("resumed from" in m for m in logs)
    run(files, tmp_path / "whole", steps=12, checkpoint_every=4)
    resumed, whole = lora_tensors(tmp_path / "killed"), lora_tensors(tmp_path / "whole")
    assert all(bool((resumed[k] == whole[k]).all()) for k in whole)  # the same draws, the same optimizer state


def test_the_cache_is_sharded_and_an_interrupted_encoding_resumes_at_the_first_missing_shard(files, tmp_path,
                                                                                          monkeypatch):
    """Shards of two episodes (four clips): killed while encoding the third shard, a rerun encodes only the
    clips of the shards that were not written, and ends with the cache and the LoRA of an uninterrupted run."""
    import torch

    from generators.finetune_families import WanFamily

    encode, calls, kill_at = WanFamily.encode, [], [9]

    def counting(self, video, prompt, device):
        calls.append(prompt)
        if len(calls) in kill_at:
            raise KeyboardInterrupt
        return encode(self, video, prompt, device)

    monkeypatch.setattr(WanFamily, "encode", counting)
    with pytest.raises(KeyboardInterrupt):
        run(files, tmp_path / "killed", steps=4, shard_episodes=2)
    cache = tmp_path / "killed" / "cache"
    assert sorted(p.name for p in cache.glob("shard-*")) == ["shard-00000.safetensors", "shard-00001.safetensors"]
    assert not (cache / "index.json").exists()
    calls.clear()
    kill_at.clear()
    killed = run(files, tmp_path / "killed", steps=4, shard_episodes=2)
    assert len(calls) == 8  # episodes 4-7, two clips each: the first two shards were not encoded again
    whole = run(files, tmp_path / "whole", steps=4, shard_episodes=2)
    a, b = ClipCache.open(tmp_path / "killed"), ClipCache.open(tmp_path / "whole")
    assert len(a) == len(b) == 16 and len(list(cache.glob("shard-*"))) == 4
    assert all(torch.equal(x[k], y[k]) for x, y in zip(a, b) for k in ("latents", "condition", "text"))
    assert killed["train_loss_curve"] == whole["train_loss_curve"]


def test_finetune_errors_name_the_setting(files, tmp_path, capsys):
    args = ["finetune", "--dataset", str(files["dataset"]), "--model", str(files["model"]), "--out", str(tmp_path)]
    assert main([*args, "--set", "rank=0"]) == 2
    assert "rank" in capsys.readouterr().err
    assert main([*args, "--set", "camera=observation.images.wrist", *sum([["--set", f"{k}={json.dumps(v)}"]
                                                                           for k, v in TINY.items()], [])]) == 2
    assert "finetune.camera" in capsys.readouterr().err
    assert main([*args, "--set", "height=12", "--set", "width=16", "--set", "device=cpu"]) == 2
    assert "multiples of 16" in capsys.readouterr().err
    assert main([*args, "--set", "rollout_fields={motion_bucket_id: 3}", "--set", "device=cpu"]) == 2
    assert "finetune.rollout_fields: not wan-i2v fields" in capsys.readouterr().err


def test_a_resume_with_other_settings_and_a_missing_expert_are_refused(files, tmp_path):
    run(files, tmp_path / "a", steps=2)
    with pytest.raises(ValueError, match=r"step-00000002 was trained with other settings \(rank: 8 there, 4 now\)"):
        run(files, tmp_path / "a", steps=4, rank=4)
    two_experts = save_tiny_pipeline("wan-i2v", tmp_path / "a14b", layout="2.2-a14b")
    with pytest.raises(ValueError, match=r"finetune\.expert: Wan 2\.2 A14B has two experts"):
        run({**files, "model": two_experts}, tmp_path / "b", steps=2)
    with pytest.raises(ValueError, match=r"finetune\.expert: this Wan model has one expert"):
        run(files, tmp_path / "c", steps=2, expert="transformer_2")


def test_wan21_caches_the_clip_image_tokens_and_its_lora_loads(files, tmp_path):
    """Wan 2.1 I2V: the CLIP image embedding of the first frame is cached and fed to the transformer;
    the text keeps the 512 tokens the stage requires."""
    model = save_tiny_pipeline("wan-i2v", tmp_path / "wan21", layout="2.1")
    with pytest.raises(ValueError, match=r"needs 512; got 16"):
        run({**files, "model": model}, tmp_path / "short", steps=2)
    report = run({**files, "model": model}, tmp_path / "lora", steps=20, max_sequence_length=512)
    clips = ClipCache.open(tmp_path / "lora")
    assert tuple(clips[0]["image"].shape) == (17, 16) and tuple(clips[0]["text"].shape) == (512, 32)
    loss = report["denoising_loss"]
    assert loss["after"]["train"]["mean"] < loss["before"]["train"]["mean"]
    rollout.dataset = files["dataset"]
    base = rollout(model, max_sequence_length=512)
    tuned = rollout(model, max_sequence_length=512, lora=[{"path": str(tmp_path / "lora")}])
    assert np.abs(tuned - base).mean() > 0.05


def test_cogvideox_learns_its_prediction_type_and_its_lora_loads_into_its_stage(files, tmp_path):
    """The second family: DDPM-style noising and the scheduler's prediction type, learned positional
    embeddings (one size: the size settings are not needed)."""
    model = save_tiny_pipeline("cogvideox-i2v", tmp_path / "cog")
    # the published CogVideoX checkpoints predict v (the tiny build's DDIM default is epsilon)
    scheduler = model / "scheduler" / "scheduler_config.json"
    scheduler.write_text(json.dumps({**json.loads(scheduler.read_text()), "prediction_type": "v_prediction"}))
    out = tmp_path / "lora"
    settings = {k: v for k, v in TINY.items() if k not in ("height", "width")}
    report = run({**files, "model": model}, out, steps=40, rollout_episodes=1, **settings)
    setup = json.loads((out / "finetune.json").read_text())
    assert setup["family"] == "cogvideox-i2v" and (setup["height"], setup["width"]) == (16, 16)
    loss = report["denoising_loss"]
    assert loss["after"]["held_out"]["mean"] < 0.9 * loss["before"]["held_out"]["mean"]
    rollout.dataset = files["dataset"]
    fields = {"type": "cogvideox-i2v", **TINY_SETTINGS["cogvideox-i2v"]}
    spec = spec_class("cogvideox-i2v")
    videos = []
    for lora in ([], [{"path": str(out)}]):
        stage = spec.model_validate({**fields, "model": str(model), "dtype": "float32", "device": "cpu",
                                     "max_clips": 1, "model_fps": 10, "lora": lora}).build()
        stage.setup()
        from augment.source import LeRobotSource

        videos.append(stage([LeRobotSource(files["dataset"], [CAMERA]).read_episode(0)])[0].frames[CAMERA].astype(int))
    assert np.abs(videos[1] - videos[0]).mean() > 0.1


def test_ray_train_runs_the_same_loop_data_parallel(files, tmp_path):
    """--address: two Ray Train workers (CPU, gloo) average their LoRA gradients; rank 0 checkpoints."""
    pytest.importorskip("ray.train")
    out = tmp_path / "ray"
    sets = {**TINY, "steps": 12, "checkpoint_every": 6, "rollout_episodes": 0, "num_threads": 1}
    assert main(["finetune", "--dataset", str(files["dataset"]), "--model", str(files["model"]), "--out", str(out),
                 "--address", "local", "--workers", "2",
                 *[a for k, v in sets.items() for a in ("--set", f"{k}={json.dumps(v)}")]]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["workers"] == 2 and len(report["train_loss_curve"]) == 12
    loss = report["denoising_loss"]
    assert loss["after"]["train"]["mean"] < loss["before"]["train"]["mean"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000006", "step-00000012"]
    assert lora_tensors(out)  # the LoRA the driver wrote from rank 0's last checkpoint


def test_bfloat16_weights_and_gradient_checkpointing_train_a_float32_lora(files, tmp_path):
    """The GPU memory options, on the CPU: frozen weights in bfloat16, activations recomputed."""
    report = run(files, tmp_path / "bf16", steps=20, dtype="bfloat16", gradient_checkpointing=True)
    loss = report["denoising_loss"]
    assert loss["after"]["train"]["mean"] < 0.95 * loss["before"]["train"]["mean"]
    assert {str(v.dtype) for v in lora_tensors(tmp_path / "bf16").values()} == {"torch.float32"}


def test_edited_variants_add_training_clips_with_other_backgrounds(files, tmp_path):
    import torch

    report = run(files, tmp_path / "edits", steps=1, edit_variants=1)
    clips = ClipCache.open(tmp_path / "edits")
    edited = {c["episode"] for c in clips if c["edit"] == 1}
    # 6 training episodes of 2 clips, and 2 more per episode the edit changed (a copy it leaves as recorded,
    # where it finds no backdrop, adds none: 2 of these gradients); held-out episodes: as recorded only
    assert len(edited) >= 3 and report["train_clips"] == 12 + 2 * len(edited) and report["held_out_clips"] == 4
    episode = min(edited)
    first = {c["edit"]: c for c in clips if c["episode"] == episode and c["clip"] == 0}
    assert set(first) == {0, 1} and first[0]["prompt"] == first[1]["prompt"]
    assert not torch.equal(first[0]["latents"], first[1]["latents"])  # another background: other latents
    assert torch.equal(first[0]["condition"][:4], first[1]["condition"][:4])  # the same first-frame mask


def test_wan22_a14b_one_lora_per_expert_on_its_noise_range(files, tmp_path):
    """Two experts split the schedule at boundary_ratio (0.875): the low-noise expert's LoRA trains at
    sigma < 0.875 only and goes into transformer_2 (the generator's lora target)."""
    model = save_tiny_pipeline("wan-i2v", tmp_path / "a14b", layout="2.2-a14b")
    timesteps = []
    from generators.finetune_families import WanFamily

    loss = WanFamily.loss

    def spy(self, batch, u, noise):
        assert self.transformer is self.pipe.transformer_2
        if not timesteps:
            self.transformer.register_forward_pre_hook(
                lambda _m, _args, kwargs: timesteps.extend(kwargs["timestep"].tolist()), with_kwargs=True)
        return loss(self, batch, u, noise)

    WanFamily.loss = spy
    try:
        report = run({**files, "model": model}, tmp_path / "low", steps=20, expert="transformer_2")
    finally:
        WanFamily.loss = loss
    assert len(timesteps) > 20 and max(timesteps) < 875  # training draws and the report's levels alike
    assert report["use"]["lora"] == [{"path": str(tmp_path / "low"), "target": "transformer_2"}]
    assert report["denoising_loss"]["after"]["train"]["mean"] < report["denoising_loss"]["before"]["train"]["mean"]
    rollout.dataset = files["dataset"]
    base = rollout(model, num_inference_steps=4)
    tuned = rollout(model, num_inference_steps=4, lora=[{"path": str(tmp_path / "low"), "target": "transformer_2"}])
    assert np.abs(tuned - base).mean() > 0.05


def test_ltx_flow_matching_on_packed_tokens_and_its_lora_loads(files, tmp_path):
    model = save_tiny_pipeline("ltx-i2v", tmp_path / "ltx")
    out = tmp_path / "lora"
    report = run({**files, "model": model}, out, steps=40, height=32, width=32)
    assert json.loads((out / "finetune.json").read_text())["family"] == "ltx-i2v"
    loss = report["denoising_loss"]
    assert loss["after"]["held_out"]["mean"] < 0.9 * loss["before"]["held_out"]["mean"]
    spec = spec_class("ltx-i2v")
    videos = []
    for lora in ([], [{"path": str(out)}]):
        stage = spec.model_validate({"type": "ltx-i2v", **TINY_SETTINGS["ltx-i2v"], "model": str(model),
                                     "dtype": "float32", "device": "cpu", "max_clips": 1, "model_fps": 10,
                                     "lora": lora}).build()
        stage.setup()
        from augment.source import LeRobotSource

        videos.append(stage([LeRobotSource(files["dataset"], [CAMERA]).read_episode(0)])[0].frames[CAMERA].astype(int))
    assert np.abs(videos[1] - videos[0]).mean() > 0.05


def test_wan22_ti2v_keeps_the_image_frame_clean_and_its_lora_loads(files, tmp_path):
    """TI2V-5B's layout (expand_timesteps): the first latent frame is the image's latents, its tokens
    at timestep 0 and out of the loss."""
    model = save_tiny_pipeline("wan-i2v", tmp_path / "ti2v", layout="2.2-ti2v")
    report = run({**files, "model": model}, tmp_path / "lora", steps=40)
    loss = report["denoising_loss"]
    assert loss["after"]["held_out"]["mean"] < 0.9 * loss["before"]["held_out"]["mean"]
    rollout.dataset = files["dataset"]
    base = rollout(model)
    tuned = rollout(model, lora=[{"path": str(tmp_path / "lora")}])
    assert np.abs(tuned - base).mean() > 0.05


def test_ssim_and_psnr_of_videos():
    from generators.finetune import psnr, ssim

    rng = np.random.default_rng(0)
    video = np.broadcast_to((np.arange(24) * 8)[None, None, :, None], (3, 24, 24, 3)).astype(np.uint8)  # a ramp
    noisy = np.clip(video.astype(int) + rng.integers(-40, 41, video.shape), 0, 255).astype(np.uint8)
    assert ssim(video, video) == pytest.approx(1.0) and psnr(video, video) == float("inf")
    assert 0 < ssim(video, noisy) < 0.7 and 10 < psnr(video, noisy) < 30  # measured 0.54, 20.9 dB


# ---- Cosmos-Predict2 and SVD ------------------------------------------------------------------------------
# settings that fit their tiny builds (tests/tiny_models.py); SVD has no text, Cosmos's rollouts need a checker
FAMILY_SETTINGS = {
    "cosmos-predict2": {"height": 32, "width": 32, "clips_per_episode": 1,
                        "rollout_fields": {"safety_checker": "tiny_models:PassThroughSafetyChecker"}},
    "svd": {"height": 16, "width": 16, "num_frames": 4, "clips_per_episode": 1, "lr": 3e-3,
            "max_sequence_length": None},
}


def oracle_run(kind):
    """The family's convention (what the denoiser sees, what it should output), turned into an oracle
    denoiser for a known clean latent x0; diffusers' own pipeline sampling with that oracle must end at x0,
    and the family's loss for it must be 0. Returns (pipeline's final latents, x0, family loss)."""
    import torch

    from generators.finetune_families import FAMILIES
    from tiny_models import BUILDERS

    pipe = BUILDERS[kind]()
    pipe.set_progress_bar_config(disable=True)
    config = FinetuneConfig(**{**TINY, **FAMILY_SETTINGS[kind]})
    family = FAMILIES[type(pipe).__name__](pipe, config)
    family.geometry = {"model_fps": 10}
    if kind == "cosmos-predict2":
        from tiny_models import PassThroughSafetyChecker

        pipe.register_modules(safety_checker=PassThroughSafetyChecker())  # the family drops it: training needs none
    g = torch.Generator().manual_seed(0)
    if kind == "cosmos-predict2":
        x0 = torch.randn(1, 16, 3, 4, 4, generator=g)  # 9 frames at 32x32: 3 latent frames of 4x4

        def oracle(hidden_states, timestep, **_):  # input (1 - t) x0 + t noise at timestep t -> noise - x0
            t = timestep.float()
            return ((hidden_states.float() - x0) / t.clamp(min=1e-8),)

        call = {"image": np.zeros((32, 32, 3), np.uint8), "prompt": "the robot", "height": 32, "width": 32,
                "num_frames": 9, "guidance_scale": 1.0, "num_inference_steps": 8, "max_sequence_length": 16}
        batch = {"latents": x0, "text": torch.zeros(1, 16, 32)}
    else:
        x0 = torch.randn(1, 4, 4, 8, 8, generator=g)  # (B, F, C, h, w): 4 frames at 16x16

        def oracle(sample, timestep, **_):  # x / sqrt(sigma^2 + 1) at log(sigma) / 4 -> (noise - sigma x0) / sqrt(...)
            sigma = torch.exp(4 * torch.as_tensor(timestep, dtype=torch.float32)).view(-1, 1, 1, 1, 1)
            x = sample[:, :, :4].float() * (sigma ** 2 + 1).sqrt()
            return (((x - x0) / sigma - sigma * x0) / (sigma ** 2 + 1).sqrt(),)

        call = {"image": np.zeros((16, 16, 3), np.uint8), "height": 16, "width": 16, "num_frames": 4,
                "min_guidance_scale": 1.0, "max_guidance_scale": 1.0, "num_inference_steps": 8}
        batch = {"latents": x0, "condition": torch.zeros(1, 4, 8, 8), "image": torch.zeros(1, 1, 32),
                 "time_ids": torch.tensor([[9.0, 127.0, 0.02]])}
    family.transformer.forward = oracle
    from PIL import Image

    call["image"] = Image.fromarray(call["image"])
    latents = pipe(**call, output_type="latent", generator=torch.Generator().manual_seed(1)).frames
    noise = torch.randn(x0.shape, generator=g)
    loss = family.loss(batch, torch.tensor([0.3]), noise)
    return latents, x0, float(loss[0])


@pytest.mark.parametrize("kind", ["cosmos-predict2", "svd"])
def test_the_objective_is_what_the_pipeline_samples_with(kind):
    """A denoiser that meets the family's training target exactly (an oracle for a known x0) is one
    diffusers' sampler turns into x0: the training convention (inputs, timestep, target) is the pipeline's."""
    latents, x0, loss = oracle_run(kind)
    assert loss < 1e-8
    if kind == "cosmos-predict2":
        latents = latents[:, :, 1:]  # the first latent frame is the conditioning image's, not x0's
        x0 = x0[:, :, 1:]
    assert float((latents.float() - x0).abs().max()) < 0.05  # the sampler stops at sigma_min, not 0


def family_stage(kind, model, **fields):
    from augment.source import LeRobotSource

    settings = {k: v for k, v in FAMILY_SETTINGS[kind].items() if k in ("height", "width", "num_frames")}
    extra = FAMILY_SETTINGS[kind].get("rollout_fields", {})
    stage = spec_class(kind).model_validate({"type": kind, **TINY_SETTINGS[kind], **settings, **extra,
                                             "model": str(model), "dtype": "float32", "device": "cpu",
                                             "max_clips": 1, "model_fps": 10, **fields}).build()
    stage.setup()
    stage.episode = LeRobotSource(rollout.dataset, [CAMERA]).read_episode(0)
    return stage


@pytest.mark.parametrize("kind", ["cosmos-predict2", "svd"])
def test_cosmos_and_svd_loras_load_into_their_generator_stages(files, tmp_path, kind):
    """Neither pipeline has a LoRA loader in diffusers; the stages load what finetune writes into the
    denoiser the family trained (Cosmos's transformer, SVD's UNet), weights as saved."""
    import torch
    from peft.utils import get_peft_model_state_dict

    model = save_tiny_pipeline(kind, tmp_path / "model")
    report = run({**files, "model": model}, tmp_path / "lora", steps=2, **FAMILY_SETTINGS[kind])
    assert report["family"] == kind and report["use"]["lora"] == [{"path": str(tmp_path / "lora"),
                                                                  "target": "transformer"}]
    rollout.dataset = files["dataset"]
    stage = family_stage(kind, model, lora=[{"path": str(tmp_path / "lora"), "name": "robot"}])
    denoiser = stage.pipe.unet if kind == "svd" else stage.pipe.transformer
    loaded = get_peft_model_state_dict(denoiser, adapter_name="robot")
    saved = {k.split(".", 1)[1]: v for k, v in lora_tensors(tmp_path / "lora").items()}
    assert loaded.keys() == saved.keys() and all(torch.equal(loaded[k], saved[k]) for k in saved)
    assert denoiser.peft_config["robot"].r == TINY["rank"]
    if kind == "svd":
        with pytest.raises(ValueError, match=r"svd\.lora\[0\]\.target: SVD has one denoiser, its UNet"):
            family_stage(kind, model, lora=[{"path": str(tmp_path / "lora"), "target": "both"}])


@pytest.mark.parametrize("kind", ["cosmos-predict2", pytest.param("svd", marks=pytest.mark.slow)])  # SVD: ~15 s
def test_cosmos_and_svd_learn_resume_to_the_same_weights_and_change_their_rollouts(files, tmp_path, kind):
    """The issue's four checks per family: the held-out loss falls; a run killed mid-way resumes from its
    checkpoint to the weights of an uninterrupted run with the same seed (so seeds make runs deterministic);
    the LoRA changes the generator stage's rollout, and at scale 0 is the base model."""
    model = save_tiny_pipeline(kind, tmp_path / "model")
    settings = {**FAMILY_SETTINGS[kind], "checkpoint_every": 20}
    whole = run({**files, "model": model}, tmp_path / "whole", steps=40, rollout_episodes=1, **settings)
    loss = whole["denoising_loss"]
    assert loss["after"]["held_out"]["mean"] < 0.9 * loss["before"]["held_out"]["mean"]
    assert whole["rollouts"]["before"]["psnr"] != whole["rollouts"]["after"]["psnr"]

    def kill(step, _loss):
        if step == 27:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run({**files, "model": model}, tmp_path / "killed", steps=40, on_step=kill, **settings)
    resumed = run({**files, "model": model}, tmp_path / "killed", steps=40, **settings)
    assert resumed["resumed_from"] == 20
    a, b = lora_tensors(tmp_path / "whole"), lora_tensors(tmp_path / "killed")
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)

    rollout.dataset = files["dataset"]
    videos = {}
    for name, lora in (("base", []), ("tuned", [{"path": str(tmp_path / "whole")}]),
                       ("off", [{"path": str(tmp_path / "whole"), "scale": 0.0}])):
        stage = family_stage(kind, model, lora=lora)
        videos[name] = stage([stage.episode])[0].frames[CAMERA].astype(int)
    assert np.abs(videos["tuned"] - videos["base"]).mean() > 0.05
    assert np.array_equal(videos["off"], videos["base"])
