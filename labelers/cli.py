"""`augment train-idm`: the labelers' subcommand. augment/cli.py only registers it (add_parser) and
calls run(); everything heavy is imported when it runs, so `augment --help` stays instant."""

from __future__ import annotations

import argparse
import sys
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
    from labelers.config import IdmConfig

    return ", ".join(f"{name}={field.default!r}" for name, field in IdmConfig.model_fields.items())


def run(args) -> int:
    from labelers.config import config_from_overrides

    try:
        config = config_from_overrides(args.overrides)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not (args.dataset / "meta" / "info.json").is_file():
        print(f"error: --dataset {args.dataset} is not a LeRobot dataset (no meta/info.json)", file=sys.stderr)
        return 2
    from labelers.train import train_idm

    try:
        train_idm(str(args.dataset), str(args.out), config)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}/model.safetensors, config.json, report.json, plot.png")
    return 0
