"""Spec loading: every problem names the file, the line and what was expected."""

from __future__ import annotations

import pytest

from augment.spec import SpecError, load_spec


def write(tmp_path, text: str):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


GOOD = """\
name: demo
source:
  root: /data/src
  episodes: [0, "2:4"]
stages:
  - type: background
    variants: 2
sink:
  root: /data/out
"""


def test_good_spec_and_overrides(tmp_path):
    spec = load_spec(write(tmp_path, GOOD), ["stages.0.variants=3", "sink.root=/elsewhere", "seed=7"])
    assert spec.stages[0].type == "background" and spec.stages[0].variants == 3
    assert str(spec.sink.root) == "/elsewhere" and spec.seed == 7
    assert spec.source.episodes == [0, "2:4"]
    assert "variants: 3" in spec.resolved_yaml()


def test_unknown_key_names_file_line_and_valid_keys(tmp_path):
    path = write(tmp_path, GOOD.replace("    variants: 2", "    variants: 2\n    colour: red"))
    with pytest.raises(SpecError) as e:
        load_spec(path)
    message = str(e.value)
    assert f"{path}:8: stages[0].colour: unknown key" in message
    assert "backgrounds" in message and "variants" in message  # the valid keys are listed


def test_unknown_type_lists_valid_types(tmp_path):
    path = write(tmp_path, GOOD.replace("type: background", "type: backgroud"))
    with pytest.raises(SpecError, match=rf"{path}:6: stages\[0\].type: unknown stage type 'backgroud'; valid types: .*background"):
        load_spec(path)


def test_wrong_type_and_missing_field(tmp_path):
    path = write(tmp_path, GOOD.replace("variants: 2", "variants: many").replace("sink:\n  root: /data/out\n", "sink: {}\n"))
    with pytest.raises(SpecError) as e:
        load_spec(path)
    message = str(e.value)
    assert f"{path}:7: stages[0].variants: Input should be a valid integer" in message
    assert f"{path}:8: sink.root: required field is missing" in message


def test_top_level_unknown_key_and_bad_range(tmp_path):
    path = write(tmp_path, GOOD.replace("name: demo", "nam: demo").replace('"2:4"', '"2-4"'))
    with pytest.raises(SpecError) as e:
        load_spec(path)
    assert f"{path}:1: nam: unknown key; valid keys: name, seed, source, stages, sink" in str(e.value)
    assert "'2-4' is neither an index nor a range" in str(e.value)


def test_bad_override_and_missing_file(tmp_path):
    with pytest.raises(SpecError, match="expected dotted.key=value"):
        load_spec(write(tmp_path, GOOD), ["sink.root"])
    with pytest.raises(SpecError, match=r"\(--set stages.0.variants\): stages\[0\].variants"):
        load_spec(write(tmp_path, GOOD), ["stages.0.variants=zero"])
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(write(tmp_path, "source: [unclosed"))
