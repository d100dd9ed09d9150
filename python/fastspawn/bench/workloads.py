"""The workloads: what each measures, how it checks its result, and the table of them all.

Each workload is a function ``func(impl, **params) -> Metrics`` that runs on one implementation in the
calling process (``impl`` names an event loop from :mod:`.loops`, or ``"floor"``: the same work with
``os.posix_spawn``, ``os.waitpid`` and blocking reads, roughly what the kernel and the child cost).
Every workload checks its result (byte counts, line counts, exit codes) and raises
:class:`~.loops.CheckError` when it is wrong, so a fast wrong answer never scores. The functions are
public so that the pytest-benchmark suite in ``benches/`` measures exactly the same code.

The floor is a reference point rather than a strict bound: it reads through a default-sized pipe, so
an implementation with a larger pipe can beat it on the data workloads (5, 6).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import mmap
import os
import resource
import shutil
import statistics
import string
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence, Union

from .exec_hold import held_exec
from .loops import FLOOR, TRUE, check, check_exit, run_on

__all__ = [
    "ECHO",
    "MIB",
    "WORKLOADS",
    "Metric",
    "Metrics",
    "Workload",
    "communicate_big",
    "concurrent_spawn",
    "cpu_per_spawn",
    "echo_communicate",
    "holding_memory",
    "loop_stall",
    "read_chunks",
    "read_lines",
    "select_workloads",
    "slow_reader",
    "spawn_wait",
    "spawn_wait_holding",
]

Metrics = dict[str, float]

MIB = 1024 * 1024
PAGE = resource.getpagesize()
ECHO = "/bin/echo"
PIPE = subprocess.PIPE


def _which(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found on PATH")
    return path


def _maxrss() -> int:
    """This process's peak resident set size so far, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    """User + system CPU time of this process, all threads included (``RUSAGE_CHILDREN``:
    of its children reaped so far)."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


# --- the floor: posix_spawn, waitpid and blocking reads ----------------------------------------------


def _floor_spawn(argv: Sequence[str], stdout_fd: Optional[int] = None) -> int:
    actions = [] if stdout_fd is None else [(os.POSIX_SPAWN_DUP2, stdout_fd, 1)]
    return os.posix_spawn(argv[0], list(argv), os.environ, file_actions=actions)


def _floor_spawn_reader(argv: Sequence[str]) -> tuple[int, int]:
    """Spawns ``argv`` with its stdout on a new pipe; returns (pid, read end)."""
    r, w = os.pipe()  # both close-on-exec; the child's dup2'd copy is not
    try:
        pid = _floor_spawn(argv, w)
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    return pid, r


def _floor_reap(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


# --- workloads ---------------------------------------------------------------------------------------


def spawn_wait(impl: str, n: int) -> Metrics:
    """Workload 1: wall-clock microseconds per spawn of ``/bin/true`` + ``await proc.wait()``, one after
    another (lower is better). The whole round trip of a short child: spawn, exit notification, reaping.
    Two metrics: the mean over the ``n`` spawns, and the median of the ``n`` single round trips, which
    a burst of other work on a shared machine moves less."""
    clock = time.perf_counter
    laps: list[float] = []
    if impl == FLOOR:
        for _ in range(n):
            lap = clock()
            check_exit(_floor_reap(_floor_spawn([TRUE])), TRUE)
            laps.append(clock() - lap)
    else:

        async def main() -> None:
            for _ in range(n):
                lap = clock()
                proc = await asyncio.create_subprocess_exec(TRUE)
                check_exit(await proc.wait(), TRUE)
                laps.append(clock() - lap)

        run_on(impl, main)
    return {"us_per_spawn": sum(laps) / n * 1e6, "median_us": statistics.median(laps) * 1e6}


def echo_communicate(impl: str, n: int) -> Metrics:
    """Workload 2: wall-clock microseconds per ``/bin/echo hello`` with ``stdout=PIPE`` and
    ``communicate()``, one after another (lower is better): a spawn plus one pipe set up, read and
    closed. Checks the output is exactly ``b"hello\\n"``."""
    argv = [ECHO, "hello"]
    if impl == FLOOR:
        start = time.perf_counter()
        for _ in range(n):
            pid, fd = _floor_spawn_reader(argv)
            with os.fdopen(fd, "rb") as f:
                out = f.read()
            check_exit(_floor_reap(pid), ECHO)
            check(out == b"hello\n", f"echo wrote {out!r}")
        elapsed = time.perf_counter() - start
    else:

        async def main() -> float:
            start = time.perf_counter()
            for _ in range(n):
                proc = await asyncio.create_subprocess_exec(*argv, stdout=PIPE)
                out, _ = await proc.communicate()
                check_exit(proc.returncode, ECHO)
                check(out == b"hello\n", f"echo wrote {out!r}")
            return time.perf_counter() - start

        elapsed = run_on(impl, main)
    return {"us_per_spawn": elapsed / n * 1e6}


def _concurrent_true(impl: str, total: int, width: int) -> tuple[float, float]:
    """Runs ``total`` ``/bin/true`` children, at most ``width`` at a time; returns (wall seconds, CPU
    seconds of this process). The floor keeps ``width`` children running and reaps the oldest first."""
    if impl == FLOOR:
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        running: collections.deque[int] = collections.deque()
        for _ in range(total):
            if len(running) >= width:
                check_exit(_floor_reap(running.popleft()), TRUE)
            running.append(_floor_spawn([TRUE]))
        while running:
            check_exit(_floor_reap(running.popleft()), TRUE)
        return time.perf_counter() - start, _cpu_seconds() - cpu_start

    async def main() -> tuple[float, float]:
        sem = asyncio.Semaphore(width)

        async def one() -> int:
            async with sem:
                proc = await asyncio.create_subprocess_exec(TRUE)
                return await proc.wait()

        start, cpu_start = time.perf_counter(), _cpu_seconds()
        codes = await asyncio.gather(*(one() for _ in range(total)))
        wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
        bad = [code for code in codes if code != 0]
        check(not bad, f"{len(bad)} of {total} children exited non-zero, e.g. {bad[:1]}")
        return wall, cpu

    return run_on(impl, main)


def concurrent_spawn(impl: str, total: int, width: int) -> Metrics:
    """Workload 3: processes per second when ``total`` ``/bin/true`` run concurrently under an
    ``asyncio.Semaphore(width)`` (higher is better): spawn throughput with many children in flight."""
    wall, _ = _concurrent_true(impl, total, width)
    return {"procs_per_s": total / wall}


def cpu_per_spawn(impl: str, total: int, width: int) -> Metrics:
    """Workload 4: the parent's CPU time per spawn (user + system, all its threads, from
    ``getrusage(RUSAGE_SELF)``) for ``total`` concurrent ``/bin/true`` under ``Semaphore(width)``, in
    microseconds (lower is better): what spawning costs the application, not the machine."""
    _, cpu = _concurrent_true(impl, total, width)
    return {"cpu_us_per_spawn": cpu / total * 1e6}


def read_chunks(impl: str, nbytes: int, chunk: int = 65536) -> Metrics:
    """Workload 5: MB/s (10^6 bytes) reading ``nbytes`` from the child's stdout with
    ``await proc.stdout.read(chunk)`` until EOF (higher is better); the child is
    ``head -c nbytes /dev/zero``. The floor reads with ``os.readv`` into a reused 1 MiB buffer.

    A second metric, ``child_busy``, is the child's CPU time (user + system) divided by the
    time from the spawn to EOF (the child's exit; reaping it may come later): the share of
    that time in which the producer was working rather than waiting for the reader to drain
    the pipe. Near 1.0 the reader never held the child back, and the rate is what the child
    managed to write."""
    argv = [_which("head"), "-c", str(nbytes), "/dev/zero"]
    child_cpu_before = _cpu_seconds(resource.RUSAGE_CHILDREN)
    if impl == FLOOR:
        buf = bytearray(MIB)
        start = time.perf_counter()
        pid, fd = _floor_spawn_reader(argv)
        total = 0
        try:
            while n := os.readv(fd, [buf]):
                total += n
        finally:
            os.close(fd)
        to_eof = time.perf_counter() - start
        code: Optional[int] = _floor_reap(pid)
        elapsed = time.perf_counter() - start
    else:

        async def main() -> tuple[float, float, int, Optional[int]]:
            start = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(*argv, stdout=PIPE)
            assert proc.stdout is not None
            total = 0
            while data := await proc.stdout.read(chunk):
                total += len(data)
            to_eof = time.perf_counter() - start
            code = await proc.wait()
            return time.perf_counter() - start, to_eof, total, code

        elapsed, to_eof, total, code = run_on(impl, main)
    check_exit(code, "head")
    check(total == nbytes, f"read {total} bytes, expected {nbytes}")
    child_cpu = _cpu_seconds(resource.RUSAGE_CHILDREN) - child_cpu_before
    return {"mb_per_s": nbytes / elapsed / 1e6, "child_busy": child_cpu / to_eof}


def communicate_big(impl: str, nbytes: int) -> Metrics:
    """Workload 6: ``communicate()`` collecting ``nbytes`` of stdout (``head -c nbytes /dev/zero``).
    Two metrics: MB/s (higher is better) and the growth of the parent's peak RSS during the run divided
    by ``nbytes`` (lower is better; 1.0 means one copy of the output, only meaningful in a fresh
    process). The floor appends ``os.readv`` chunks from a reused 1 MiB buffer to one bytearray."""
    argv = [_which("head"), "-c", str(nbytes), "/dev/zero"]
    if impl == FLOOR:
        buf = bytearray(MIB)
        view = memoryview(buf)
        rss_before = _maxrss()
        start = time.perf_counter()
        pid, fd = _floor_spawn_reader(argv)
        out = bytearray()
        try:
            while n := os.readv(fd, [buf]):
                out += view[:n]
        finally:
            os.close(fd)
        code: Optional[int] = _floor_reap(pid)
        elapsed = time.perf_counter() - start
        size = len(out)
        del out
    else:

        async def main() -> tuple[float, int, int, Optional[int]]:
            rss_before = _maxrss()
            start = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(*argv, stdout=PIPE)
            out, _ = await proc.communicate()
            return time.perf_counter() - start, rss_before, len(out), proc.returncode

        elapsed, rss_before, size, code = run_on(impl, main)
    growth = _maxrss() - rss_before
    check_exit(code, "head")
    check(size == nbytes, f"communicate() returned {size} bytes, expected {nbytes}")
    return {"mb_per_s": nbytes / elapsed / 1e6, "rss_growth_ratio": growth / nbytes}


def read_lines(impl: str, n: int) -> Metrics:
    """Workload 7: lines per second reading ``seq n`` with ``async for line in proc.stdout`` (higher is
    better): per-line overhead of the stream machinery. Checks the count and that the last line is
    ``n``. The floor iterates a buffered ``os.fdopen(fd, "rb")``."""
    argv = [_which("seq"), str(n)]
    if impl == FLOOR:
        start = time.perf_counter()
        pid, fd = _floor_spawn_reader(argv)
        count, last = 0, b""
        with os.fdopen(fd, "rb") as f:
            for line in f:
                count += 1
                last = line
        code: Optional[int] = _floor_reap(pid)
        elapsed = time.perf_counter() - start
    else:

        async def main() -> tuple[float, int, bytes, Optional[int]]:
            start = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(*argv, stdout=PIPE)
            assert proc.stdout is not None
            count, last = 0, b""
            async for line in proc.stdout:
                count += 1
                last = line
            code = await proc.wait()
            return time.perf_counter() - start, count, last, code

        elapsed, count, last, code = run_on(impl, main)
    check_exit(code, "seq")
    check(count == n, f"read {count} lines, expected {n}")
    check(last == f"{n}\n".encode(), f"last line is {last!r}, expected {n}")
    return {"lines_per_s": n / elapsed}


def slow_reader(impl: str, nbytes: int, chunk: int = 65536, delay: float = 0.001) -> Metrics:
    """Workload 8: the growth of the parent's peak RSS, in MiB, while a child writes ``nbytes`` as fast
    as it can and the parent reads ``chunk`` bytes per ``delay`` seconds (``read(chunk)`` then
    ``asyncio.sleep(delay)``, ``limit=chunk``), lower is better: does a slow consumer make the parent
    buffer everything the child wrote? Only meaningful in a fresh process. The floor uses blocking
    ``os.read`` and ``time.sleep``."""
    argv = [_which("head"), "-c", str(nbytes), "/dev/zero"]
    if impl == FLOOR:
        rss_before = _maxrss()
        pid, fd = _floor_spawn_reader(argv)
        total = 0
        try:
            while data := os.read(fd, chunk):
                total += len(data)
                time.sleep(delay)
        finally:
            os.close(fd)
        code: Optional[int] = _floor_reap(pid)
    else:

        async def main() -> tuple[int, int, Optional[int]]:
            rss_before = _maxrss()
            proc = await asyncio.create_subprocess_exec(*argv, stdout=PIPE, limit=chunk)
            assert proc.stdout is not None
            total = 0
            while data := await proc.stdout.read(chunk):
                total += len(data)
                await asyncio.sleep(delay)
            return rss_before, total, await proc.wait()

        rss_before, total, code = run_on(impl, main)
    growth = _maxrss() - rss_before
    check_exit(code, "head")
    check(total == nbytes, f"read {total} bytes, expected {nbytes}")
    return {"rss_growth_mib": growth / MIB}


@contextlib.contextmanager
def holding_memory(nbytes: int) -> Iterator[Union[mmap.mmap, bytearray]]:
    """Holds ``nbytes`` of private anonymous memory with every page written, so that all of it is
    resident and in the page tables (what makes ``fork()`` slow), and frees it on exit. ``MAP_POPULATE``
    (Python 3.10+) faults the pages in with one system call, much faster than touching them one by
    one on a VM; every page is written once more either way."""
    buf: Union[mmap.mmap, bytearray]
    populate = getattr(mmap, "MAP_POPULATE", 0)
    if nbytes and populate:
        buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate)
    else:
        buf = bytearray(nbytes)
    try:
        buf[::PAGE] = b"\x01" * len(range(0, nbytes, PAGE))
        yield buf
    finally:
        if isinstance(buf, mmap.mmap):
            buf.close()


def spawn_wait_holding(impl: str, n: int, held_mib: int) -> Metrics:
    """Workload 9: workload 1 (µs per sequential ``/bin/true`` + ``wait()``, lower is better) while the
    parent holds ``held_mib`` MiB of touched memory: spawning by ``fork()`` copies the parent's page
    tables, so its cost grows with the parent's size; ``vfork``/``posix_spawn`` do not."""
    with holding_memory(held_mib * MIB):
        return spawn_wait(impl, n)


def loop_stall(impl: str, n: int, hold_ms: int) -> Metrics:
    """Workload 10: the event loop's worst stall while children start (ms, lower is better). A ticker
    task sleeps 1 ms at a time and records how late it wakes, while another task spawns ``n`` children
    one after another (a copy of ``/bin/true`` + ``wait()``). With ``hold_ms`` > 0 every exec of that
    copy is held that long (:mod:`.exec_hold`: what an exec-vetting security agent or a cold network
    filesystem does); a spawner that waits for the exec on the loop's thread freezes every task for
    as long. The floor runs its ticker in a thread while the main thread spawns and waits."""
    clock = time.perf_counter
    tick = 0.001
    hold = hold_ms / 1000
    context = held_exec(hold) if hold_ms else contextlib.nullcontext(TRUE)
    with context as program:
        laps: list[float] = []
        worst = [0.0]
        if impl == FLOOR:
            done = threading.Event()

            def ticker() -> None:
                while not done.is_set():
                    start = clock()
                    time.sleep(tick)
                    worst[0] = max(worst[0], clock() - start - tick)

            thread = threading.Thread(target=ticker)
            thread.start()
            try:
                for _ in range(n):
                    lap = clock()
                    check_exit(_floor_reap(_floor_spawn([program])), program)
                    laps.append(clock() - lap)
            finally:
                done.set()
                thread.join()
        else:

            async def main() -> None:
                stop = asyncio.Event()

                async def ticker() -> None:
                    while not stop.is_set():
                        start = clock()
                        await asyncio.sleep(tick)
                        worst[0] = max(worst[0], clock() - start - tick)

                ticking = asyncio.ensure_future(ticker())
                await asyncio.sleep(tick)  # the ticker is running before the first spawn
                try:
                    for _ in range(n):
                        lap = clock()
                        proc = await asyncio.create_subprocess_exec(program)
                        check_exit(await proc.wait(), program)
                        laps.append(clock() - lap)
                finally:
                    stop.set()
                    await ticking

            run_on(impl, main)
    if hold_ms:
        # Every spawn really waited for its exec to be allowed.
        check(min(laps) >= hold * 0.9, f"a spawn took {min(laps) * 1e3:.1f} ms, less than the {hold_ms} ms hold")
    return {"max_stall_ms": worst[0] * 1e3, "us_per_spawn": sum(laps) / n * 1e6}


# --- registry ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One number a workload reports."""

    key: str
    unit: str
    higher_is_better: bool
    #: What is measured, in words ("time per spawn"): the summary's and the chart's row label.
    name: str
    #: The unit after a value in the summary ("us", "MB/s").
    short: str
    #: How "better" and "worse" read for this metric: a shorter time is "faster", less memory "less memory".
    words: tuple[str, str] = ("faster", "slower")
    #: Whether the summary and the chart show it (False: a diagnostic, in the per-workload tables only).
    summary: bool = True

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"


@dataclass(frozen=True)
class Workload:
    id: str
    title: str
    func: Callable[..., Metrics]
    metrics: tuple[Metric, ...]
    params: dict[str, Any]
    # None: left out of --quick
    quick_params: Optional[dict[str, Any]]
    # Measured rounds when --rounds is not given (--quick: 2).
    rounds: int = 5
    #: What the workload does in plain words, ``{param}`` filled in by :meth:`describe`.
    name: str = ""

    @property
    def label(self) -> str:
        """``"1 spawn /bin/true + wait(), sequential"``, also the pytest-benchmark group name."""
        return f"{self.id} {self.title}"

    def params_for(self, quick: bool) -> Optional[dict[str, Any]]:
        return self.quick_params if quick else self.params

    def describe(self, params: dict[str, Any]) -> str:
        """:attr:`name` with the sizes of a run: ``"read 512 MiB from stdout, 64 KiB at a time"``."""
        return (self.name or self.title).format(**{k: _size(k, v) for k, v in params.items()})


def _size(key: str, value: Any) -> str:
    if key == "nbytes" and isinstance(value, int):
        return f"{value // MIB} MiB" if value % MIB == 0 else f"{value:,} bytes"
    if key == "held_mib" and isinstance(value, int):
        return f"{value // 1024} GiB" if value % 1024 == 0 else f"{value} MiB"
    return f"{value:,}" if isinstance(value, int) else str(value)


US_PER_SPAWN = Metric("us_per_spawn", "us per spawn", False, "time per spawn", "us")
MEDIAN_US = Metric("median_us", "median us of one spawn", False, "median time of one spawn", "us", summary=False)
MB_PER_S = Metric("mb_per_s", "MB/s", True, "throughput", "MB/s")
CHILD_BUSY = Metric("child_busy", "child busy (CPU / wall time)", True, "child busy", "", summary=False)
_LESS_MEMORY = ("less memory", "more memory")


def _spawn_wait_holding(wid: str, held_mib: int, quick: bool) -> Workload:
    return Workload(
        wid,
        f"spawn /bin/true + wait(), parent holding {held_mib // 1024} GiB of touched memory",
        spawn_wait_holding,
        (US_PER_SPAWN, MEDIAN_US),
        {"n": 300, "held_mib": held_mib},
        {"n": 20, "held_mib": held_mib} if quick else None,
        name="spawn + wait, parent holding {held_mib}",
    )


STALL_MS = Metric(
    "max_stall_ms", "worst loop stall, ms", False, "the loop's worst stall while spawning", "ms", ("shorter", "longer")
)


def _loop_stall(wid: str, hold_ms: int) -> Workload:
    held = f", each exec held {hold_ms} ms" if hold_ms else ""
    return Workload(
        wid,
        f"a 1 ms ticker's worst lateness during sequential spawns{held}",
        loop_stall,
        (STALL_MS, Metric("us_per_spawn", "us per spawn", False, "time per spawn", "us", summary=False)),
        {"n": 100 if not hold_ms else 20, "hold_ms": hold_ms},
        {"n": 30 if not hold_ms else 5, "hold_ms": hold_ms},
        name="loop stall while spawning" + (" (exec held {hold_ms} ms)" if hold_ms else ""),
    )


WORKLOADS: dict[str, Workload] = {
    w.id: w
    for w in (
        # Sequential spawns sit within ~1.2x of the floor, inside this kind of machine's drift
        # between rounds: more, shorter rounds give the paired ratios more pairs.
        Workload(
            "1",
            "spawn /bin/true + wait(), sequential",
            spawn_wait,
            (US_PER_SPAWN, MEDIAN_US),
            {"n": 100},
            {"n": 30},
            rounds=15,
            name="spawn /bin/true + wait, one at a time",
        ),
        Workload(
            "2",
            "/bin/echo hello, stdout=PIPE, communicate()",
            echo_communicate,
            (US_PER_SPAWN,),
            {"n": 100},
            {"n": 30},
            rounds=15,
            name="echo hello through a pipe + communicate()",
        ),
        Workload(
            "3",
            "concurrent /bin/true under a Semaphore",
            concurrent_spawn,
            (Metric("procs_per_s", "processes/s", True, "spawns per second", "procs/s"),),
            {"total": 500, "width": 64},
            {"total": 100, "width": 64},
            name="{total} concurrent spawns, {width} at a time",
        ),
        Workload(
            "4",
            "parent CPU time per spawn, concurrent /bin/true",
            cpu_per_spawn,
            (
                Metric(
                    "cpu_us_per_spawn",
                    "CPU us per spawn",
                    False,
                    "parent's CPU time per spawn",
                    "CPU us",
                    ("less CPU", "more CPU"),
                ),
            ),
            {"total": 300, "width": 64},
            {"total": 100, "width": 64},
            name="parent's CPU per spawn, {total} concurrent",
        ),
        Workload(
            "5",
            "stdout.read(65536) until EOF from head -c N /dev/zero",
            read_chunks,
            (MB_PER_S, CHILD_BUSY),
            {"nbytes": 512 * MIB},
            {"nbytes": 32 * MIB},
            name="read {nbytes} from stdout in 64 KiB chunks",
        ),
        Workload(
            "6",
            "communicate() of head -c N /dev/zero",
            communicate_big,
            (
                MB_PER_S,
                Metric(
                    "rss_growth_ratio",
                    "peak RSS growth / output size",
                    False,
                    "peak memory",
                    "x output",
                    _LESS_MEMORY,
                ),
            ),
            {"nbytes": 256 * MIB},
            {"nbytes": 32 * MIB},
            name="communicate() collecting {nbytes}",
        ),
        Workload(
            "7",
            "async for line in stdout (seq N)",
            read_lines,
            (Metric("lines_per_s", "lines/s", True, "lines per second", "lines/s"),),
            {"n": 1_000_000},
            {"n": 100_000},
            name="async for line over {n} lines",
        ),
        Workload(
            "8",
            "slow reader: read(65536) + sleep(1 ms), limit=65536",
            slow_reader,
            (Metric("rss_growth_mib", "peak RSS growth, MiB", False, "peak memory growth", "MiB", _LESS_MEMORY),),
            {"nbytes": 256 * MIB},
            {"nbytes": 8 * MIB},
            name="slow reader of {nbytes}: parent's memory",
        ),
        _spawn_wait_holding("9a", 0, quick=True),
        _spawn_wait_holding("9b", 1024, quick=True),
        _spawn_wait_holding("9c", 4096, quick=False),
        _loop_stall("10a", 0),
        _loop_stall("10b", 50),
    )
}


def select_workloads(spec: Optional[str]) -> list[Workload]:
    """``"1,2,9"`` -> workloads 1, 2, 9a, 9b and 9c; ``"9b"`` -> 9b only; ``None`` -> all."""
    if not spec:
        return list(WORKLOADS.values())
    chosen: list[Workload] = []
    for token in (t.strip() for t in spec.split(",") if t.strip()):
        matches = [w for w in WORKLOADS.values() if token in (w.id, w.id.rstrip(string.ascii_lowercase))]
        if not matches:
            raise SystemExit(f"unknown workload {token!r}; known: {', '.join(WORKLOADS)}")
        chosen += [w for w in matches if w not in chosen]
    return chosen
