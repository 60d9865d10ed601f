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
    expected = rf"{path}:6: stages\[0\].type: unknown stage type 'backgroud'; valid types: .*background"
    with pytest.raises(SpecError, match=expected):
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


def test_duplicate_keys_are_errors_with_their_line(tmp_path):
    path = write(tmp_path, GOOD + "sink:\n  root: /data/other\n  overwrite: true\n")
    with pytest.raises(SpecError, match=rf"{path}:10: not valid YAML: duplicate key 'sink' \(first at line 8\)"):
        load_spec(path)
    path = write(tmp_path, GOOD.replace("    variants: 2", "    variants: 2\n    variants: 3"))
    with pytest.raises(SpecError, match=rf"{path}:8: .*duplicate key 'variants' \(first at line 7\)"):
        load_spec(path)


@pytest.mark.parametrize("old, new, where, expected", [
    ("stages:\n  - type: background\n    variants: 2\n", "stages: false\n", 5, "stages: expected a list"),
    ("variants: 2", "variants: true", 7, "stages[0].variants: expected int, got a boolean (true)"),
    ("variants: 2", "variants: 1001", 7, "stages[0].variants: Input should be less than or equal to 1000"),
    ("variants: 2", "variants: 99999999999999999999", 7, "stages[0].variants: 99999999999999999999 is beyond"),
    ("variants: 2", "variants: 2\n    resources: {num_cpus: true}", 8,
     "stages[0].resources.num_cpus: expected float, got a boolean"),
    ("variants: 2", "variants: 2\n    cameras: []", 8, "stages[0].cameras: an empty camera list"),
    ("  root: /data/src\n", "  root: /data/src\n  cameras: []\n", 4, "source.cameras: an empty camera list"),
    ("type: background", "type: [background]", 6, "stages[0].type: unknown stage type ['background']"),
    ("type: background", "type: {a: 1}", 6, "stages[0].type: unknown stage type {'a': 1}"),
    ("type: background\n    variants: 2", "type: consistency\n    limits: {jump: true}", 7,
     "stages[0].limits.jump: expected float, got a boolean"),  # a stage's nested block is as strict
])
def test_values_lax_yaml_would_coerce_are_errors(tmp_path, old, new, where, expected):
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(SpecError) as e:
        load_spec(path)
    assert f"{path}:{where}: {expected}" in str(e.value)


def test_a_boolean_where_a_boolean_belongs_is_fine(tmp_path):
    assert load_spec(write(tmp_path, GOOD), ["sink.overwrite=true"]).sink.overwrite is True
    assert load_spec(write(tmp_path, GOOD.replace("stages:\n  - type: background\n    variants: 2\n", "stages:\n"))).stages == []


@pytest.mark.parametrize("value", ["[unclosed", "!!python/object:os.system x", "{a: 1", "!custom 3"])
def test_broken_set_values_are_spec_errors(tmp_path, value):
    with pytest.raises(SpecError, match=r"--set 'stages.0.variants=.*': the value is not plain YAML"):
        load_spec(write(tmp_path, GOOD), [f"stages.0.variants={value}"])


def test_the_pipeline_seed_is_every_stage_s_default(tmp_path):
    from augment.spec import load_spec

    path = tmp_path / "s.yaml"
    path.write_text("seed: 7\nsource: {root: /x}\nsink: {root: /y}\nstages:\n"
                    "  - {type: background}\n  - {type: background, seed: 3}\n  - {type: source}\n")
    spec = load_spec(path)
    assert [s.seed for s in spec.stages[:2]] == [7, 3]
    assert load_spec(path, ["seed=0"]).stages[0].seed == 0  # the default, as before
