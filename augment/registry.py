"""Stage types by YAML `type:` name.

Each stage package (editors, generators, labelers, verifiers) lists its types in a `TYPES` dict in
its __init__.py, mapping the name to "module:SpecClass". Reading that dict is cheap; the module
behind a name (which may import torch or diffusers) is imported only when a spec uses that type.
"""

from __future__ import annotations

import importlib
from typing import Any

STAGE_PACKAGES = ("editors", "generators", "labelers", "verifiers")


def import_object(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def stage_types() -> dict[str, str]:
    types: dict[str, str] = {}
    for package in STAGE_PACKAGES:
        for name, target in importlib.import_module(package).TYPES.items():
            if name in types:
                raise RuntimeError(f"stage type {name!r} is registered twice: {types[name]} and {target}")
            types[name] = target
    return types


def spec_class(type_name: str):
    """The pydantic spec class for a type name; KeyError when unknown."""
    return import_object(stage_types()[type_name])
