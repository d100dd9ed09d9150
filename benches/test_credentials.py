"""Spawning with ``user=`` while the parent holds 1 GiB: asyncio against fastspawn.

CPython's ``subprocess`` falls back from vfork to ``fork()`` whenever ``user``, ``group`` or
``extra_groups`` is given, so its cost grows with the parent's memory; fastspawn applies them
on its ``clone(CLONE_VM|CLONE_VFORK)`` path and stays flat. uvloop rejects ``user=``
(uvloop#618) and the ``posix_spawn`` floor cannot change credentials, so only asyncio and
fastspawn run here.

    pytest benches/test_credentials.py --benchmark-only
"""

from __future__ import annotations

import asyncio
import os

import pytest

from fastspawn import bench

HELD_MIB = 1024
N = 10


def spawn_wait_as_user(impl: str, n: int) -> bench.Metrics:
    """µs per sequential ``/bin/true`` + ``wait()`` with ``user=`` this process's own uid."""

    async def main() -> float:
        start = asyncio.get_running_loop().time()
        for _ in range(n):
            proc = await asyncio.create_subprocess_exec(bench.TRUE, user=os.getuid())
            bench.check_exit(await proc.wait(), bench.TRUE)
        return asyncio.get_running_loop().time() - start

    return {"us_per_spawn": bench.run_on(impl, main) / n * 1e6}


@pytest.fixture(scope="module")
def held_memory() -> object:
    with bench.holding_memory(HELD_MIB * bench.MIB) as held:
        yield held


@pytest.mark.parametrize("impl", ["asyncio", "fastspawn"])
@pytest.mark.benchmark(group=f"10 spawn with user= + wait(), parent holding {HELD_MIB // 1024} GiB")
def test_spawn_as_user_holding_memory(benchmark: object, impl: str, held_memory: object) -> None:
    metrics = benchmark.pedantic(  # type: ignore[attr-defined]
        spawn_wait_as_user, args=(impl,), kwargs={"n": N}, rounds=3, warmup_rounds=1, iterations=1
    )
    benchmark.extra_info.update(metrics)  # type: ignore[attr-defined]
