"""Looking at processes from the outside, after the fact: by pid and pidfd, never through
fastspawn's own tree code."""

from __future__ import annotations

import asyncio
import os
import random
import re
import select
import signal
import time
from collections.abc import Iterable
from typing import Optional


def stat_of(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, pgrp, session) from /proc, or None if the pid is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[3])


def descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        stat = stat_of(pid)
        if stat is None:
            return False
        pid = stat[1]
        if pid == ancestor:
            return True
    return False


class Pinned:
    """Processes held by pidfd: they can be checked and cleaned up whatever their pid
    becomes."""

    def __init__(self) -> None:
        self.fds: dict[int, int] = {}

    def pin(self, pids: Iterable[int]) -> None:
        for pid in pids:
            self.fds[pid] = os.pidfd_open(pid)

    def exited(self, pid: int) -> bool:
        readable, _, _ = select.select([self.fds[pid]], [], [], 0)
        return bool(readable)

    def wait_exited(self, pids: Iterable[int], timeout: float = 5.0) -> list[int]:
        """The pids among ``pids`` still running after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        left = list(pids)
        while left and time.monotonic() < deadline:
            left = [pid for pid in left if not self.exited(pid)]
            time.sleep(0.01)
        return left

    def close(self) -> None:
        """Kills whatever is still running (a test's leftovers) and lets go."""
        for fd in self.fds.values():
            try:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.close(fd)
        self.fds.clear()


def token() -> str:
    """A `sleep` argument no other process has: ``sleep 1000.<digits>``."""
    return f"1000.{random.randrange(10**9):09d}"


def pids_with_arg(arg: str) -> list[int]:
    """Live (not zombie) processes with ``arg`` among their arguments."""
    found = []
    needle = arg.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        stat = stat_of(int(entry))
        if needle in args and stat is not None and stat[0] not in "ZX":
            found.append(int(entry))
    return found


def argv0(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[0]
    except OSError:
        return b""


def wait_exec(pids: Iterable[int], program: bytes = b"sleep", timeout: float = 5.0) -> None:
    """Until each of ``pids`` runs ``program`` (so whatever ran before its exec, a
    ``setsid`` say, is done)."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while argv0(pid) != program:
            assert time.monotonic() < deadline, f"{pid} never ran {program!r}"
            time.sleep(0.001)


def wait_none_with_arg(arg: str, timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := pids_with_arg(arg)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return left


def open_fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


def zombie_children() -> list[int]:
    """Pids of this process's children that are zombies."""
    me = str(os.getpid())
    zombies = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] == "Z" and fields[1] == me:
            zombies.append(int(entry))
    return zombies


def cgroup2_mount() -> Optional[str]:
    """Where the cgroup v2 hierarchy is mounted (the unified one of a hybrid setup too)."""
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        left, _, right = line.partition(" - ")
        if right.split(" ")[0] == "cgroup2":
            # Octal escapes for space, tab, newline and backslash.
            return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), left.split(" ")[4])
    return None


async def wait_orphaned(pid: int, root: int) -> None:
    """Until ``pid`` no longer descends from ``root`` (its parent, a subshell, exited)."""
    for _ in range(500):
        if not descends_from(pid, root):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{pid} still descends from {root}")
