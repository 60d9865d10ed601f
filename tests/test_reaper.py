"""augment/reaper.py without Ray: a driver that dies leaves no orphaned Ray process of its own behind,
and the reaper touches nothing that is not its job's."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the reaper reads Linux's /proc")


def _pids_named(name: bytes) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read().startswith(name):
                        out.append(int(entry))
            except OSError:
                pass
    return out


def _gone(name: bytes, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _pids_named(name) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _pids_named(name)


def test_an_orphan_born_after_the_last_look_is_reaped_and_other_groups_are_left_alone(tmp_path):
    """The raylet starts an agent and dies with the driver before the reaper's next look: the agent,
    now a child of init, is still the job's (same process group, born after the driver)."""
    tag = f"{os.getpid()}x{time.monotonic_ns()}"
    agent, bystander = f"ray::FakeAgent{tag}".encode(), f"ray::OtherJob{tag}".encode()
    # Another job's orphaned Ray process, in a process group of its own: never ours to kill.
    other = subprocess.Popen(["bash", "-c", f"(exec -a {bystander.decode()} sleep 30 &)"], start_new_session=True)
    other.wait()
    driver = subprocess.Popen(
        ["bash", "-c", f"sleep 1.2; (exec -a {agent.decode()} sleep 30 &); sleep 0.05; kill -9 $$"],
        start_new_session=True)
    reaper = subprocess.Popen([sys.executable, "-m", "augment.reaper", str(driver.pid)], start_new_session=True)
    try:
        driver.wait(timeout=10)
        reaper.wait(timeout=15)
        assert _gone(agent, 5), "the orphaned agent of the killed driver outlived the reaper"
        assert _pids_named(bystander), "the reaper killed another job's process"
    finally:
        for pid in _pids_named(agent) + _pids_named(bystander):
            os.kill(pid, 9)
