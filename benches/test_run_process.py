"""What ``run_process`` (and the ``async with`` inside it) costs over plain spawning:
``/bin/true`` run to the end, sequentially, on fastspawn's loop.

    pytest benches/test_run_process.py --benchmark-only

Pairs to compare: ``exec + wait`` with ``run_process, capture_output=False`` (no pipes),
and ``exec(PIPE, PIPE) + communicate`` with ``run_process`` (stdout and stderr captured);
and ``async with exec + wait`` with the same ``cgroup=`` (a leaf cgroup made, joined and
removed per child; skipped where no cgroup v2 directory is writable). Every round checks
the exit code and the (empty) output before it counts."""

from __future__ import annotations

import asyncio
import os
from typing import Any, Callable, Coroutine, Iterator, Optional

import pytest
from procs import cgroup2_mount

import fastspawn
from fastspawn import bench

N = 50
TRUE = bench.TRUE
PIPE = asyncio.subprocess.PIPE


async def exec_wait() -> None:
    proc = await fastspawn.create_subprocess_exec(TRUE)
    assert await proc.wait() == 0


async def exec_communicate() -> None:
    proc = await fastspawn.create_subprocess_exec(TRUE, stdout=PIPE, stderr=PIPE)
    assert await proc.communicate() == (b"", b"")
    assert proc.returncode == 0


async def async_with_wait() -> None:
    async with await fastspawn.create_subprocess_exec(TRUE) as proc:
        assert await proc.wait() == 0


async def run_process_no_capture() -> None:
    result = await fastspawn.run_process([TRUE], capture_output=False)
    assert (result.returncode, result.stdout) == (0, None)


async def run_process_capture() -> None:
    result = await fastspawn.run_process([TRUE])
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


# Where the cgroup= way makes its leaves: a directory of its own under the cgroup v2 mount.
CGROUP: Optional[str] = None


async def async_with_cgroup_wait() -> None:
    async with await fastspawn.create_subprocess_exec(TRUE, cgroup=CGROUP) as proc:
        assert await proc.wait() == 0
    assert proc.cgroup is not None and proc.cgroup.removed


WAYS: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
    "exec + wait": exec_wait,
    "async with exec + wait": async_with_wait,
    "run_process, capture_output=False": run_process_no_capture,
    "exec(PIPE, PIPE) + communicate": exec_communicate,
    "run_process": run_process_capture,
    "async with exec(cgroup=) + wait": async_with_cgroup_wait,
}


@pytest.fixture(scope="module")
def cgroup_parent() -> Iterator[Optional[str]]:
    global CGROUP
    mount = cgroup2_mount()
    path = None if mount is None else os.path.join(mount, f"fastspawn-bench-{os.getpid()}")
    try:
        if path is not None:
            os.mkdir(path)
    except OSError:
        path = None
    CGROUP = path
    yield path
    CGROUP = None
    if path is not None:
        os.rmdir(path)


@pytest.mark.benchmark(group=f"run_process overhead: {N} sequential {TRUE}, s per round")
@pytest.mark.parametrize("way", list(WAYS))
def test_run_process_overhead(benchmark: Any, way: str, cgroup_parent: Optional[str]) -> None:
    one = WAYS[way]
    if "cgroup" in way and cgroup_parent is None:
        pytest.skip("no writable cgroup v2 directory here")

    async def rounds() -> None:
        for _ in range(N):
            await one()

    loop = fastspawn.new_event_loop()
    try:
        loop.run_until_complete(one())  # checked once before anything is timed
        benchmark.pedantic(loop.run_until_complete, setup=lambda: ((rounds(),), {}), rounds=10, warmup_rounds=1)
        benchmark.extra_info["us_per_spawn"] = benchmark.stats.stats.median / N * 1e6
    finally:
        loop.close()
