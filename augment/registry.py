"""Stage types by YAML `type:` name.

A spec class registers itself with `@register`, under the name its `type` field holds. Every spec
lives in its package's spec module (editors/specs.py, generators/specs.py, labelers/specs.py,
verifiers/specs.py), which imports nothing heavier than pydantic, so reading every spec is cheap.
The stage behind a spec (which may import torch or diffusers) is imported by the spec's
`stage_class()` only when a job builds it.
"""

from __future__ import annotations

import importlib
from typing import Any

SPEC_MODULES = ("editors.specs", "generators.specs", "labelers.specs", "verifiers.specs")

_TYPES: dict[str, type] = {}


def register(spec: type) -> type:
    """Class decorator: make `spec` the spec of the stage type named by its `type` field's default."""
    field = spec.model_fields.get("type")
    name = field.default if field is not None else None
    if not isinstance(name, str) or not name:
        raise TypeError(f"{spec.__qualname__}: a registered spec needs `type: Literal[\"name\"] = \"name\"`")
    known = _TYPES.get(name)
    if known is not None and (known.__module__, known.__qualname__) != (spec.__module__, spec.__qualname__):
        raise RuntimeError(f"stage type {name!r} is registered twice: {known.__module__}.{known.__qualname__} "
                           f"and {spec.__module__}.{spec.__qualname__}")
    _TYPES[name] = spec
    return spec


def stage_types() -> dict[str, type]:
    """Every registered type name and its spec class."""
    for module in SPEC_MODULES:
        importlib.import_module(module)
    return dict(_TYPES)


def spec_class(type_name: str) -> type:
    """The pydantic spec class for a type name; KeyError when unknown."""
    return stage_types()[type_name]


def import_object(path: str) -> Any:
    """The object at "module:attr": a class a spec names by string (a diffusers pipeline, a checker)."""
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)
