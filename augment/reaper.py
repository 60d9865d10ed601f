"""Stops an embedded Ray's processes when the driver that started them dies without shutting them
down (kill -9, out of memory). Ray's raylet follows its driver, but its agents and workers lingered
for most of a minute, and a write task went on writing a part for a job nobody waited on.

Run by augment/runner.py as `python -m augment.reaper DRIVER_PID`, in its own session so that a
signal to the driver's process group does not take it too. It notes the driver's descendants
every half second (Linux /proc, stdlib only: it must start fast and import nothing heavy); once the
driver is gone it sends SIGTERM, then SIGKILL, to every noted process that still runs.
"""

from __future__ import annotations

import os
import signal
import sys
import time

POLL_S = 0.5
GRACE_S = 3.0


def processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time in clock ticks) for every process now running (zombies left out)."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
        if fields[0] != "Z":  # a zombie has exited already; its parent has yet to collect it
            out[int(name)] = (int(fields[1]), int(fields[19]))
    return out


def descendants(roots: set[int], table: dict[int, tuple[int, int]]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, todo = set(), list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def watch(driver: int) -> None:
    me = os.getpid()
    table = processes()
    if driver not in table:
        return
    driver_start = table[driver][1]
    try:
        group = os.getpgid(driver)
    except ProcessLookupError:
        return
    noted: dict[int, int] = {}  # pid -> start time: a pid reused by another process is not ours
    while driver in table and table[driver][1] == driver_start:
        # Orphans of a dead raylet keep their own children: follow from what was noted, too.
        for pid in descendants({driver, *noted}, table) - {me}:
            noted.setdefault(pid, table[pid][1])
        time.sleep(POLL_S)
        table = processes()
    survivors = _alive(noted, table)
    for pid in descendants(set(survivors), table) - {me}:  # children born since the last look
        survivors.setdefault(pid, table[pid][1])
    # An agent the raylet started after the last look was orphaned when the raylet died with the driver
    # (a DashboardAgent outlived a killed driver by a minute): an orphaned Ray process born after the
    # driver in its process group is the job's too (with kernel fate-sharing Ray starts its processes in
    # the driver's group). Orphaned only: another job's in the same group still has its raylet as parent.
    for pid, (parent, start) in table.items():
        orphaned = parent == 1 or parent not in table or parent in noted
        if (pid != me and pid not in survivors and start >= driver_start and orphaned and _in_group(pid, group)
                and _is_ray(pid)):
            survivors[pid] = start
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in survivors:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + GRACE_S
        while survivors and time.monotonic() < deadline:
            time.sleep(0.1)
            survivors = _alive(survivors, processes())
        if not survivors:
            return


def _in_group(pid: int, group: int) -> bool:
    try:
        return os.getpgid(pid) == group
    except ProcessLookupError:
        return False


def command_line(pid: int) -> list[bytes]:
    """The process's arguments as it started (or renamed itself); [] once it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def _is_ray(pid: int) -> bool:
    """Ray's workers and agents (renamed `ray::...`), its binaries and Python helpers (under ray/)."""
    cmdline = b"\0".join(command_line(pid))
    return cmdline.startswith(b"ray::") or b"/ray/" in cmdline


def _alive(noted: dict[int, int], table: dict[int, tuple[int, int]]) -> dict[int, int]:
    return {pid: start for pid, start in noted.items() if pid in table and table[pid][1] == start}


if __name__ == "__main__":
    watch(int(sys.argv[1]))
