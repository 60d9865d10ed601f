"""`augment finetune` at scale, in two measurements.

  smoke   one LoRA training step per model family at the published architecture sizes (random weights: no
          download), on clips of the generator stage's default size: seconds per step and peak memory, with
          the settings a GPU run uses (bfloat16 frozen weights, gradient checkpointing, rank 32, batch 1).
          The denoiser is built from the published config (diffusers' conversion scripts), the VAE on the meta
          device (only its scale factors are read: latents come from the cache), the batch is what the
          family's encode() caches, in the shapes the real encoders give. --tiny runs the same code on the
          tiny random pipelines of tests/tiny_models.py on the CPU (a check that the path works, not a figure).
  cache   peak resident memory of a whole `finetune` run on a few hundred tiny-Wan clips, during encoding
          and during training: run it once with PYTHONPATH at the code to measure and once at another
          checkout to compare (the sharded cache against the one-file cache it replaced).

    python benchmarks/bench_finetune.py smoke --tiny
    python benchmarks/bench_finetune.py smoke --families wan2.1-i2v-14b cosmos-predict2-2b --steps 3   # GPU
    python benchmarks/bench_finetune.py cache --episodes 150
    python benchmarks/bench_finetune.py cache-scale --clips 2000 --hold batch    # then --hold all
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path += [str(REPO), str(REPO / "tests")]  # after PYTHONPATH: `cache` measures the code PYTHONPATH names

# the published denoisers (diffusers' scripts/convert_*_to_diffusers.py) and the clip the generator stage
# makes by default: frames, height, width, fps; "tokens": text tokens x width (the text encoder's)
WAN14 = {"patch_size": (1, 2, 2), "num_attention_heads": 40, "attention_head_dim": 128, "in_channels": 36,
         "out_channels": 16, "text_dim": 4096, "freq_dim": 256, "ffn_dim": 13824, "num_layers": 40,
         "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "eps": 1e-6}
REAL = {
    "wan2.1-i2v-14b": {"kind": "wan", "denoiser": {**WAN14, "image_dim": 1280, "added_kv_proj_dim": 5120},
                       "clip": (81, 480, 832, 16), "tokens": (512, 4096), "image_tokens": (257, 1280), "shift": 3.0},
    "wan2.2-i2v-a14b-expert": {"kind": "wan", "denoiser": WAN14, "clip": (81, 480, 832, 16), "tokens": (512, 4096),
                               "shift": 5.0},
    "wan2.2-ti2v-5b": {"kind": "wan-ti2v", "denoiser": {**WAN14, "num_attention_heads": 24, "ffn_dim": 14336,
                                                        "num_layers": 30, "in_channels": 48, "out_channels": 48},
                       "clip": (121, 704, 1280, 24), "tokens": (512, 4096), "shift": 5.0},
    "cogvideox-5b-i2v": {"kind": "cogvideox", "denoiser": {
        "num_attention_heads": 48, "attention_head_dim": 64, "in_channels": 32, "out_channels": 16, "num_layers": 42,
        "time_embed_dim": 512, "text_embed_dim": 4096, "patch_size": 2, "sample_height": 60, "sample_width": 90,
        "sample_frames": 49, "use_rotary_positional_embeddings": True, "use_learned_positional_embeddings": True},
        "clip": (49, 480, 720, 8), "tokens": (226, 4096)},
    "ltx-video-2b": {"kind": "ltx", "denoiser": {
        "in_channels": 128, "out_channels": 128, "patch_size": 1, "patch_size_t": 1, "num_attention_heads": 32,
        "attention_head_dim": 64, "cross_attention_dim": 2048, "num_layers": 28, "caption_channels": 4096,
        "qk_norm": "rms_norm_across_heads", "norm_elementwise_affine": False, "norm_eps": 1e-6},
        "clip": (161, 512, 704, 25), "tokens": (128, 4096)},
    "cosmos-predict2-2b": {"kind": "cosmos", "denoiser": {
        "in_channels": 17, "out_channels": 16, "num_attention_heads": 16, "attention_head_dim": 128, "num_layers": 28,
        "mlp_ratio": 4.0, "text_embed_dim": 1024, "adaln_lora_dim": 256, "max_size": (128, 240, 240),
        "patch_size": (1, 2, 2), "rope_scale": (1.0, 3.0, 3.0), "concat_padding_mask": True,
        "extra_pos_embed_type": None}, "clip": (93, 704, 1280, 16), "tokens": (512, 1024)},
    "svd-xt": {"kind": "svd", "denoiser": {}, "clip": (25, 576, 1024, 7)},  # the UNet's defaults are SVD's
}
# the same families on tests/tiny_models.py's pipelines (the sizes tests/test_finetune.py trains them at)
TINY = {
    "wan2.2-tiny": {"kind": "wan", "tiny": ("wan-i2v", {}), "clip": (9, 16, 16, 10), "tokens": (16, 32)},
    "wan2.1-tiny": {"kind": "wan", "tiny": ("wan-i2v", {"layout": "2.1"}), "clip": (9, 16, 16, 10),
                    "tokens": (512, 32), "image_tokens": (17, 16)},
    "wan2.2-ti2v-tiny": {"kind": "wan-ti2v", "tiny": ("wan-i2v", {"layout": "2.2-ti2v"}), "clip": (9, 16, 16, 10),
                         "tokens": (16, 32)},
    "cogvideox-tiny": {"kind": "cogvideox", "tiny": ("cogvideox-i2v", {}), "clip": (9, 16, 16, 10), "tokens": (16, 32)},
    "ltx-tiny": {"kind": "ltx", "tiny": ("ltx-i2v", {}), "clip": (9, 32, 32, 10), "tokens": (16, 32)},
    "cosmos-tiny": {"kind": "cosmos", "tiny": ("cosmos-predict2", {}), "clip": (9, 32, 32, 10), "tokens": (16, 32)},
    "svd-tiny": {"kind": "svd", "tiny": ("svd", {}), "clip": (4, 16, 16, 10), "image_width": 32},
}


# ---- smoke: one family, real sizes -------------------------------------------------------------------------
def real_pipeline(entry: dict, device: str, dtype):
    """The pipeline with the published denoiser (random weights, built on the device in dtype) and the VAE on
    the meta device (no memory: the family reads only its scale factors)."""
    import torch
    import diffusers as d

    kind = entry["kind"]
    with torch.device("meta"):
        vae = {"wan": lambda: d.AutoencoderKLWan(),
               "wan-ti2v": lambda: d.AutoencoderKLWan(base_dim=160, z_dim=48, is_residual=True, in_channels=12,
                                                      out_channels=12, decoder_base_dim=256, scale_factor_temporal=4,
                                                      scale_factor_spatial=16, patch_size=2, latents_mean=[0.0] * 48,
                                                      latents_std=[1.0] * 48),
               "cogvideox": lambda: d.AutoencoderKLCogVideoX(), "ltx": lambda: d.AutoencoderKLLTXVideo(),
               "cosmos": lambda: d.AutoencoderKLWan(), "svd": lambda: d.AutoencoderKLTemporalDecoder()}[kind]()
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            if kind == "svd":
                from generators.svd import svd_lora_classes

                denoiser = svd_lora_classes()[1](**entry["denoiser"])
            else:
                cls = {"wan": d.WanTransformer3DModel, "wan-ti2v": d.WanTransformer3DModel,
                       "cogvideox": d.CogVideoXTransformer3DModel, "ltx": d.LTXVideoTransformer3DModel,
                       "cosmos": d.CosmosTransformer3DModel}[kind]
                denoiser = cls(**entry["denoiser"])
    finally:
        torch.set_default_dtype(default)
    if kind in ("wan", "wan-ti2v"):
        scheduler = d.UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                              flow_shift=entry["shift"])
        return d.WanImageToVideoPipeline(tokenizer=None, text_encoder=None, vae=vae, scheduler=scheduler,
                                         transformer=denoiser, expand_timesteps=kind == "wan-ti2v")
    if kind == "cogvideox":
        scheduler = d.CogVideoXDDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                             prediction_type="v_prediction", rescale_betas_zero_snr=True,
                                             timestep_spacing="trailing")
        return d.CogVideoXImageToVideoPipeline(tokenizer=None, text_encoder=None, vae=vae, transformer=denoiser,
                                               scheduler=scheduler)
    if kind == "ltx":
        scheduler = d.FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
                                                      base_image_seq_len=1024, max_image_seq_len=4096)
        return d.LTXImageToVideoPipeline(scheduler=scheduler, vae=vae, text_encoder=None, tokenizer=None,
                                         transformer=denoiser)
    if kind == "cosmos":
        return d.Cosmos2VideoToWorldPipeline(text_encoder=None, tokenizer=None, transformer=denoiser, vae=vae,
                                             scheduler=d.FlowMatchEulerDiscreteScheduler(use_karras_sigmas=True),
                                             safety_checker=torch.nn.Identity())
    scheduler = d.EulerDiscreteScheduler(prediction_type="v_prediction", use_karras_sigmas=True, sigma_max=700.0,
                                         sigma_min=0.002, timestep_type="continuous", interpolation_type="linear")
    return d.StableVideoDiffusionPipeline(vae=vae, image_encoder=None, unet=denoiser, scheduler=scheduler,
                                          feature_extractor=None)


def cached_batch(family, entry: dict, device: str):
    """What family.encode() caches for one clip, in its shapes (random values), batched by one."""
    import torch

    frames, height, width, _ = entry["clip"]
    pipe, kind = family.pipe, entry["kind"]
    g = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(1, *shape, generator=g).to(device)

    if kind in ("wan", "wan-ti2v", "cosmos"):
        z = pipe.vae.config.z_dim
        f, s = (frames - 1) // pipe.vae_scale_factor_temporal + 1, pipe.vae_scale_factor_spatial
        batch = {"latents": rand(z, f, height // s, width // s), "text": rand(*entry["tokens"])}
        if kind == "wan":
            batch["condition"] = rand(z + 4, f, height // s, width // s)  # mask (4) + first-frame latents
        if kind == "wan-ti2v":
            batch["condition"] = rand(z, 1, height // s, width // s)
        if "image_tokens" in entry:
            batch["image"] = rand(*entry["image_tokens"])
    elif kind == "cogvideox":
        f, s = (frames - 1) // pipe.vae_scale_factor_temporal + 1, pipe.vae_scale_factor_spatial
        c = pipe.vae.config.latent_channels
        batch = {"latents": rand(f, c, height // s, width // s), "condition": rand(f, c, height // s, width // s),
                 "text": rand(*entry["tokens"])}
    elif kind == "ltx":
        f = (frames - 1) // pipe.vae_temporal_compression_ratio + 1
        s = pipe.vae_spatial_compression_ratio
        batch = {"latents": rand(pipe.vae.config.latent_channels, f, height // s, width // s),
                 "text": rand(*entry["tokens"]), "text_mask": torch.ones(1, entry["tokens"][0], device=device)}
    else:
        s, c = pipe.vae_scale_factor, pipe.unet.config.out_channels
        width_clip = entry.get("image_width", pipe.unet.config.cross_attention_dim)
        batch = {"latents": rand(frames, c, height // s, width // s), "condition": rand(c, height // s, width // s),
                 "image": rand(1, width_clip), "time_ids": torch.tensor([[6.0, 127.0, 0.02]], device=device)}
    return batch


def shrunk(entry: dict, layers: int | None, scale: int) -> dict:
    """The entry with fewer layers and a smaller clip: the real widths and wiring, cheap enough for a CPU check."""
    if layers is None and scale == 1:
        return entry
    frames, height, width, fps = entry["clip"]
    denoiser = dict(entry["denoiser"])
    if layers is not None:
        if entry["kind"] == "svd":
            denoiser["layers_per_block"] = layers
        else:
            denoiser["num_layers"] = layers
    step = 8 if entry["kind"] == "ltx" else 4
    # sizes stay on the coarsest multiple of the families (LTX 32, Wan 2.2 TI2V 32, SVD 64)
    clip = ((frames - 1) // step // scale * step + 1, max(64, height // scale // 64 * 64),
            max(64, width // scale // 64 * 64), fps)
    if denoiser.get("use_learned_positional_embeddings"):  # CogVideoX 5B I2V runs at its one size only
        denoiser.update(sample_frames=clip[0], sample_height=clip[1] // 8, sample_width=clip[2] // 8)
    return {**entry, "denoiser": denoiser, "clip": clip}


def smoke_one(name: str, entry: dict, tiny: bool, steps: int, device: str) -> dict:
    import torch

    from generators.finetune import attach_lora
    from generators.finetune_config import FinetuneConfig
    from generators.finetune_families import FAMILIES

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    if tiny:
        from tiny_models import BUILDERS

        kind, options = entry["tiny"]
        pipe = BUILDERS[kind](**options)
        if kind == "svd":  # the UNet with peft's adapter methods, as finetune loads it
            from generators.svd import svd_lora_classes

            unet = svd_lora_classes()[1].from_config(pipe.unet.config)
            unet.load_state_dict(pipe.unet.state_dict())
            pipe.register_modules(unet=unet)
    else:
        pipe = real_pipeline(entry, device, dtype)
    config = FinetuneConfig(device=device, dtype=str(dtype).removeprefix("torch."), gradient_checkpointing=True,
                            rank=8 if tiny else 32, rollout_episodes=0, max_sequence_length=entry.get("tokens", (None,))[0])
    family = FAMILIES[type(pipe).__name__](pipe, config)
    family.geometry = {"model_fps": entry["clip"][3]}
    family.transformer.to(device, dtype)
    params = attach_lora(family.transformer, config)
    optimizer = torch.optim.AdamW(params, lr=config.lr)
    batch = cached_batch(family, entry, device)
    family.transformer.train()
    times = []
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    for step in range(steps + 1):  # the first step warms up (kernels, allocator) and is not timed
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        g = torch.Generator().manual_seed(step)
        u = torch.sigmoid(torch.randn(1, generator=g)).to(device)
        noise = torch.randn(batch["latents"].shape, generator=g).to(device)
        loss = family.loss(batch, u, noise).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    peak = (torch.cuda.max_memory_allocated() / 2 ** 30 if device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)
    frames, height, width, fps = entry["clip"]
    return {"family": name, "clip": f"{frames}x{height}x{width}", "params_b": round(sum(
        p.numel() for p in family.transformer.parameters()) / 1e9, 3), "lora_params_m": round(
        sum(p.numel() for p in params) / 1e6, 2), "s_per_step": round(sum(times[1:]) / max(1, steps), 3),
        "peak_gib": round(peak, 2), "peak_is": "cuda max_memory_allocated" if device.startswith("cuda")
        else "process max RSS", "loss": round(float(loss), 4), "device": device}


def smoke(args) -> None:
    import torch

    table = TINY if args.tiny else REAL
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if not args.tiny and device == "cpu" and args.layers is None:
        sys.exit("error: the realistic sizes need a GPU (14B parameters); on the CPU, --tiny checks the path and "
                 "--layers 1 --scale 8 the real widths")
    names = args.families or list(table)
    for name in names:
        if name not in table:
            sys.exit(f"error: --families: {name!r} is not one of {', '.join(table)}")
    rows = []
    for name in names:
        entry = table[name] if args.tiny else shrunk(table[name], args.layers, args.scale)
        try:
            rows.append(smoke_one(name, entry, args.tiny, args.steps, device))
        except torch.OutOfMemoryError as e:
            rows.append({"family": name, "error": f"out of memory: {str(e)[:120]}"})
        except Exception as e:  # noqa: BLE001 - one family's failure is its row, the others still run
            rows.append({"family": name, "error": f"{type(e).__name__}: {str(e)[:200]}"})
        print(json.dumps(rows[-1]), flush=True)
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    print("\n| family | clip (frames x h x w) | denoiser params (B) | LoRA params (M) | s / step | peak (GiB) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['family']} | {r['error']} |")
        else:
            print(f"| {r['family']} | {r['clip']} | {r['params_b']} | {r['lora_params_m']} | {r['s_per_step']} | "
                  f"{r['peak_gib']} |")


# ---- cache: memory of a whole run --------------------------------------------------------------------------
def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def cache(args) -> None:
    import torch

    from generators.finetune import finetune
    from generators.finetune_config import FinetuneConfig
    from test_labelers_train import make_blob_dataset

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_finetune_"))
    dataset = work / f"blob-{args.episodes}x{args.steps_per_episode}"
    if not dataset.exists():
        os.environ.setdefault("HF_HOME", str(work / "hf"))
        make_blob_dataset(dataset, episodes=args.episodes, steps=args.steps_per_episode)
    from tiny_models import save_tiny_pipeline

    model = work / "wan-tiny"
    if not model.exists():
        save_tiny_pipeline("wan-i2v", model)
    settings = {"height": args.size, "width": args.size, "num_frames": 17, "model_fps": 10, "max_sequence_length": 512,
                "rank": 8, "lr": 1e-3, "batch_size": 2, "val_fraction": 0.05, "device": "cpu", "rollout_episodes": 0,
                "steps": args.train_steps, "checkpoint_every": 1000, "eval_sigmas": [0.5], "num_threads": 2,
                "clips_per_episode": 2}
    if "shard_episodes" in FinetuneConfig.model_fields:
        settings["shard_episodes"] = 8
    phase, peaks, done = ["load"], {}, threading.Event()

    def sample():
        while not done.is_set():
            peaks[phase[0]] = max(peaks.get(phase[0], 0.0), rss_mb())
            time.sleep(0.02)

    def log(message: str):
        if message.startswith("encoded") or "clips of" in message:
            phase[0] = "after encoding"

    def on_step(step, _loss):
        phase[0] = "training"

    torch.set_num_threads(2)
    start = rss_mb()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = work / f"out-{os.getpid()}"
    phase[0] = "encoding"
    report = finetune(str(dataset), str(model), out, FinetuneConfig(**settings), log=log, on_step=on_step)
    done.set()
    sampler.join()
    result = {"code": str(Path(sys.modules["generators.finetune"].__file__).parent.parent),
              "clips": report["train_clips"] + report["held_out_clips"], "clip": f"17x{args.size}x{args.size}",
              "rss_mb_before_run": round(start), **{f"peak_mb_{k}": round(v) for k, v in peaks.items()},
              "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
              "cache_mb_on_disk": round(sum(p.stat().st_size for p in (out / "cache").rglob("*") if p.is_file()) / 2 ** 20),
              "seconds_per_step": report["seconds_per_step"]}
    print(json.dumps(result))


def cache_scale(args) -> None:
    """The cache alone at scale, without encoders: `--clips` clips of `--clip-mb` MB written as finetune
    writes them (encode_shard), then 200 batches of 2 drawn at random and the report's pass over every clip,
    read as training reads them (`--hold all`: every clip's tensors held in a list first, as the one-file
    cache did). Run each --hold in its own process and compare the peaks."""
    import torch

    from generators.finetune_clips import ClipCache, collate, encode_shard

    work = Path(args.work or tempfile.mkdtemp(prefix="bench_finetune_scale_"))
    folder = work / "cache"
    side = int((args.clip_mb * 2 ** 20 / 4 / 3 / 16) ** 0.5)  # latents, condition, text of equal size

    class Encoder:  # stands in for a family: the tensors a clip caches, of the asked size
        def encode(self, video, prompt, device):
            g = torch.Generator().manual_seed(int(video))
            return {k: torch.randn(16, side, side, generator=g) for k in ("latents", "condition", "text")}

    index = folder / "index.json"
    if not index.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        clips = []
        for s in range(0, args.clips, 16):
            group = [{"episode": i, "clip": 0, "edit": 0, "prompt": "", "video": i, "held_out": False}
                     for i in range(s, min(s + 16, args.clips))]
            clips += encode_shard(folder / f"shard-{s // 16:05d}.safetensors", group, Encoder(), "cpu")
        index.write_text(json.dumps({"key": {}, "geometry": {}, "clips": clips}))
    start = rss_mb()
    cache = ClipCache.open(work)
    data = [cache[i] for i in range(len(cache))] if args.hold == "all" else cache
    held = rss_mb()
    peak, g = held, torch.Generator().manual_seed(0)
    for _ in range(200):
        batch = collate([data[i] for i in torch.randint(len(data), (2,), generator=g).tolist()], "cpu")
        peak = max(peak, rss_mb())
    for i in range(len(data)):
        batch = collate([data[i]], "cpu")
        peak = max(peak, rss_mb())
    del batch
    print(json.dumps({"hold": args.hold, "clips": len(data), "clip_mb": args.clip_mb,
                      "cache_mb_on_disk": round(sum(p.stat().st_size for p in folder.glob("shard-*")) / 2 ** 20),
                      "rss_mb_before": round(start), "rss_mb_after_opening": round(held), "peak_mb": round(peak),
                      "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("smoke", help="step time and peak memory per family")
    s.add_argument("--tiny", action="store_true", help="tests/tiny_models.py's pipelines on the CPU")
    s.add_argument("--families", nargs="+")
    s.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    s.add_argument("--device", default=None)
    s.add_argument("--layers", type=int, help="real sizes with this many layers (blocks; SVD: layers per block)")
    s.add_argument("--scale", type=int, default=1, help="real sizes on a clip this many times smaller per side")
    c = sub.add_parser("cache", help="peak memory of a finetune run on a few hundred tiny clips")
    c.add_argument("--episodes", type=int, default=150)
    c.add_argument("--steps-per-episode", type=int, default=40, help="frames per episode (10 fps)")
    c.add_argument("--size", type=int, default=128, help="clip height and width")
    c.add_argument("--train-steps", type=int, default=20)
    c.add_argument("--work", help="folder for the dataset and the model (reused between runs)")
    c2 = sub.add_parser("cache-scale", help="the cache alone: thousands of clips, read per batch or all held")
    c2.add_argument("--clips", type=int, default=2000)
    c2.add_argument("--clip-mb", type=float, default=0.5)
    c2.add_argument("--hold", choices=["batch", "all"], default="batch")
    c2.add_argument("--work", help="folder for the cache (reused between runs)")
    args = parser.parse_args()
    {"smoke": smoke, "cache": cache, "cache-scale": cache_scale}[args.mode](args)


if __name__ == "__main__":
    main()
