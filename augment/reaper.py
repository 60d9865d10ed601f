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


def _alive(noted: dict[int, int], table: dict[int, tuple[int, int]]) -> dict[int, int]:
    return {pid: start for pid, start in noted.items() if pid in table and table[pid][1] == start}


if __name__ == "__main__":
    watch(int(sys.argv[1]))
