"""benchmarks/bench_policy.py: the pieces that decide its figures (intervals, shifted scenes, the spec it
hands to `augment run`) and, marked slow, the whole --quick run."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import load_script

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("MUJOCO_GL", "egl")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_policy.py"


bench = load_script("benchmarks/bench_policy.py")


def test_wilson_matches_known_values():
    # Reference values: scipy.stats.binomtest(k, n).proportion_ci(method="wilson"), 95%.
    assert bench.wilson(0, 50) == pytest.approx((0.0, 0.07135), abs=1e-4)
    assert bench.wilson(50, 50) == pytest.approx((0.92865, 1.0), abs=1e-4)
    assert bench.wilson(25, 50) == pytest.approx((0.36645, 0.63355), abs=1e-4)
    assert bench.wilson(3, 10) == pytest.approx((0.10779, 0.60322), abs=1e-4)


def test_summary_line_pools_shifted_conditions():
    rows = [dict(task="t", condition=c, policy=p, successes=k, episodes=10)
            for c, p, k in [("original", "real", 9), ("table", "real", 2), ("light", "real", 4),
                            ("original", "augmented", 8), ("table", "augmented", 7), ("light", "augmented", 6)]]
    assert bench.summary(rows) == "policy: real in-dist 0.90 shifted 0.30 | augmented in-dist 0.80 shifted 0.65"


def test_readme_block_is_replaced_and_nothing_else(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{bench.README_BEGIN}\nold table\n{bench.README_END}\nafter\n")
    bench.write_readme(readme, "| new |")
    bench.write_readme(readme, "| newer |")
    assert readme.read_text() == f"intro\n{bench.README_BEGIN}\n| newer |\n{bench.README_END}\nafter\n"
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="no <!-- bench_policy table -->"):
        bench.write_readme(readme, "| new |")


def test_augment_spec_is_a_valid_product_spec(tmp_path):
    from augment.spec import load_spec

    assets = bench.write_assets(tmp_path / "assets")
    assert len(list(assets.glob("*.png"))) == 6
    path = tmp_path / "spec.yaml"
    path.write_text(bench.augment_spec(tmp_path / "real", tmp_path / "out", assets, variants=3))
    spec = load_spec(path)
    # the default recipe: the table re-textured between the backdrop and the pasted objects, then a new light
    # over all of it
    assert [s.type for s in spec.stages] == ["background", "surface", "add_object", "lighting", "source"]
    assert spec.stages[3].cameras == [bench.IMAGE_KEY]
    assert spec.stages[0].variants == 3 and spec.stages[2].apply_to == "all"
    # pasted distractors of about the task object's size at 64 px (>= 8 px), not 5 px specks
    assert spec.stages[2].size[0] * 64 >= 8
    assert spec.stages[1].cameras == spec.stages[0].cameras == [bench.IMAGE_KEY]
    # --no-surface: the recipe without the table edit
    path.write_text(bench.augment_spec(tmp_path / "real", tmp_path / "out", assets, variants=3, surface=False,
                                       lighting=False))
    spec = load_spec(path)
    assert [s.type for s in spec.stages] == ["background", "add_object", "source"]


def test_a_step_is_reused_only_with_the_settings_it_was_made_with(tmp_path):
    # a smoke run's 8 demos (or its 150-step policy) in the same --work must not stand in for the full run's
    out = tmp_path / "real"

    def make():
        (out / "meta").mkdir(parents=True)
        (out / "meta" / "info.json").write_text("{}")
        return out / "meta" / "info.json"

    done = make()
    assert not bench.reusable(out, done, {"demos": 40}) and not out.exists()  # no stamp: made before stamps
    done = make()
    bench.stamp(out, {"demos": 8})
    assert not bench.reusable(out, done, {"demos": 40}) and not out.exists()
    assert not (tmp_path / "real.settings.json").exists()
    done = make()
    bench.stamp(out, {"demos": 40})
    assert bench.reusable(out, done, {"demos": 40}) and done.exists()
    assert bench.settings_of(out) == {"demos": 40}
    done.unlink()  # a step stopped before it finished is redone even with its stamp
    assert not bench.reusable(out, done, {"demos": 40}) and not out.exists()


def test_augmented_data_made_without_lighting_is_reused_only_without_it(tmp_path, monkeypatch):
    # a run from before `lighting` joined the recipe stamped its augmented data without the key: --no-lighting
    # may reuse it, the default recipe must make it again (through `augment run`, stubbed here)
    real, out = tmp_path / "real", tmp_path / "augmented"
    bench.stamp(real, {"demos": 40})
    (out / "meta").mkdir(parents=True)
    (out / "meta" / "info.json").write_text("{}")
    bench.stamp(out, {"real": {"demos": 40}, "variants": 3, "surface": True})
    ran = []

    def run(args, log_file, extra_env=None):  # `augment run` that writes an empty dataset
        ran.append(args)
        (out / "meta").mkdir(parents=True)
        (out / "meta" / "info.json").write_text('{"total_episodes": 0}')

    monkeypatch.setattr(bench, "run", run)
    monkeypatch.setattr(bench, "write_assets", lambda folder: folder)
    assert bench.augment(tmp_path, real, 3, surface=True, lighting=False) == out and not ran
    with pytest.raises(SystemExit, match="made no episodes"):  # the stub made nothing: it was asked to run
        bench.augment(tmp_path, real, 3, surface=True, lighting=True)
    assert len(ran) == 1 and "type: lighting" in (tmp_path / "augment.yaml").read_text()


@pytest.fixture(scope="module")
def scenes():
    """(~5 s on idle cores; one MetaWorld env.)
    The first frame of two held-out placements in every condition, 64 px, from one simulator whose
    shift is switched between resets (building a MetaWorld env costs seconds); the recorded scene
    comes first and again last, after every shift."""
    pytest.importorskip("metaworld")
    out = {}
    sim = bench.ShiftedSim("button-press-topdown-v3", 64, bench.Shift())
    try:
        for condition in bench.CONDITIONS + ["original again"]:
            sim.shift = bench.Shift.named(condition.removesuffix(" again"))
            out[condition] = np.stack([sim.observe(sim.reset(bench.EVAL_SEED + i))[0][bench.CAMERA] for i in range(2)])
    finally:
        sim.close()
    return out


def test_shifted_scenes_change_the_picture(scenes):
    original = scenes["original"].astype(int)
    for condition in bench.SHIFTS:
        diff = np.abs(scenes[condition].astype(int) - original).max(-1)
        # three distractors cover ~0.5% of the 64 px view; the table, the floor and the light change much of it
        changed = (diff > 30).mean()
        assert changed > (0.003 if condition == "distractors" else 0.15), (condition, changed)


def test_shift_is_undone_on_the_next_reset(scenes):
    np.testing.assert_array_equal(scenes["original again"], scenes["original"])


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path):
    """The whole benchmark at its smallest: record, augment run, two lerobot-train runs, evaluation."""
    pytest.importorskip("metaworld")
    args = [sys.executable, str(SCRIPT), "--work", str(tmp_path), "--quick", "--demos", "3", "--steps", "20",
            "--episodes", "2", "--max-steps", "30", "--conditions", "original,all"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=1800, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("policy: real in-dist ") and " | augmented in-dist " in last
    assert (tmp_path / "button-press-topdown-v3" / "augmented" / "meta" / "info.json").exists()
    # a rerun with other training steps reuses the recorded and augmented data, and trains both again
    args[args.index("--steps") + 1] = "25"
    again = subprocess.run(args, capture_output=True, text=True, timeout=1800, cwd=ROOT)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "recorded" not in again.stdout and "augment run:" not in again.stdout
    assert again.stdout.count("25 steps in") == 2
