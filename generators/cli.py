"""`augment finetune`: the generators' subcommand. augment/cli.py only registers it (add_parser) and calls
run(); torch and diffusers are imported when it runs, so `augment --help` stays instant."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "finetune", help="fine-tune an image-to-video model on a dataset's episodes (a LoRA for a generator's lora:)",
        description="Train a LoRA on the transformer of a diffusers image-to-video model (Wan 2.1 / 2.2 I2V, "
        "CogVideoX 1.0 I2V, LTX-Video I2V) "
        "with the model's own objective, on clips of a LeRobot dataset's episodes (one camera, at the model's "
        "fps and size, the task as the prompt), and write DIR/pytorch_lora_weights.safetensors (load it with "
        "the generator's `lora: [{path: DIR}]`), DIR/finetune.json and DIR/report.json (held-out episodes' "
        "denoising loss before and after). Rerunning the same command resumes from DIR/checkpoints.",
        epilog="settings (--set KEY=VALUE): " + _settings_help(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", required=True, type=Path, help="source dataset root (holds meta/info.json)")
    p.add_argument("--model", required=True, help="model id or local folder saved with save_pretrained")
    p.add_argument("--out", required=True, type=Path, help="LoRA folder to write (and resume from)")
    p.add_argument("--address", default=None, help="train data-parallel with Ray Train on this cluster ('auto', "
                   "'ray://host:10001', 'local' to start one here); --out must be a folder every worker sees. "
                   "Default: one local process, no Ray")
    p.add_argument("--workers", type=int, default=None, help="Ray Train workers (default: one per GPU of the cluster)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change a training setting, e.g. --set steps=2000 --set rank=64 --set camera=observation.images.top")
    return p


def _settings_help() -> str:
    from augment.settings import settings_help
    from generators.finetune_config import FinetuneConfig

    return settings_help(FinetuneConfig)


def run(args) -> int:
    from augment.settings import run_training
    from generators.finetune_config import config_from_overrides

    def train(config):
        from generators.finetune import finetune

        finetune(str(args.dataset), args.model, args.out, config, address=args.address, workers=args.workers)

    return run_training(args.dataset, lambda: config_from_overrides(args.overrides), train,
                        f"wrote {args.out}/pytorch_lora_weights.safetensors, finetune.json, report.json")
