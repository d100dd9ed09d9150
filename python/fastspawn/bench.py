"""Compares spawning and piping subprocesses under stock asyncio, uvloop, fastspawn and a floor.

    python -m fastspawn.bench [--quick] [--rounds N] [--workloads 1,2,9] [--impls asyncio,fastspawn]
                              [--json FILE] [--plot FILE.png]

Implementations (the three event loops run the very same code, ``asyncio.create_subprocess_exec``
and the stock ``Process``/``StreamReader`` on top; only the loop differs):

* ``asyncio``: a stock asyncio event loop, fastspawn not installed.
* ``uvloop``: uvloop's loop with uvloop's own spawner (only when uvloop is importable).
* ``fastspawn``: a stock selector loop that spawns with fastspawn (``fastspawn.new_event_loop()``).
* ``floor``: the same work with ``os.posix_spawn``, ``os.waitpid`` and blocking reads and no event
  loop: roughly what the kernel and the child cost. A reference point rather than a strict bound: it
  reads through a default-sized pipe, so an implementation with a larger pipe can beat it on the data
  workloads (5, 6).

Every sample is taken in a fresh interpreter (``python -m fastspawn.bench --worker IMPL WORKLOAD``,
which prints one JSON line), implementations take turns in a rotating order, and a first warm-up
round is thrown away. Every workload checks its result (byte counts, line counts, exit codes); a
wrong result is reported as ``FAIL: reason`` rather than as a number.

The workload functions (``spawn_wait``, ``echo_communicate``, ...) are public so that the
pytest-benchmark suite in ``benches/`` measures exactly the same code.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime
import importlib
import importlib.util
import json
import math
import mmap
import os
import platform
import resource
import shutil
import statistics
import string
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Coroutine, Iterator, Optional, Sequence, TypeVar, Union

import fastspawn

__all__ = [
    "IMPLS",
    "WORKLOADS",
    "CheckError",
    "Metric",
    "Metrics",
    "Workload",
    "check_spawner",
    "communicate_big",
    "concurrent_spawn",
    "cpu_per_spawn",
    "echo_communicate",
    "holding_memory",
    "main",
    "new_loop",
    "read_chunks",
    "read_lines",
    "run_on",
    "slow_reader",
    "spawn_wait",
    "spawn_wait_holding",
    "uvloop_available",
]

_T = TypeVar("_T")
Metrics = dict[str, float]

IMPLS = ("asyncio", "uvloop", "fastspawn", "floor")
BASELINE = "asyncio"
FLOOR = "floor"

MIB = 1024 * 1024
PAGE = resource.getpagesize()
TRUE = "/bin/true"
ECHO = "/bin/echo"
PIPE = subprocess.PIPE


class CheckError(AssertionError):
    """A workload produced a wrong result (bytes, lines or an exit code)."""


def _check(ok: bool, reason: str) -> None:
    if not ok:
        raise CheckError(reason)


def _check_exit(code: Optional[int], what: str) -> None:
    _check(code == 0, f"{what} exited with {code}, expected 0")


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


# --- event loops -------------------------------------------------------------------------------------


def uvloop_available() -> bool:
    """Whether uvloop can be imported here."""
    try:
        importlib.import_module("uvloop")
    except ImportError:
        return False
    return True


def new_loop(impl: str) -> asyncio.AbstractEventLoop:
    """A new event loop of one of the event-loop implementations."""
    if impl == "asyncio":
        _check(not fastspawn.is_installed(), "fastspawn.install() is in effect; the asyncio column must be stock")
        return asyncio.SelectorEventLoop()
    if impl == "uvloop":
        loop: asyncio.AbstractEventLoop = importlib.import_module("uvloop").new_event_loop()
        return loop
    if impl == "fastspawn":
        return fastspawn.new_event_loop()
    raise ValueError(f"{impl!r} is not an event-loop implementation")


def run_on(impl: str, main: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Runs ``main()`` to completion on a new loop of ``impl``, then closes the loop."""
    loop = new_loop(impl)
    try:
        return loop.run_until_complete(main())
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


def check_spawner(impl: str) -> None:
    """Spawns ``/bin/true`` once on ``impl``'s loop and checks that the subprocess transport is that
    implementation's own (e.g. that the uvloop column is not secretly measuring fastspawn)."""
    if impl == "floor":
        return

    async def main() -> str:
        proc = await asyncio.create_subprocess_exec(TRUE)
        _check_exit(await proc.wait(), TRUE)
        return type(vars(proc)["_transport"]).__module__

    module = run_on(impl, main)
    _check(module.split(".")[0] == impl, f"{impl} spawned through {module}, not through {impl}")


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
    if impl == "floor":
        for _ in range(n):
            lap = clock()
            _check_exit(_floor_reap(_floor_spawn([TRUE])), TRUE)
            laps.append(clock() - lap)
    else:

        async def main() -> None:
            for _ in range(n):
                lap = clock()
                proc = await asyncio.create_subprocess_exec(TRUE)
                _check_exit(await proc.wait(), TRUE)
                laps.append(clock() - lap)

        run_on(impl, main)
    return {"us_per_spawn": sum(laps) / n * 1e6, "median_us": statistics.median(laps) * 1e6}


def echo_communicate(impl: str, n: int) -> Metrics:
    """Workload 2: wall-clock microseconds per ``/bin/echo hello`` with ``stdout=PIPE`` and
    ``communicate()``, one after another (lower is better): a spawn plus one pipe set up, read and
    closed. Checks the output is exactly ``b"hello\\n"``."""
    argv = [ECHO, "hello"]
    if impl == "floor":
        start = time.perf_counter()
        for _ in range(n):
            pid, fd = _floor_spawn_reader(argv)
            with os.fdopen(fd, "rb") as f:
                out = f.read()
            _check_exit(_floor_reap(pid), ECHO)
            _check(out == b"hello\n", f"echo wrote {out!r}")
        elapsed = time.perf_counter() - start
    else:

        async def main() -> float:
            start = time.perf_counter()
            for _ in range(n):
                proc = await asyncio.create_subprocess_exec(*argv, stdout=PIPE)
                out, _ = await proc.communicate()
                _check_exit(proc.returncode, ECHO)
                _check(out == b"hello\n", f"echo wrote {out!r}")
            return time.perf_counter() - start

        elapsed = run_on(impl, main)
    return {"us_per_spawn": elapsed / n * 1e6}


def _concurrent_true(impl: str, total: int, width: int) -> tuple[float, float]:
    """Runs ``total`` ``/bin/true`` children, at most ``width`` at a time; returns (wall seconds, CPU
    seconds of this process). The floor keeps ``width`` children running and reaps the oldest first."""
    if impl == "floor":
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        running: collections.deque[int] = collections.deque()
        for _ in range(total):
            if len(running) >= width:
                _check_exit(_floor_reap(running.popleft()), TRUE)
            running.append(_floor_spawn([TRUE]))
        while running:
            _check_exit(_floor_reap(running.popleft()), TRUE)
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
        _check(not bad, f"{len(bad)} of {total} children exited non-zero, e.g. {bad[:1]}")
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
    if impl == "floor":
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
    _check_exit(code, "head")
    _check(total == nbytes, f"read {total} bytes, expected {nbytes}")
    child_cpu = _cpu_seconds(resource.RUSAGE_CHILDREN) - child_cpu_before
    return {"mb_per_s": nbytes / elapsed / 1e6, "child_busy": child_cpu / to_eof}


def communicate_big(impl: str, nbytes: int) -> Metrics:
    """Workload 6: ``communicate()`` collecting ``nbytes`` of stdout (``head -c nbytes /dev/zero``).
    Two metrics: MB/s (higher is better) and the growth of the parent's peak RSS during the run divided
    by ``nbytes`` (lower is better; 1.0 means one copy of the output, only meaningful in a fresh
    process). The floor appends ``os.readv`` chunks from a reused 1 MiB buffer to one bytearray."""
    argv = [_which("head"), "-c", str(nbytes), "/dev/zero"]
    if impl == "floor":
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
    _check_exit(code, "head")
    _check(size == nbytes, f"communicate() returned {size} bytes, expected {nbytes}")
    return {"mb_per_s": nbytes / elapsed / 1e6, "rss_growth_ratio": growth / nbytes}


def read_lines(impl: str, n: int) -> Metrics:
    """Workload 7: lines per second reading ``seq n`` with ``async for line in proc.stdout`` (higher is
    better): per-line overhead of the stream machinery. Checks the count and that the last line is
    ``n``. The floor iterates a buffered ``os.fdopen(fd, "rb")``."""
    argv = [_which("seq"), str(n)]
    if impl == "floor":
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
    _check_exit(code, "seq")
    _check(count == n, f"read {count} lines, expected {n}")
    _check(last == f"{n}\n".encode(), f"last line is {last!r}, expected {n}")
    return {"lines_per_s": n / elapsed}


def slow_reader(impl: str, nbytes: int, chunk: int = 65536, delay: float = 0.001) -> Metrics:
    """Workload 8: the growth of the parent's peak RSS, in MiB, while a child writes ``nbytes`` as fast
    as it can and the parent reads ``chunk`` bytes per ``delay`` seconds (``read(chunk)`` then
    ``asyncio.sleep(delay)``, ``limit=chunk``), lower is better: does a slow consumer make the parent
    buffer everything the child wrote? Only meaningful in a fresh process. The floor uses blocking
    ``os.read`` and ``time.sleep``."""
    argv = [_which("head"), "-c", str(nbytes), "/dev/zero"]
    if impl == "floor":
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
    _check_exit(code, "head")
    _check(total == nbytes, f"read {total} bytes, expected {nbytes}")
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


# --- registry ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    key: str
    unit: str
    higher_is_better: bool

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

    @property
    def label(self) -> str:
        """``"1 spawn /bin/true + wait(), sequential"``, also the pytest-benchmark group name."""
        return f"{self.id} {self.title}"

    def params_for(self, quick: bool) -> Optional[dict[str, Any]]:
        return self.quick_params if quick else self.params


US_PER_SPAWN = Metric("us_per_spawn", "us per spawn", False)
MEDIAN_US = Metric("median_us", "median us of one spawn", False)
MB_PER_S = Metric("mb_per_s", "MB/s", True)
CHILD_BUSY = Metric("child_busy", "child busy (CPU / wall time)", True)


def _spawn_wait_holding(wid: str, held_mib: int, quick: bool) -> Workload:
    return Workload(
        wid,
        f"spawn /bin/true + wait(), parent holding {held_mib // 1024} GiB of touched memory",
        spawn_wait_holding,
        (US_PER_SPAWN, MEDIAN_US),
        {"n": 300, "held_mib": held_mib},
        {"n": 20, "held_mib": held_mib} if quick else None,
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
        ),
        Workload(
            "2",
            "/bin/echo hello, stdout=PIPE, communicate()",
            echo_communicate,
            (US_PER_SPAWN,),
            {"n": 100},
            {"n": 30},
            rounds=15,
        ),
        Workload(
            "3",
            "concurrent /bin/true under a Semaphore",
            concurrent_spawn,
            (Metric("procs_per_s", "processes/s", True),),
            {"total": 500, "width": 64},
            {"total": 100, "width": 64},
        ),
        Workload(
            "4",
            "parent CPU time per spawn, concurrent /bin/true",
            cpu_per_spawn,
            (Metric("cpu_us_per_spawn", "CPU us per spawn", False),),
            {"total": 300, "width": 64},
            {"total": 100, "width": 64},
        ),
        Workload(
            "5",
            "stdout.read(65536) until EOF from head -c N /dev/zero",
            read_chunks,
            (MB_PER_S, CHILD_BUSY),
            {"nbytes": 512 * MIB},
            {"nbytes": 32 * MIB},
        ),
        Workload(
            "6",
            "communicate() of head -c N /dev/zero",
            communicate_big,
            (MB_PER_S, Metric("rss_growth_ratio", "peak RSS growth / output size", False)),
            {"nbytes": 256 * MIB},
            {"nbytes": 32 * MIB},
        ),
        Workload(
            "7",
            "async for line in stdout (seq N)",
            read_lines,
            (Metric("lines_per_s", "lines/s", True),),
            {"n": 1_000_000},
            {"n": 100_000},
        ),
        Workload(
            "8",
            "slow reader: read(65536) + sleep(1 ms), limit=65536",
            slow_reader,
            (Metric("rss_growth_mib", "peak RSS growth, MiB", False),),
            {"nbytes": 256 * MIB},
            {"nbytes": 8 * MIB},
        ),
        _spawn_wait_holding("9a", 0, quick=True),
        _spawn_wait_holding("9b", 1024, quick=True),
        _spawn_wait_holding("9c", 4096, quick=False),
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


# --- the worker: one sample in a fresh interpreter ---------------------------------------------------


def run_worker(impl: str, wid: str, params: dict[str, Any]) -> dict[str, Any]:
    """Takes one sample in this process: ``{"metrics": {...}}`` or ``{"fail": reason}``."""
    try:
        check_spawner(impl)
        return {"metrics": WORKLOADS[wid].func(impl, **params)}
    except CheckError as e:
        return {"fail": str(e)}
    except Exception as e:
        return {"fail": f"{type(e).__name__}: {e}"}


def sample(impl: str, wid: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Takes one sample in a fresh interpreter."""
    cmd = [sys.executable, "-m", "fastspawn.bench", "--worker", impl, wid, "--params", json.dumps(params)]
    try:
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"fail": f"worker timed out after {timeout:.0f} s"}
    lines = res.stdout.decode(errors="replace").strip().splitlines()
    if res.returncode == 0 and lines:
        try:
            result: dict[str, Any] = json.loads(lines[-1])
            return result
        except ValueError:
            pass
    err = res.stderr.decode(errors="replace").strip().splitlines()
    return {"fail": f"worker exited with {res.returncode}: {err[-1] if err else '(no output)'}"}


# --- the comparison ----------------------------------------------------------------------------------


@dataclass
class Row:
    """One implementation's samples of one metric of one workload."""

    workload: Workload
    metric: Metric
    impl: str
    samples: list[float]
    fail: Optional[str]
    # Paired ratios: the median, over rounds, of this sample / asyncio's (the floor's)
    # sample of the same round. The implementations of a round run back to back, so this
    # cancels the machine's drift from round to round, which a ratio of medians does not.
    ratio: Optional[float] = None
    paired_vs_floor: Optional[float] = None

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def improvement(self) -> Optional[float]:
        """How many times better than asyncio, whatever the direction (> 1 is better)."""
        if self.ratio is None or self.ratio <= 0 or not math.isfinite(self.ratio):
            return None
        return self.ratio if self.metric.higher_is_better else 1 / self.ratio


def _paired_ratio(mine: dict[int, float], reference: dict[int, float]) -> Optional[float]:
    """The median over rounds of ``mine / reference`` in the same round; None if no round
    has both (rounds where the reference is 0 are left out). With an even count, the
    geometric mean of the two middle ratios, so that swapping the two sides gives exactly
    the inverse."""
    ratios = sorted(value / reference[rnd] for rnd, value in mine.items() if reference.get(rnd))
    if not ratios:
        return None
    half = len(ratios) // 2
    if len(ratios) % 2:
        return ratios[half]
    return math.sqrt(ratios[half - 1] * ratios[half])


def summarize(workloads: Sequence[Workload], impls: Sequence[str], runs: Sequence[dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    for w in workloads:
        for metric in w.metrics:
            by_impl: dict[str, Row] = {}
            by_round: dict[str, dict[int, float]] = {}
            for impl in impls:
                mine = [r for r in runs if r["workload"] == w.id and r["impl"] == impl and not r["warmup"]]
                fails = [r["fail"] for r in mine if "fail" in r]
                samples = [r["metrics"][metric.key] for r in mine if "metrics" in r]
                by_round[impl] = {r["round"]: r["metrics"][metric.key] for r in mine if "metrics" in r}
                fail = fails[0] if fails else (None if samples else "no samples")
                by_impl[impl] = Row(w, metric, impl, samples, fail)
            # A reference with a failed sample is no reference.
            base, floor = by_impl.get(BASELINE), by_impl.get(FLOOR)
            for row in by_impl.values():
                if row.fail is None:
                    if base is not None and base.fail is None:
                        row.ratio = _paired_ratio(by_round[row.impl], by_round[BASELINE])
                    if floor is not None and floor.fail is None:
                        row.paired_vs_floor = _paired_ratio(by_round[row.impl], by_round[FLOOR])
            rows += by_impl.values()
    return rows


def _num(x: float) -> str:
    if x == 0 or abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def _params_text(params: dict[str, Any]) -> str:
    def one(key: str, value: Any) -> str:
        if key in ("nbytes",) and isinstance(value, int) and value % MIB == 0:
            return f"{key}={value // MIB} MiB"
        if key == "held_mib":
            return f"held={value} MiB"
        return f"{key}={value:,}" if isinstance(value, int) else f"{key}={value}"

    return ", ".join(one(k, v) for k, v in params.items())


def format_table(rows: Sequence[Row], params: dict[str, dict[str, Any]]) -> str:
    out: list[str] = []
    last: Optional[tuple[str, str]] = None
    has_baseline = any(r.impl == BASELINE for r in rows)
    for row in rows:
        if (row.workload.id, row.metric.key) != last:
            if last is None or last[0] != row.workload.id:
                out.append("")
                out.append(f"{row.workload.label}  ({_params_text(params[row.workload.id])})")
            last = (row.workload.id, row.metric.key)
            out.append(f"    {row.metric.unit}, {row.metric.direction}")
            out.append(f"    {'impl':<10} {'median':>12} {'min - max':>25} {'/ floor':>8}   vs asyncio")
        if row.fail is not None:
            out.append(f"    {row.impl:<10} {'FAIL':>12}   {row.fail}")
            continue
        span = f"{_num(min(row.samples))} - {_num(max(row.samples))}"
        versus = "n/a" if has_baseline else ""
        if row.impl == BASELINE:
            versus = "1.00x"
        elif row.ratio is not None:
            imp = row.improvement
            verdict = "" if imp is None else f"{imp:.2f}x better" if imp >= 1 else f"{1 / imp:.2f}x worse"
            base = next(r for r in rows if r.workload is row.workload and r.metric is row.metric and r.impl == BASELINE)
            if min(row.samples) <= max(base.samples) and min(base.samples) <= max(row.samples):
                verdict += " (ranges overlap)"
            versus = f"{row.ratio:.2f}x  {verdict}"
        paired = "" if row.paired_vs_floor is None else f"{row.paired_vs_floor:.3f}"
        out.append(f"    {row.impl:<10} {_num(row.median):>12} {span:>25} {paired:>8}   {versus}")
    return "\n".join(out)


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "fastspawn": fastspawn.__version__,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if uvloop_available():
        info["uvloop"] = importlib.import_module("uvloop").__version__
    return info


def plot(rows: Sequence[Row], path: str) -> None:
    """Bar chart: for each workload metric, how many times better than stock asyncio each implementation
    is (bars rise from 1 when better, hang below 1 when worse; log scale). FAILs are left out."""
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    plt = importlib.import_module("matplotlib.pyplot")
    ticker = importlib.import_module("matplotlib.ticker")
    labels = list(dict.fromkeys(f"{r.workload.id} {r.metric.unit}" for r in rows))
    impls = [i for i in dict.fromkeys(r.impl for r in rows) if i != BASELINE]
    width = 0.8 / max(1, len(impls))
    fig, ax = plt.subplots(figsize=(max(8.0, 1.1 * len(labels)), 5.5))
    for i, impl in enumerate(impls):
        xs, ys = [], []
        for r in rows:
            if r.impl == impl and r.improvement is not None:
                xs.append(labels.index(f"{r.workload.id} {r.metric.unit}") + (i - (len(impls) - 1) / 2) * width)
                ys.append(r.improvement)
        ax.bar(xs, [y - 1 for y in ys], width, bottom=1, label=impl)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    fmt = ticker.FuncFormatter(lambda v, _pos: f"{v:g}x")
    ax.yaxis.set_major_formatter(fmt)
    # Labelled minor ticks crowd each other on a log axis spanning decades.
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("times better than stock asyncio (> 1x is better)")
    ax.set_title("fastspawn bench: relative to stock asyncio (median of same-round ratios)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _progress(text: str) -> None:
    sys.stderr.write(f"\r{text:<78.78}")
    sys.stderr.flush()


def compare(args: argparse.Namespace) -> int:
    impls = [i.strip() for i in args.impls.split(",") if i.strip()] if args.impls else list(IMPLS)
    unknown = [i for i in impls if i not in IMPLS]
    if unknown:
        raise SystemExit(f"unknown implementation(s) {', '.join(unknown)}; known: {', '.join(IMPLS)}")
    if "uvloop" in impls and not uvloop_available():
        print("uvloop is not importable; leaving it out (pip install 'fastspawn[bench]')", file=sys.stderr)
        impls.remove("uvloop")
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        print("--plot needs matplotlib: pip install 'fastspawn[plot]'", file=sys.stderr)
        return 2
    workloads: list[Workload] = []
    params: dict[str, dict[str, Any]] = {}
    for w in select_workloads(args.workloads):
        p = w.params_for(args.quick)
        if p is None:
            print(f"workload {w.id} ({w.title}) is left out of --quick", file=sys.stderr)
            continue
        workloads.append(w)
        params[w.id] = p
    rounds: dict[str, int] = {
        w.id: args.rounds if args.rounds is not None else (2 if args.quick else w.rounds) for w in workloads
    }

    runs: list[dict[str, Any]] = []
    total = sum(rounds[w.id] + 1 for w in workloads) * len(impls)
    started = time.monotonic()
    for w in workloads:
        for rnd in range(rounds[w.id] + 1):
            # Rotate the order every round so that no implementation always runs first or last.
            order = impls[rnd % len(impls) :] + impls[: rnd % len(impls)]
            for impl in order:
                label = "warm-up" if rnd == 0 else f"round {rnd}/{rounds[w.id]}"
                _progress(f"[{len(runs) + 1}/{total}] {w.id} {impl} {label} ...")
                t0 = time.monotonic()
                result = sample(impl, w.id, params[w.id], args.timeout)
                result["seconds"] = round(time.monotonic() - t0, 3)
                runs.append({"workload": w.id, "impl": impl, "round": rnd, "warmup": rnd == 0, **result})
    _progress("")
    sys.stderr.write("\r")

    rows = summarize(workloads, impls, runs)
    info = machine_info()
    counts = sorted(set(rounds.values()))
    if len(counts) == 1:
        rounds_text = f"median of {counts[0]} round{'s' if counts[0] != 1 else ''}"
    else:
        rounds_text = "median of " + ", ".join(
            f"{n} rounds for {', '.join(wid for wid, k in rounds.items() if k == n)}" for n in counts
        )
    print(
        f"fastspawn {info['fastspawn']} bench: Python {info['python']}, Linux {info['kernel']}, "
        f"{info['cpu_count']} CPUs; {'quick, ' if args.quick else ''}{rounds_text} after a "
        f"warm-up, each sample in a fresh process ({time.monotonic() - started:.0f} s)"
    )
    print(
        "vs asyncio, / floor: the median over rounds of this sample / asyncio's (the floor's) sample of the "
        "same round (a round runs the implementations back to back, so the machine's drift cancels), and how "
        "many times better or worse that is; 'ranges overlap' marks a difference within the spread of the samples"
    )
    print(format_table(rows, params))
    fails = [r for r in rows if r.fail is not None]

    if args.json:
        report = {
            "machine": info,
            "config": {"quick": args.quick, "rounds": rounds, "impls": impls, "params": params},
            "ratios": "paired: the median over rounds of this sample / the reference's sample of the same round",
            "runs": runs,
            "results": [
                {
                    "workload": r.workload.id,
                    "title": r.workload.title,
                    "metric": r.metric.key,
                    "unit": r.metric.unit,
                    "better": "higher" if r.metric.higher_is_better else "lower",
                    "impl": r.impl,
                    "samples": r.samples,
                    "fail": r.fail,
                    "median": None if r.fail else r.median,
                    "min": None if r.fail else min(r.samples),
                    "max": None if r.fail else max(r.samples),
                    "ratio_vs_asyncio": r.ratio,
                    "paired_ratio_vs_floor": r.paired_vs_floor,
                    "times_better_than_asyncio": r.improvement,
                }
                for r in rows
            ],
        }
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
        print(f"\nwrote {args.json}")
    if args.plot:
        plot(rows, args.plot)
        print(f"wrote {args.plot}")
    return 1 if fails else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastspawn.bench",
        description="Compare subprocess spawning and pipes: stock asyncio, uvloop, fastspawn and a "
        "posix_spawn floor. Each sample runs in a fresh interpreter.",
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds and smaller sizes (about a minute)")
    parser.add_argument("--rounds", type=int, help="measured rounds per workload (default 5, --quick 2)")
    parser.add_argument("--workloads", help="e.g. 1,2,9 (9 means 9a,9b,9c) or 9b; default all")
    parser.add_argument("--impls", help=f"comma-separated subset of {','.join(IMPLS)}; default all")
    parser.add_argument("--json", metavar="FILE", help="write raw samples, medians, ratios and machine info")
    parser.add_argument("--plot", metavar="FILE.png", help="bar chart of the ratios to asyncio (needs matplotlib)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per sample (default 300)")
    parser.add_argument(
        "--from-json", metavar="FILE", help="print the table (and --plot) of a saved --json run; measure nothing"
    )
    parser.add_argument("--worker", nargs=2, metavar=("IMPL", "WORKLOAD"), help=argparse.SUPPRESS)
    parser.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        impl, wid = args.worker
        print(json.dumps(run_worker(impl, wid, json.loads(args.params))))
        return 0
    if args.from_json:
        return replay(args.from_json, args.plot)
    return compare(args)


def replay(path: str, plot_path: Optional[str]) -> int:
    """The table and chart of a run saved with --json, without measuring again."""
    with open(path) as f:
        report = json.load(f)
    config = report["config"]
    params: dict[str, dict[str, Any]] = config["params"]
    workloads = [w for w in select_workloads(None) if w.id in params]
    rows = summarize(workloads, config["impls"], report["runs"])
    print(f"(from {path}: {report['machine']})")
    print(format_table(rows, params))
    if plot_path:
        plot(rows, plot_path)
        print(f"wrote {plot_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
