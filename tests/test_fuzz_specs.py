"""Spec fuzzing: every spec in pipelines/, mutated as a careless or adversarial user would (keys
dropped, duplicated or unknown, values of every wrong type and size, broken YAML), must give either
`ok` or `error:` lines with exit 2 from `augment validate`: never a traceback.

The default run tries a few mutants of each spec; `make test-slow` tries 30 of each (over 400)."""

from __future__ import annotations

import contextlib
import io
import random
import re
import traceback
from collections import Counter
from pathlib import Path

import pytest
import yaml

from augment.cli import main

PIPELINES = sorted((Path(__file__).parent.parent / "pipelines").glob("*.yaml"))
WRONG_VALUES = [None, True, False, 0, -1, 1.5, 10**20, -(10**20), float("nan"), float("inf"), "", "x", "-1",
                [], {}, [None], {"a": None}, ["x", 1], "../../../etc/passwd", "s3://bucket/x", "🤖" * 3]
JUNK = ["{", "]", ": :", "\t", "&a ", "*b ", "!!python/object/apply:os.system ['true']", "- ", "? ", "%", "'"]


def _nodes(tree, path=()):
    """Every (path, node) of a YAML tree, the root included."""
    yield path, tree
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _nodes(v, (*path, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _nodes(v, (*path, i))


def _set(tree, path, value):
    if not path:
        return value
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return tree


def mutate(text: str, rng: random.Random) -> tuple[str, str]:
    """One mutant of a spec's text and what was done to it."""
    lines = text.splitlines()
    kind = rng.choice(["value", "value", "value", "delete", "unknown key", "wrap", "duplicate line",
                       "delete line", "truncate", "junk"])
    if kind == "duplicate line":
        i = rng.randrange(len(lines))
        return "\n".join(lines[: i + 1] + lines[i:]), f"line {i + 1} duplicated"
    if kind == "delete line":
        i = rng.randrange(len(lines))
        return "\n".join(lines[:i] + lines[i + 1:]), f"line {i + 1} deleted"
    if kind == "truncate":
        cut = rng.randrange(len(text))
        return text[:cut], f"cut at character {cut}"
    if kind == "junk":
        i, junk = rng.randrange(len(lines)), rng.choice(JUNK)
        col = rng.randrange(len(lines[i]) + 1)
        lines[i] = lines[i][:col] + junk + lines[i][col:]
        return "\n".join(lines), f"{junk!r} inserted at line {i + 1}"
    tree = yaml.safe_load(text)
    path, node = rng.choice(list(_nodes(tree)))
    if kind == "value":
        value = rng.choice(WRONG_VALUES)
        tree = _set(tree, path, value)
        what = f"{'.'.join(map(str, path)) or '(root)'} = {value!r}"
    elif kind == "delete" and path:
        parent = tree
        for key in path[:-1]:
            parent = parent[key]
        del parent[path[-1]]
        what = f"{'.'.join(map(str, path))} deleted"
    elif kind == "unknown key" and isinstance(node, dict):
        node["zz_unknown"] = 1
        what = f"{'.'.join(map(str, path)) or '(root)'}.zz_unknown added"
    else:
        tree = _set(tree, path, [node] if not isinstance(node, list) else {"items": node})
        what = f"{'.'.join(map(str, path)) or '(root)'} wrapped"
    return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True), what


def fuzz(spec: Path, count: int, seed: int, source: Path, workdir: Path, outcomes: Counter | None = None) -> list[str]:
    """Run `augment validate` on `count` mutants of `spec`; return a description of every traceback
    (and count the outcomes: ok, error, traceback)."""
    outcomes = Counter() if outcomes is None else outcomes
    text = spec.read_text()
    text = re.sub(r"observation\.images\.[A-Za-z0-9_]+", "observation.images.front", text)  # our test cameras
    base = yaml.safe_load(text)
    base["source"]["root"] = str(source)
    base.setdefault("sink", {})["root"] = str(workdir / "out")
    text = yaml.safe_dump(base, sort_keys=False)
    rng = random.Random(f"{spec.name}-{seed}")
    failures = []
    for n in range(count):
        mutant, what = mutate(text, rng)
        path = workdir / f"{spec.stem}-{n}.yaml"
        path.write_text(mutant)
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(["validate", str(path)])
        except BaseException:  # a traceback (SystemExit included: validate must return, not exit)
            outcomes["traceback"] += 1
            failures.append(f"{spec.name} mutant {n} ({what}):\n{traceback.format_exc(limit=-3)}")
            continue
        outcomes["ok" if code == 0 else "error" if code == 2 else f"exit {code}"] += 1
        if code == 2 and not err.getvalue().startswith("error: "):
            failures.append(f"{spec.name} mutant {n} ({what}): exit 2 without an error line: {err.getvalue()[:300]}")
        elif code not in (0, 2):
            failures.append(f"{spec.name} mutant {n} ({what}): exit {code}")
    return failures


@pytest.mark.parametrize("spec", PIPELINES, ids=lambda p: p.stem)
def test_mutated_specs_give_error_lines_never_tracebacks(spec, source_dataset, tmp_path):
    failures = fuzz(spec, count=4, seed=0, source=source_dataset["root"], workdir=tmp_path)
    assert not failures, "\n".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize("spec", PIPELINES, ids=lambda p: p.stem)
def test_many_mutated_specs_give_error_lines_never_tracebacks(spec, source_dataset, tmp_path):
    failures = fuzz(spec, count=30, seed=1, source=source_dataset["root"], workdir=tmp_path)
    assert not failures, "\n".join(failures)


if __name__ == "__main__":  # python tests/test_fuzz_specs.py DATASET [COUNT]: the figures for the README
    import sys
    import tempfile

    outcomes, failures = Counter(), []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in PIPELINES:
            failures += fuzz(spec, int(sys.argv[2]) if len(sys.argv) > 2 else 30, 1, Path(sys.argv[1]), Path(tmp),
                             outcomes)
    print("\n".join(failures))
    print(f"mutants: {sum(outcomes.values())}, " + ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items())))
