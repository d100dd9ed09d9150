"""Fixtures for the pytest-benchmark runs of the workloads in ``fastspawn.bench``.

    pytest benches/ --benchmark-only

Each workload is one benchmark group, parametrised over the implementations, so the report puts
stock asyncio, uvloop, rsloop, fastspawn and the ``posix_spawn`` floor side by side. The workload functions
are ``fastspawn.bench``'s own (one implementation), and each checks its result on every round: a
wrong byte count, line count or exit code fails the test instead of producing a time. Sizes are
small; ``python -m fastspawn.bench`` is the full comparison, with every sample in a fresh process
(which the peak-RSS metrics of workloads 6 and 8 need: here they only go to ``extra_info``).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator

import pytest

from fastspawn import bench


def _impl_params() -> Iterator[Any]:
    for impl in bench.IMPLS:
        missing = bench.available(impl)
        marks = [] if missing is None else [pytest.mark.skip(reason=f"{impl} is not importable: {missing}")]
        yield pytest.param(impl, marks=marks, id=impl)


_spawner_checked: set[str] = set()


@pytest.fixture(params=list(_impl_params()))
def impl(request: pytest.FixtureRequest) -> str:
    """One implementation name; the first time, checks it really spawns with its own machinery."""
    name: str = request.param
    if name not in _spawner_checked:
        bench.check_spawner(name)
        _spawner_checked.add(name)
    return name


@pytest.fixture
def measure(benchmark: Any, impl: str) -> Callable[..., bench.Metrics]:
    """``measure(workload_func, **params)`` benchmarks ``workload_func(impl, **params)``: one warm-up
    round, then ``rounds`` timed ones, each raising ``bench.CheckError`` on a wrong result. The
    workload's own metrics (µs per spawn, MB/s, ...) of the last round go to ``extra_info``."""

    def run(func: Callable[..., bench.Metrics], rounds: int = 3, **params: Any) -> bench.Metrics:
        metrics: bench.Metrics = benchmark.pedantic(
            func, args=(impl,), kwargs=params, rounds=rounds, warmup_rounds=1, iterations=1
        )
        assert metrics, f"{func.__name__} returned no metrics"
        assert all(math.isfinite(v) and v >= 0 for v in metrics.values()), metrics
        benchmark.extra_info.update(metrics)
        return metrics

    return run
