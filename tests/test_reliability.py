"""What an unattended batch job must survive: a second job on the same sink, a full disk, a source
whose files disagree with its meta/info.json. Every one ends in an `error:` line and exit 2, with
nothing finished lost."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import numpy as np
import pyarrow.parquet as pq
import pytest

from augment.cli import main
from augment.pipeline import plan
from augment.spec import load_spec
from augment.commit import is_committed
from conftest import write_spec


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_second_job_on_the_same_sink_is_refused_naming_the_first(source_dataset, tmp_path, capsys):
    spec_path = write_spec(tmp_path / "s.yaml", source_dataset["root"], tmp_path / "out")
    first = plan(load_spec(spec_path))
    try:
        code, text = run_cli(capsys, "run", str(spec_path), "--local", "--quiet")
        assert code == 2
        assert f"is being written by another augment job (pid {os.getpid()} on " in text
    finally:
        first.release()
    code, text = run_cli(capsys, "run", str(spec_path), "--local", "--quiet")  # the first gone: the sink is free
    assert code == 0 and is_committed(tmp_path / "out")


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of 64 KB (CI runs as root); skipped where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_says_how_much_room_is_needed_and_keeps_finished_parts(source_dataset, small_disk, capsys):
    out = small_disk / "out"
    spec_path = write_spec(small_disk.parent / "s.yaml", source_dataset["root"], out)
    spec_path.write_text(spec_path.read_text().replace("episodes_per_file: 2", "episodes_per_file: 1"))
    code, text = run_cli(capsys, "run", str(spec_path), "--local", "--quiet")
    assert code == 2, text
    assert f"error: disk full writing {out}:" in text and "this job needs about" in text
    assert "finished parts are kept" in text and "Traceback" not in text
    parts = list((out / ".augment" / "parts").glob("part-*"))
    assert parts and all((p / "manifest.json").is_file() for p in parts)  # no half-written part left
    assert not is_committed(out)
    kept = {p.name for p in parts}
    subprocess.run(["mount", "-o", "remount,size=4m", str(small_disk)], check=True)
    code, text = run_cli(capsys, "run", str(spec_path), "--local", "--quiet")
    assert code == 0 and is_committed(out), text
    report = json.loads((out / "meta" / "augment_report.json").read_text())
    assert report["episodes_done_before"] == len(kept)  # the parts written before the disk filled were reused
    assert report["episodes_out"] == len(source_dataset["episodes"])


def _broken_copy(source_dataset, tmp_path, copy_tree, how: str):
    src = copy_tree(source_dataset["root"], tmp_path / f"src-{how}-{uuid.uuid4().hex[:6]}")
    info_path = src / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    data = next((src / "data").rglob("*.parquet"))
    if how == "truncated parquet":
        raw = data.read_bytes()
        data.write_bytes(raw[: len(raw) // 2])
        return src, str(data)
    if how == "corrupt mp4":
        video = next((src / "videos" / "observation.images.front").rglob("*.mp4"))
        raw = bytearray(video.read_bytes())
        raw[len(raw) // 2:] = b"\0" * (len(raw) - len(raw) // 2)
        video.write_bytes(bytes(raw))
        return src, str(video)
    if how == "camera shape":
        info["features"]["observation.images.front"]["shape"][0] += 8
        info_path.write_text(json.dumps(info))
        return src, "48x64 frames (height x width), meta/info.json declares 56x64"
    if how == "state shape":
        info["features"]["observation.state"]["shape"] = [info["features"]["observation.state"]["shape"][0] + 1]
        info_path.write_text(json.dumps(info))
        return src, "column 'observation.state' holds values of shape"
    if how == "fps":
        info["fps"] *= 2
        info_path.write_text(json.dumps(info))
        return src, "fps 20"
    if how == "timestamps":
        table = pq.read_table(data)
        stamps = table["timestamp"].to_numpy().copy()
        stamps[3] += 0.05
        table = table.set_column(table.schema.get_field_index("timestamp"), "timestamp",
                                 __import__("pyarrow").array(stamps.astype(np.float32)))
        pq.write_table(table, data)
        return src, "frame 3: timestamp"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["truncated parquet", "corrupt mp4", "camera shape", "state shape", "fps",
                                 "timestamps"])
def test_verify_and_validate_deep_find_what_metadata_hides(source_dataset, tmp_path, capsys, copy_tree, how):
    src, named = _broken_copy(source_dataset, tmp_path, copy_tree, how)
    code, text = run_cli(capsys, "inspect", str(src), "--verify")
    assert code == 2 and "error: " in text and named in text, text
    spec = write_spec(tmp_path / "s.yaml", src, tmp_path / "out")
    code, text = run_cli(capsys, "validate", str(spec), "--deep")
    assert code == 2 and named in text, text


def test_verify_passes_a_clean_dataset(source_dataset, capsys):
    code, text = run_cli(capsys, "inspect", str(source_dataset["root"]), "--verify")
    assert code == 0 and f"verified: all {len(source_dataset['episodes'])} episodes" in text


@pytest.mark.parametrize("how", ["camera shape", "fps"])
def test_the_run_names_the_file_and_the_mismatch(source_dataset, tmp_path, capsys, copy_tree, how):
    src, named = _broken_copy(source_dataset, tmp_path, copy_tree, how)
    spec = write_spec(tmp_path / "s.yaml", src, tmp_path / "out")
    code, text = run_cli(capsys, "run", str(spec), "--local", "--quiet")
    assert code == 2 and named in text and "stage that changes resolution" not in text, text
    assert "truncated or corrupt" not in text


# A run killed (SIGKILL, by strace's fault injection) at the Nth call of a system call, chosen from
# what an uninterrupted run calls: (system call, a path it is called on). The default run kills at
# the first part's manifest and in the middle of the commit; `make test-slow` at every point.
KILL_POINTS = [("rename", "/manifest.json"), ("rename", "/meta/info.json"),
               pytest.param("link", "/videos/", marks=pytest.mark.slow),
               pytest.param("rename", "/meta/augment_report.json", marks=pytest.mark.slow),
               pytest.param("rename", "/complete.json", marks=pytest.mark.slow)]
STAGES = "  - type: background\n    variants: 2\n"


def _augment(*argv, strace: list[str] | None = None) -> subprocess.CompletedProcess:
    cmd = [*(strace or []), sys.executable, "-m", "augment.cli", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def _read_output(root) -> dict:
    from augment.source import LeRobotSource

    source = LeRobotSource(root)
    out = {}
    for row in source.episodes:
        episode = source.read_episode(row["episode_index"])
        out[row["augment/uid"]] = (episode.frames, episode.action, episode.state)
    return out


@pytest.fixture(scope="module")
def uninterrupted(source_dataset, tmp_path_factory):
    """An uninterrupted run: its output, and the rename/link calls it made, in order."""
    if shutil.which("strace") is None:
        pytest.skip("needs strace")
    tmp = tmp_path_factory.mktemp("ref")
    spec = write_spec(tmp / "ref.yaml", source_dataset["root"], tmp / "ref", STAGES)
    done = _augment("run", str(spec), "--local", "--quiet",
                    strace=["strace", "-f", "-qq", "-e", "trace=rename,link", "-o", str(tmp / "calls.log")])
    assert done.returncode == 0, done.stderr
    calls: dict[str, list[str]] = {}
    for line in (tmp / "calls.log").read_text().splitlines():
        calls.setdefault(line.split(None, 1)[1].split("(", 1)[0], []).append(line)
    output = _read_output(tmp / "ref")
    assert len(output) == 2 * len(source_dataset["episodes"])
    return output, calls


@pytest.mark.parametrize("syscall,path", KILL_POINTS)
def test_killed_at_a_system_call_the_rerun_gives_the_uninterrupted_output(source_dataset, tmp_path, uninterrupted,
                                                                          syscall, path):
    reference, calls = uninterrupted
    nth = 1 + next(i for i, line in enumerate(calls[syscall]) if path in line)
    spec = write_spec(tmp_path / "s.yaml", source_dataset["root"], tmp_path / "out", STAGES)
    killed = _augment("run", str(spec), "--local", "--quiet", strace=[
        "strace", "-f", "-qq", "-o", str(tmp_path / "calls.log"), "-e", f"trace={syscall}",
        "-e", f"inject={syscall}:signal=KILL:when={nth}"])
    assert killed.returncode in (-9, 137), (killed.returncode, killed.stderr[-2000:])
    last = [line for line in (tmp_path / "calls.log").read_text().splitlines() if f"{syscall}(" in line][-1]
    assert path in last, last  # killed where we meant to
    assert not is_committed(tmp_path / "out")
    rerun = _augment("run", str(spec), "--local", "--quiet")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    got = _read_output(tmp_path / "out")
    assert sorted(got) == sorted(reference)
    for uid, (frames, action, state) in reference.items():
        for camera, pixels in frames.items():
            np.testing.assert_array_equal(got[uid][0][camera], pixels)
        np.testing.assert_array_equal(got[uid][1], action)
        np.testing.assert_array_equal(got[uid][2], state)
