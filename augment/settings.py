"""`--set KEY=VALUE`: one parser for every command (run and validate apply dotted keys to the spec,
augment/spec.py; the training commands, train-idm and finetune, set their flat settings), one error format."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError


def parse_override(pair: str) -> tuple[str, Any]:
    """"a.b=value" -> ("a.b", value), the value read as plain YAML, so numbers and lists keep their type."""
    key, sep, value = pair.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--set {pair!r}: expected dotted.key=value (KEY=VALUE for a flat setting)")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as e:  # broken YAML, or a tag (safe_load refuses those)
        raise ValueError(f"--set {pair!r}: the value is not plain YAML: {str(e).splitlines()[0]}") from None


def parse_overrides(pairs: list[str]) -> dict:
    """["epochs=5", "offsets=[0,1]"] -> {"epochs": 5, "offsets": [0, 1]}."""
    return dict(parse_override(pair) for pair in pairs)


def settings_from_overrides(model: type[BaseModel], pairs: list[str]) -> BaseModel:
    """The settings model with the --set values applied; ValueError listing every problem and the valid keys."""
    try:
        return model(**parse_overrides(pairs))
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or '?'}: {err['msg']}" for err in e.errors())
        raise ValueError(f"bad --set value(s): {problems} (valid keys: {', '.join(model.model_fields)})") from None


def settings_help(model: type[BaseModel]) -> str:
    """"name=default, ..." for a command's --help epilog."""
    return ", ".join(f"{name}={field.default!r}" for name, field in model.model_fields.items())


def run_training(dataset: Path, load_config, train, done: str) -> int:
    """The shape of a training command: its settings, then the dataset, then the training; a
    ValueError on the way is an `error:` line and exit code 2."""
    try:
        config = load_config()
        if not (Path(dataset) / "meta" / "info.json").is_file():
            raise ValueError(f"--dataset {dataset} is not a LeRobot dataset (no meta/info.json)")
        train(config)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(done)
    return 0
