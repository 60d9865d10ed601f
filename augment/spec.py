"""The pipeline spec: one YAML file that says where episodes come from, which stages run, and where
the new dataset goes. Validated by pydantic; every error names the file, the line and what was expected.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, SerializeAsAny, ValidationError, field_validator

from augment.registry import spec_class, stage_types
from augment.settings import parse_override
from augment.stage import StageSpec, StrictSpec


class SpecError(ValueError):
    """A spec that cannot run; the message lists every problem as `file:line: field: problem`."""


class SourceSpec(StrictSpec):
    root: str = Field(description="a LeRobot v3.0 dataset root (the folder holding meta/info.json): a path, "
                                  "or a URI (s3://bucket/prefix, gs://..., any pyarrow or fsspec filesystem)")
    episodes: list[int | str] | None = Field(
        None, description='episode indices and ranges, e.g. [0, 3, "10:20"] (end excluded); default all'
    )
    cameras: list[str] | None = Field(None, description="video keys to read; default every video key")

    @field_validator("episodes")
    @classmethod
    def _ranges_parse(cls, value: list[int | str] | None) -> list[int | str] | None:
        for item in value or []:
            if isinstance(item, str) and not re.fullmatch(r"\s*\d*\s*:\s*\d*\s*", item):
                raise ValueError(f"{item!r} is neither an index nor a range like '10:20'")
        return value


class SinkSpec(StrictSpec):
    root: str = Field(description="output dataset root; created, must be empty or a previous run's output: "
                                  "a path, or a URI (s3://bucket/prefix, ...)")
    repo_id: str = Field("local/augmented", description="the repo_id written into the dataset card")
    codec: str | None = Field(None, description="video codec (av1, h264, hevc); default: the source's")
    crf: int | None = Field(None, description="encoder quality; default: the source's")
    gop: int | None = Field(None, description="keyframe interval; default: the source's")
    episodes_per_file: int = Field(20, ge=1, description="episodes packed into each data/video file")
    num_cpus: float = Field(1.0, gt=0, description="CPUs per writer task (video encoding)")
    top_k: int | None = Field(
        None, ge=1, description="best-of-N: keep the k best-scored episodes per rank group (source episode and edit)"
    )
    overwrite: bool = Field(False, description="replace a finished dataset at root instead of refusing")


class PipelineSpec(StrictSpec):
    name: str = "augment"
    seed: int = Field(0, description="the default of every stage's own `seed` (each derives its draws per episode)")
    source: SourceSpec
    # SerializeAsAny: dump each stage as its own class, with its fields, not as the base it is typed as
    stages: list[SerializeAsAny[StageSpec]] = Field(default_factory=list)
    sink: SinkSpec

    def resolved_yaml(self) -> str:
        data = self.model_dump(mode="json")
        return yaml.safe_dump(data, sort_keys=False)


# ---------------------------------------------------------------------------------------------
# Loading with line numbers


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: plain YAML keeps the last one, silently."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key]})", key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def _line_index(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map every key path in a YAML document to its 1-based line, for error messages."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key_path = (*path, key_node.value)
            out[key_path] = key_node.start_mark.line + 1
            _line_index(value_node, key_path, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, (*path, i), out)
    return out


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    """Apply `--set a.b.0.c=value` (parsed by augment.settings.parse_override)."""
    keys = dotted.split(".")
    target: Any = data
    for key in keys[:-1]:
        if isinstance(target, list):
            target = target[int(key)]
        else:
            target = target.setdefault(key, {})
    last = keys[-1]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value


def _describe(error: dict, model: type[BaseModel] | None) -> str:
    kind = error["type"]
    if kind == "extra_forbidden" and model is not None:
        return f"unknown key; valid keys: {', '.join(model.model_fields)}"
    if kind == "missing":
        return "required field is missing"
    if kind == "value_error":  # our validators' own words, without pydantic's "Value error, " prefix
        return str(error["ctx"]["error"])
    return f"{error['msg']} (got {error.get('input')!r})"


def load_spec(path: str | Path, overrides: list[str] | None = None) -> PipelineSpec:
    """Read, override (`key.path=value`), and validate a pipeline spec. Raises SpecError."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: spec file not found")
    text = path.read_text()
    try:
        node = yaml.compose(text, Loader=_StrictLoader)
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as e:  # file:line first, like every other spec error
        mark = e.problem_mark or e.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise SpecError(f"{where}: not valid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a spec is a mapping with source, stages and sink; got {type(data).__name__}")
    lines = _line_index(node) if node is not None else {}

    for item in overrides or []:
        try:
            key, value = parse_override(item)
        except ValueError as e:
            raise SpecError(str(e)) from None
        try:
            _set_dotted(data, key, value)
            lines[tuple(int(k) if k.isdigit() else k for k in key.split("."))] = f"--set {key}"
        except (IndexError, ValueError, TypeError, AttributeError, KeyError):
            raise SpecError(f"--set {item!r}: {key} does not name a field of {path}") from None

    problems: list[str] = []

    def where(loc: tuple) -> str:
        for n in range(len(loc), -1, -1):
            if loc[:n] in lines:
                line = lines[loc[:n]]
                return f"{path}:{line}" if isinstance(line, int) else f"{path} ({line})"
        return str(path)

    def dotted(loc: tuple) -> str:
        return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")

    raw_stages = data.get("stages")
    raw_stages = [] if raw_stages is None else raw_stages  # `stages:` left empty: a copy; `false` is not
    if not isinstance(raw_stages, list):
        problems.append(f"{where(('stages',))}: stages: expected a list of stages")
        raw_stages = []
    stages: list[StageSpec] = []
    known = stage_types()
    for i, raw in enumerate(raw_stages):
        loc = ("stages", i)
        if not isinstance(raw, dict) or "type" not in raw:
            problems.append(f"{where(loc)}: {dotted(loc)}: each stage needs a `type:`; valid types: {', '.join(sorted(known))}")
            continue
        if not isinstance(raw["type"], str) or raw["type"] not in known:  # a list/dict is unhashable
            problems.append(
                f"{where((*loc, 'type'))}: {dotted(loc)}.type: unknown stage type {raw['type']!r}; "
                f"valid types: {', '.join(sorted(known)) or '(none registered)'}"
            )
            continue
        cls = spec_class(raw["type"])
        try:
            stages.append(cls.model_validate(raw))
        except ValidationError as e:
            for err in e.errors():
                full = (*loc, *err["loc"])
                sub = _submodel(cls, err["loc"])
                problems.append(f"{where(full)}: {dotted(full)}: {_describe(err, sub)}")

    try:
        spec = PipelineSpec.model_validate({**data, "stages": []})
    except ValidationError as e:
        for err in e.errors():
            sub = _submodel(PipelineSpec, err["loc"])
            problems.append(f"{where(err['loc'])}: {dotted(err['loc'])}: {_describe(err, sub)}")
        spec = None
    if problems:
        raise SpecError("invalid spec:\n  " + "\n  ".join(problems))
    for stage in stages:  # a stage without its own seed takes the pipeline's
        if "seed" in type(stage).model_fields and "seed" not in stage.model_fields_set:
            stage.seed = spec.seed
    spec.stages = stages
    return spec


def _submodel(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model that owns the last key of `loc`, to list its valid keys."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if isinstance(current, type) and issubclass(current, BaseModel) else None
        if field is None:
            return None
        current = field.annotation
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None
