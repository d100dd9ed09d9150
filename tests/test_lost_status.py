"""A child whose exit status someone else collected.

With ``SIGCHLD`` ignored the kernel reaps children itself, and a ``waitpid(-1)`` in
another thread takes any child's status. The program still ran: the spawn must succeed,
and the exit is reported as asyncio reports it, returncode 255 and a warning on the
``asyncio`` logger. The pidfd is the child's identity: a status taken by someone else is
never replaced by the status of a later process that got the same pid, and no signal
ever goes to a pid that is no longer ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, Optional

import pytest

import fastspawn

# asyncio's warning for a status it cannot have. 3.12+ watch children with pidfds where
# they work (PidfdChildWatcher), and word it differently from the thread-per-child
# watcher that 3.11, and later versions without pidfds, use (asyncio/unix_events.py).
PIDFD_WARNING = "child process pid %d exit status already read:  will report returncode 255"
THREAD_WARNING = "Unknown child process pid %d, will report returncode 255"


def expected_warning(pidfd: bool) -> str:
    return PIDFD_WARNING if sys.version_info >= (3, 12) and pidfd else THREAD_WARNING


class Warnings(logging.Handler):
    """The asyncio logger's warnings about a lost status while installed (not, say, its
    debug mode's slow-callback warnings)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "returncode 255" in str(record.msg):
            self.records.append(record)


@contextlib.contextmanager
def asyncio_warnings() -> Iterator[Warnings]:
    handler = Warnings()
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@contextlib.contextmanager
def sigchld_ignored() -> Iterator[None]:
    old = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGCHLD, old)


async def spawn_many(n: int, *argv: str, **kwds: Any) -> list[int]:
    codes = []
    for _ in range(n):
        proc = await asyncio.create_subprocess_exec(*argv, **kwds)
        codes.append(await proc.wait())
    return codes


@pytest.mark.parametrize("options", [{}, {"umask": 0o22}], ids=["posix_spawn", "clone"])
def test_spawns_with_sigchld_ignored_never_fail(fs: Any, options: dict[str, Any]) -> None:
    """Every spawn succeeds and reports 255 with asyncio's warning (the kernel reaped
    the child itself). It used to raise ProcessLookupError about 4 times in 200: the
    child was gone before pidfd_open."""
    n = 300
    with sigchld_ignored(), asyncio_warnings() as caught:
        codes = fs.run(spawn_many(n, "true", **options))
    assert codes == [255] * n
    template = expected_warning(fastspawn.features().pidfd)
    assert [r.msg for r in caught.records] == [template] * n


def test_the_warning_is_asyncios(impl: Any) -> None:
    """Stock asyncio on this Python logs the same words, which the table above names.
    (The child outlives the spawn: 3.14+ asyncio's own pidfd_open after the spawn can
    fail with ProcessLookupError for a child that exits at once.)"""
    with sigchld_ignored(), asyncio_warnings() as caught:
        assert impl.run(spawn_many(3, "sleep", "0.05")) == [255] * 3
    pidfd = fastspawn.features().pidfd if impl.is_fastspawn else True
    assert {r.msg for r in caught.records} == {expected_warning(pidfd)}


@contextlib.contextmanager
def reaping_thread() -> Iterator[list[int]]:
    """A thread that takes every child's status (``waitpid(-1)``), as some libraries
    do; yields the pids it reaped."""
    stop = threading.Event()
    reaped: list[int] = []

    def run() -> None:
        while not stop.is_set():
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if pid:
                reaped.append(pid)
            else:
                time.sleep(0.0005)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield reaped
    finally:
        stop.set()
        thread.join()


def test_a_thread_reaping_every_child_never_fails_a_spawn(fs: Any) -> None:
    """Whoever reaps first: our status (the real returncode) or theirs (255 and the
    warning, once per lost child); never an exception."""
    n = 200
    with asyncio_warnings() as caught, reaping_thread() as reaped:
        codes = fs.run(spawn_many(n, "sh", "-c", "exit 3"))
    assert set(codes) <= {3, 255}
    assert len(caught.records) == codes.count(255)
    assert len(reaped) == codes.count(255), "a status was read by both"


def ns_last_pid_writable() -> bool:
    try:
        with open("/proc/sys/kernel/ns_last_pid", "r+"):
            return True
    except OSError:
        return False


def popen_with_pid(pid: int, argv: list[str]) -> Optional[subprocess.Popen[bytes]]:
    """A new child that gets ``pid`` (``ns_last_pid = pid - 1``), or None when other
    processes on the machine keep taking it."""
    for _ in range(50):
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(pid - 1))
        proc = subprocess.Popen(argv)
        if proc.pid == pid:
            return proc
        proc.kill()
        proc.wait()
    return None


@pytest.mark.skipif(not ns_last_pid_writable(), reason="needs a writable /proc/sys/kernel/ns_last_pid (root)")
@pytest.mark.skipif(
    not fastspawn.features().pidfd, reason="without pidfds the reaper waits by pid: the residual risk, documented"
)
def test_a_reaped_childs_pid_given_to_another_child_is_not_mistaken_for_it(fs: Any) -> None:
    """Child A is reaped by someone else and its pid goes to a new child B: A's wait()
    reports 255, not B's status, and does not spin while B runs (it used to return B's
    7, at 100% CPU until then); B's own status stays B's."""

    async def main() -> tuple[int, int, float, float]:
        a = await asyncio.create_subprocess_exec("sh", "-c", "exit 3")
        # Before the loop hears of the exit: someone else takes A's status...
        assert os.waitpid(a.pid, 0)[0] == a.pid
        # ...and the kernel gives A's pid to a new process.
        b = popen_with_pid(a.pid, ["sh", "-c", "sleep 0.5; exit 7"])
        if b is None:
            pytest.skip("could not get the pid back (other processes took it)")
        cpu, wall = time.process_time(), time.monotonic()
        try:
            code = await asyncio.wait_for(a.wait(), 10)
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        finally:
            b_code = b.wait()
        return code, b_code, cpu, wall

    with asyncio_warnings() as caught:
        code, b_code, cpu, wall = fs.run(main())
    assert (code, b_code) == (255, 7)
    assert cpu < 0.2, f"{cpu:.2f} s of CPU in {wall:.2f} s: the loop spun"
    assert [r.msg for r in caught.records] == [expected_warning(fastspawn.features().pidfd)]
