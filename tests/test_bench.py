"""The bench's arithmetic (ratios are paired by round, so the machine's drift between
rounds cancels) and its workload 5 child_busy metric."""

from __future__ import annotations

import math
from typing import Any

from fastspawn import bench

# Workload 2's samples from one full run on the build VM (µs per spawn, rounds 1-5).
W2 = {
    "asyncio": [1941.0, 1819.0, 1485.0, 1566.0, 1459.0],
    "fastspawn": [1806.0, 1642.0, 1651.0, 1572.0, 1263.0],
    "floor": [1533.0, 1490.0, 1288.0, 1406.0, 1261.0],
}


def runs_for(samples: dict[str, list[float]]) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for impl, values in samples.items():
        runs.append({"workload": "2", "impl": impl, "round": 0, "warmup": True, "metrics": {"us_per_spawn": 1.0}})
        for rnd, value in enumerate(values, start=1):
            metrics = {"us_per_spawn": value}
            runs.append({"workload": "2", "impl": impl, "round": rnd, "warmup": False, "metrics": metrics})
    return runs


def rows_by_impl(samples: dict[str, list[float]], runs: list[dict[str, Any]]) -> dict[str, bench.Row]:
    return {r.impl: r for r in bench.summarize([bench.WORKLOADS["2"]], list(samples), runs)}


def test_ratios_are_paired_by_round() -> None:
    rows = rows_by_impl(W2, runs_for(W2))
    fastspawn = rows["fastspawn"]
    # The medians alone (1642 / 1566) would call fastspawn 1.05x slower than asyncio; round
    # by round it was faster in 4 of 5, and the median of the five ratios is 1806/1941.
    assert fastspawn.ratio == 1806.0 / 1941.0
    assert fastspawn.improvement is not None and round(fastspawn.improvement, 2) == 1.07
    # Ratios 1.178, 1.102, 1.282, 1.118, 1.002 to the floor: median 1572/1406.
    assert fastspawn.paired_vs_floor == 1572.0 / 1406.0
    assert rows["floor"].paired_vs_floor == 1.0
    assert rows["asyncio"].ratio == 1.0


def test_an_even_number_of_rounds_gives_inverse_ratios_both_ways() -> None:
    two = {"asyncio": [100.0, 100.0], "fastspawn": [50.0, 200.0], "floor": [50.0, 200.0]}
    rows = rows_by_impl(two, runs_for(two))
    # Ratios 0.5 and 2: neither side is better (an arithmetic mean would say 1.25 both ways).
    assert rows["fastspawn"].ratio == 1.0
    assert rows["asyncio"].paired_vs_floor == 1.0


def test_a_missing_round_is_left_out_and_a_failed_reference_gives_no_ratio() -> None:
    runs = [r for r in runs_for(W2) if not (r["impl"] == "floor" and r["round"] == 4)]
    rows = rows_by_impl(W2, runs)
    # Rounds 1, 2, 3 and 5 only: ratios 1.002, 1.102, 1.178, 1.282 -> geometric mean of
    # the middle two.
    expected = math.sqrt(1642.0 / 1490.0 * 1806.0 / 1533.0)
    assert rows["fastspawn"].paired_vs_floor is not None
    assert math.isclose(rows["fastspawn"].paired_vs_floor, expected)
    failed = next(r for r in runs if r["impl"] == "floor" and r["round"] == 5)
    del failed["metrics"]
    failed["fail"] = "worker timed out"
    rows = rows_by_impl(W2, runs)
    assert rows["floor"].fail == "worker timed out"
    assert rows["fastspawn"].paired_vs_floor is None
    assert rows["fastspawn"].ratio == 1806.0 / 1941.0


def test_workload_5_reports_the_share_of_the_run_the_child_was_busy() -> None:
    # The child's CPU time is counted once it is reaped, on both the loop and the floor; a
    # single-threaded child cannot be busier than the wall time.
    for impl in ("floor", "fastspawn"):
        metrics = bench.read_chunks(impl, nbytes=16 * bench.MIB)
        assert metrics["mb_per_s"] > 0
        assert 0.05 < metrics["child_busy"] <= 1.05, (impl, metrics)
