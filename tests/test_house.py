"""The walls of the house: loading any spec (and `augment --help`) imports no heavy library, and only
augment/runner.py imports ray."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parent.parent
HEAVY = ("torch", "diffusers", "transformers", "segment_anything", "ray")
PACKAGES = ("augment", "editors", "generators", "labelers", "verifiers")


def _imported_after(code: str) -> list[str]:
    probe = (f"import sys\n{code}\n"
             f"import json; print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_stage_type_and_every_example_spec_loads_without_heavy_imports():
    code = """
from pathlib import Path
from augment.registry import spec_class, stage_types
from augment.spec import SpecError, load_spec
types = stage_types()
assert len(types) >= 16, types
for name in types:
    spec_class(name)
for path in sorted(Path('pipelines').glob('*.yaml')):
    try:
        load_spec(path)
    except SpecError:
        pass  # an example's checkpoint or assets exist only after `make demo`: the error is the point
"""
    assert _imported_after(code) == []


def test_the_cli_starts_without_heavy_imports():
    code = """
import contextlib, io
from augment.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    for argv in (['--help'], ['run', '--help'], ['train-idm', '--help'], ['finetune', '--help'], ['check', '--help']):
        try:
            main(argv)
        except SystemExit:
            pass
"""
    assert _imported_after(code) == []


def test_only_the_runner_imports_ray():
    offenders = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                if any(n == "ray" or n.startswith("ray.") for n in names):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert {o.split(":")[0] for o in offenders} == {"augment/runner.py"}, offenders


def test_every_type_is_registered_from_its_spec_module_and_builds_its_own_stage():
    from augment.registry import SPEC_MODULES, stage_types

    for name, spec in stage_types().items():
        assert spec.__module__ in SPEC_MODULES, (name, spec.__module__)
        assert spec.model_fields["type"].default == name
        stage = spec.stage_class()
        assert stage.__module__ not in SPEC_MODULES and stage.__module__.split(".")[0] == spec.__module__.split(".")[0]


def test_the_registry_refuses_a_second_spec_for_a_name_and_a_spec_without_a_type():
    from typing import Literal

    import pytest

    from augment.registry import register
    from augment.stage import StageSpec

    class Another(StageSpec):
        type: Literal["background"] = "background"

    with pytest.raises(RuntimeError, match="'background' is registered twice"):
        register(Another)

    class Nameless(StageSpec):
        pass

    with pytest.raises(TypeError, match="needs `type"):
        register(Nameless)


def test_spec_modules_import_no_image_or_model_library():
    code = "import sys\nfrom augment.registry import stage_types\nstage_types()\n" \
           "print(sorted(m for m in ('cv2', 'PIL', 'av', 'torch', 'lerobot') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
