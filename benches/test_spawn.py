"""Workloads 1-4 and 9 of ``fastspawn.bench``: spawning short-lived children."""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest

from fastspawn import bench

Measure = Callable[..., bench.Metrics]


@pytest.mark.benchmark(group=bench.WORKLOADS["1"].label)
def test_spawn_wait(measure: Measure) -> None:
    """1: sequential /bin/true + wait()."""
    measure(bench.spawn_wait, n=30)


@pytest.mark.benchmark(group=bench.WORKLOADS["2"].label)
def test_echo_communicate(measure: Measure) -> None:
    """2: sequential /bin/echo hello with stdout=PIPE + communicate(); output checked."""
    measure(bench.echo_communicate, n=30)


@pytest.mark.benchmark(group=bench.WORKLOADS["3"].label)
def test_concurrent_spawn(measure: Measure) -> None:
    """3: 100 concurrent /bin/true under Semaphore(64), wall time."""
    measure(bench.concurrent_spawn, total=100, width=64)


@pytest.mark.benchmark(group=bench.WORKLOADS["4"].label + " (timer: process CPU time)")
def test_cpu_per_spawn(benchmark: Any, measure: Measure) -> None:
    """4: the same as 3, but the times in this group are the parent's CPU time (all threads)."""
    if hasattr(benchmark, "_timer"):
        # pytest-benchmark has no per-test timer option; its runner reads this attribute.
        benchmark._timer = time.process_time
    measure(bench.cpu_per_spawn, total=100, width=64)


@pytest.mark.parametrize(("held_mib", "wid"), [(0, "9a"), (1024, "9b")], ids=["0GiB", "1GiB"])
def test_spawn_wait_holding(benchmark: Any, measure: Measure, held_mib: int, wid: str) -> None:
    """9: workload 1 while the parent holds touched memory (allocated before timing starts;
    4 GiB, 9c, is left to ``python -m fastspawn.bench``)."""
    benchmark.group = bench.WORKLOADS[wid].label
    with bench.holding_memory(held_mib * bench.MIB) as held:
        measure(bench.spawn_wait, n=20)
        assert len(held) == held_mib * bench.MIB
