"""Workloads 5-8 of ``fastspawn.bench``: moving data through the child's stdout."""

from __future__ import annotations

from typing import Callable

import pytest

from fastspawn import bench

Measure = Callable[..., bench.Metrics]


@pytest.mark.benchmark(group=bench.WORKLOADS["5"].label)
def test_read_chunks(measure: Measure) -> None:
    """5: 32 MiB read with stdout.read(65536) until EOF; byte count checked."""
    measure(bench.read_chunks, nbytes=32 * bench.MIB)


@pytest.mark.benchmark(group=bench.WORKLOADS["6"].label)
def test_communicate_big(measure: Measure) -> None:
    """6: 32 MiB through communicate(); byte count checked."""
    measure(bench.communicate_big, nbytes=32 * bench.MIB)


@pytest.mark.benchmark(group=bench.WORKLOADS["7"].label)
def test_read_lines(measure: Measure) -> None:
    """7: ``seq 100000`` with ``async for line``; line count and last line checked."""
    measure(bench.read_lines, n=100_000)


@pytest.mark.benchmark(group=bench.WORKLOADS["8"].label)
def test_slow_reader(measure: Measure) -> None:
    """8: 4 MiB read 64 KiB per 1 ms; the time is mostly the sleeps, the RSS growth is in extra_info."""
    measure(bench.slow_reader, nbytes=4 * bench.MIB, rounds=2)
