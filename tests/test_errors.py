"""Bad input gets a clear error from the CLI (exit code 2), never a bare traceback."""

from __future__ import annotations

import json
import shutil

import pytest

from augment.cli import main
from conftest import write_spec


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_missing_root(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.yaml", tmp_path / "nowhere", tmp_path / "out")
    code, text = run_cli(capsys, "run", str(spec), "--local")
    assert code == 2 and f"error: {tmp_path / 'nowhere'}: no such dataset folder" in text


def test_folder_that_is_not_a_dataset(tmp_path, capsys):
    (tmp_path / "plain").mkdir()
    code, text = run_cli(capsys, "inspect", str(tmp_path / "plain"))
    assert code == 2 and "not a LeRobot dataset (no meta/info.json)" in text


def test_v21_dataset_points_to_the_converter(tmp_path, capsys):
    (tmp_path / "old" / "meta").mkdir(parents=True)
    (tmp_path / "old" / "meta" / "info.json").write_text(json.dumps({"codebase_version": "v2.1", "fps": 10}))
    code, text = run_cli(capsys, "inspect", str(tmp_path / "old"))
    assert code == 2 and "format v2.1" in text and "lerobot.scripts.convert_dataset_v21_to_v30" in text


def test_corrupt_mp4_is_named(source_dataset, tmp_path, capsys, copy_tree):
    src = copy_tree(source_dataset["root"], tmp_path / "src")
    video = next((src / "videos" / "observation.images.front").rglob("*.mp4"))
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 3])  # truncated, as after an interrupted copy
    spec = write_spec(tmp_path / "s.yaml", src, tmp_path / "out")
    code, text = run_cli(capsys, "run", str(spec), "--local", "--quiet")
    assert code == 2 and str(video) in text
    assert not (tmp_path / "out" / "meta" / "info.json").exists()  # nothing that looks finished


def test_bad_spec(tmp_path, capsys, source_dataset):
    spec = write_spec(tmp_path / "s.yaml", source_dataset["root"], tmp_path / "out",
                      stages="  - type: background\n    varients: 2\n")
    code, text = run_cli(capsys, "validate", str(spec))
    assert code == 2 and f"{spec}:6: stages[0].varients: unknown key" in text


def test_refuses_to_overwrite_foreign_folder_and_finished_dataset(tmp_path, capsys, source_dataset):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    spec = write_spec(tmp_path / "s.yaml", source_dataset["root"], out, extra="  episodes: [0]\n")
    code, text = run_cli(capsys, "run", str(spec), "--local", "--quiet")
    assert code == 2 and "not an augment output" in text and (out / "precious.txt").exists()
    shutil.rmtree(out)
    assert run_cli(capsys, "run", str(spec), "--local", "--quiet")[0] == 0
    code, text = run_cli(capsys, "run", str(spec), "--local", "--quiet")
    assert code == 2 and "already holds a finished dataset" in text
    assert run_cli(capsys, "run", str(spec), "--local", "--quiet", "--set", "sink.overwrite=true")[0] == 0


def test_validate_and_inspect_report_what_they_see(source_dataset, tmp_path, capsys):
    spec = write_spec(tmp_path / "s.yaml", source_dataset["root"], tmp_path / "out", extra="  episodes: ['1:']\n")
    code, text = run_cli(capsys, "validate", str(spec))
    assert code == 0 and "ok — 3 episodes" in text
    code, text = run_cli(capsys, "inspect", str(source_dataset["root"]), "--json")
    summary = json.loads(text)
    assert summary["episodes"] == 4 and summary["frames"] == 47 and summary["fps"] == 10
    assert set(summary["cameras"]) == {"observation.images.front", "observation.images.wrist"}
    assert summary["cameras"]["observation.images.front"]["codec"] == "av1"
    assert summary["tasks"] == ["lift the cube", "push the block"]


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"]])
def test_help_explains(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    assert "pipeline" in capsys.readouterr().out


def test_inspect_into_a_closed_pipe_is_quiet(source_dataset, tmp_path, monkeypatch):
    """`augment inspect ROOT | head -1`: the reader leaving ends the command quietly, not with a traceback."""
    import sys

    class ClosedPipe:
        def __init__(self, fd):
            self.fd = fd

        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

        def fileno(self):
            return self.fd

    with open(tmp_path / "stdout", "w") as sink:
        monkeypatch.setattr(sys, "stdout", ClosedPipe(sink.fileno()))
        assert main(["inspect", str(source_dataset["root"])]) == 141


def test_a_folder_with_a_bare_augment_dir_is_not_ours(tmp_path, capsys, source_dataset):
    """Only our own marker (.augment/owner.json) makes a folder ours; a `.augment/` dir is not enough."""
    out = tmp_path / "out"
    (out / ".augment").mkdir(parents=True)
    (out / "data").mkdir()
    (out / "data" / "mine.parquet").write_text("user data")
    spec = write_spec(tmp_path / "s.yaml", source_dataset["root"], out, extra="  episodes: [0]\n")
    code, text = run_cli(capsys, "run", str(spec), "--local", "--quiet")
    assert code == 2 and "not an augment output" in text and ".augment/owner.json" in text and "data/" in text
    assert (out / "data" / "mine.parquet").read_text() == "user data"


def test_overwrite_removes_only_what_we_wrote(tmp_path, capsys, source_dataset):
    out = tmp_path / "out"
    spec = write_spec(tmp_path / "s.yaml", source_dataset["root"], out, extra="  episodes: [0]\n")
    assert run_cli(capsys, "run", str(spec), "--local", "--quiet")[0] == 0
    assert (out / ".augment" / "owner.json").is_file()
    (out / "notes.txt").write_text("my evaluation")
    (out / "meta" / "eval.json").write_text("{}")
    code, text = run_cli(capsys, "run", str(spec), "--local", "--quiet", "--set", "sink.overwrite=true")
    assert code == 2 and "meta/eval.json" in text and "notes.txt" in text
    assert (out / "notes.txt").exists() and (out / "meta" / "info.json").exists()  # nothing deleted
    (out / "notes.txt").unlink()
    (out / "meta" / "eval.json").unlink()
    assert run_cli(capsys, "run", str(spec), "--local", "--quiet", "--set", "sink.overwrite=true")[0] == 0
    assert (out / "meta" / "augment_report.json").exists()


def test_a_changed_spec_does_not_resume_a_partial_output(tmp_path, capsys, source_dataset, monkeypatch):
    from augment.parts import PartWriter

    out = tmp_path / "out"
    spec = write_spec(tmp_path / "s.yaml", source_dataset["root"], out,
                      stages="  - type: background\n    variants: 2\n", extra="  episodes: [0, 1]\n")
    real_write = PartWriter.write

    def die_after_first_part(self, rows):
        real_write(self, rows)
        raise KeyboardInterrupt  # the job is stopped after episode 0's part

    monkeypatch.setattr(PartWriter, "write", die_after_first_part)
    run_cli(capsys, "run", str(spec), "--local", "--quiet", "--set", "sink.episodes_per_file=1")
    monkeypatch.setattr(PartWriter, "write", real_write)
    code, text = run_cli(capsys, "run", str(spec), "--local", "--quiet", "--set", "stages.0.variants=3")
    assert code == 2 and "stages[0].variants: 2 -> 3" in text and "sink.overwrite" in text
    assert not (out / "meta" / "info.json").exists()
    # the same spec resumes; a changed one with overwrite starts afresh
    assert run_cli(capsys, "run", str(spec), "--local", "--quiet", "--set", "stages.0.variants=3",
                   "--set", "sink.overwrite=true")[0] == 0
    report = json.loads((out / "meta" / "augment_report.json").read_text())
    assert report["episodes_out"] == 6 and report["episodes_done_before"] == 0


@pytest.mark.parametrize("stages, sets, expected", [
    ("  - type: [background]\n", [], ":5: stages[0].type: unknown stage type ['background']"),
    ("  - type: background\n", ["stages.0.variants=[1"], "the value is not plain YAML"),
    ("  - type: background\n", ["stages.0.variants=!!python/name:os.system"], "the value is not plain YAML"),
    ("  - type: background\n    variants: 2\n    variants: 3\n", [], ":7: not valid YAML: duplicate key 'variants'"),
])
def test_bad_types_and_set_values_are_error_lines(tmp_path, capsys, source_dataset, stages, sets, expected):
    spec = write_spec(tmp_path / "s.yaml", source_dataset["root"], tmp_path / "out", stages=stages)
    code, text = run_cli(capsys, "validate", str(spec), *[a for s in sets for a in ("--set", s)])
    assert code == 2 and text.startswith("error: ") and expected in text and "Traceback" not in text


def test_other_data_under_the_source_path_does_not_resume(tmp_path, capsys, source_dataset, image_dataset,
                                                          copy_tree, monkeypatch):
    from augment.parts import PartWriter

    src, out = copy_tree(source_dataset["root"], tmp_path / "src"), tmp_path / "out"
    spec = write_spec(tmp_path / "s.yaml", src, out)
    real_write = PartWriter.write

    def die_after_first_part(self, rows):
        real_write(self, rows)
        raise KeyboardInterrupt

    monkeypatch.setattr(PartWriter, "write", die_after_first_part)
    assert run_cli(capsys, "run", str(spec), "--local", "--quiet")[0] == 130
    monkeypatch.setattr(PartWriter, "write", real_write)
    shutil.rmtree(src)
    copy_tree(image_dataset["root"], src)  # the same path, other episodes
    code, text = run_cli(capsys, "run", str(spec), "--local", "--quiet")
    assert code == 2 and "source_fingerprint.total_episodes: 4 -> 2" in text
