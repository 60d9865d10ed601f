"""`augment train-idm`: the labelers' subcommand. augment/cli.py only registers it (add_parser) and
calls run(); everything heavy is imported when it runs, so `augment --help` stays instant."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train-idm", help="train an inverse-dynamics model (actions + state from video) on a dataset",
        description="Train an inverse-dynamics model on a LeRobot dataset, split by episode into train and "
        "validation, and write DIR/model.safetensors, DIR/config.json and DIR/report.json (per-dimension R², "
        "MSE, scale ratio and bias on the validation episodes, as recorded and background-edited) and plots.",
        epilog="settings (--set KEY=VALUE): " + _settings_help(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", required=True, type=Path, help="source dataset root (holds meta/info.json)")
    p.add_argument("--out", required=True, type=Path, help="checkpoint folder to write")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change a training setting, e.g. --set epochs=10 --set image_size=96 --set device=cuda")
    return p


def _settings_help() -> str:
    from augment.settings import settings_help
    from labelers.config import IdmConfig

    return settings_help(IdmConfig)


def run(args) -> int:
    from augment.settings import run_training
    from labelers.config import config_from_overrides

    def train(config):
        from labelers.train import train_idm

        train_idm(str(args.dataset), str(args.out), config)

    return run_training(args.dataset, lambda: config_from_overrides(args.overrides), train,
                        f"wrote {args.out}/model.safetensors, config.json, report.json, plot.png")
