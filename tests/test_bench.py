"""The bench's arithmetic (ratios are paired by round, so the machine's drift between
rounds cancels) and its workload 5 child_busy metric."""

from __future__ import annotations

import ast
import math
from pathlib import Path
from typing import Any

import pytest

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


def runs_of(wid: str, key: str, samples: dict[str, list[float]]) -> list[dict[str, Any]]:
    return [
        {"workload": wid, "impl": impl, "round": rnd, "warmup": False, "metrics": {key: value}}
        for impl, values in samples.items()
        for rnd, value in enumerate(values, start=1)
    ]


def summary_of(wid: str, key: str, samples: dict[str, list[float]]) -> bench.SummaryRow:
    w = bench.WORKLOADS[wid]
    rows = bench.summarize([w], list(samples), runs_of(wid, key, samples))
    (line,) = [line for line in bench.summary_rows(rows, {wid: w.params}) if line.metric.key == key]
    return line


def test_the_summary_says_faster_or_slower_the_right_way_up_for_either_direction() -> None:
    # Lower is better (µs per spawn): fastspawn's ranges overlap asyncio's, so the verdict is
    # "same" even though the paired ratio says 1.07x faster.
    line = summary_of("2", "us_per_spawn", W2)
    fastspawn = line.rows["fastspawn"]
    assert bench.versus(fastspawn, line.rows["asyncio"]) == "1.07x faster"
    assert bench.versus(fastspawn, line.rows["floor"]) == "1.12x slower"
    assert line.verdict() == "same"
    # Lower is better, no overlap: half the time is 2x faster; twice the time 2x slower.
    line = summary_of("2", "us_per_spawn", {"asyncio": [200.0, 210.0], "fastspawn": [100.0, 105.0]})
    assert bench.versus(line.rows["fastspawn"], line.rows["asyncio"]) == "2.00x faster"
    assert bench.versus(line.rows["asyncio"], line.rows["fastspawn"]) == "2.00x slower"
    assert line.verdict() == "faster"
    assert line.verdict("asyncio") == "same"  # against itself
    # Higher is better (processes/s): twice the rate is 2x faster.
    line = summary_of("3", "procs_per_s", {"asyncio": [500.0, 510.0], "fastspawn": [1000.0, 1020.0]})
    assert bench.versus(line.rows["fastspawn"], line.rows["asyncio"]) == "2.00x faster"
    assert line.verdict() == "faster"
    line = summary_of("3", "procs_per_s", {"asyncio": [1000.0, 1020.0], "fastspawn": [500.0, 510.0]})
    assert line.verdict() == "slower"
    # CPU and memory read as "less"/"more", not "faster".
    line = summary_of("4", "cpu_us_per_spawn", {"asyncio": [400.0, 420.0], "fastspawn": [200.0, 210.0]})
    assert bench.versus(line.rows["fastspawn"], line.rows["asyncio"]) == "2.00x less CPU"
    assert line.verdict() == "less CPU"


def test_a_memory_growth_of_zero_is_compared_without_a_ratio() -> None:
    line = summary_of("8", "rss_growth_mib", {"asyncio": [0.0, 0.0], "uvloop": [1.0, 1.2], "fastspawn": [0.0, 0.0]})
    fastspawn = line.rows["fastspawn"]
    assert bench.versus(fastspawn, line.rows["asyncio"]) == "both 0"
    assert bench.versus(fastspawn, line.rows["uvloop"]) == "less memory (0 vs 1.10)"
    assert line.verdict() == "same"


def test_the_summary_has_one_line_per_workload_and_reports_a_failure_with_its_reason() -> None:
    failed = {"workload": "2", "impl": "uvloop", "round": 1, "warmup": False, "fail": "echo wrote b''"}
    runs = [*runs_for(W2), failed]
    rows = bench.summarize([bench.WORKLOADS["2"]], ["asyncio", "uvloop", "fastspawn", "floor"], runs)
    text = bench.format_summary(rows, {"2": {"n": 100}})
    (line,) = [t for t in text.splitlines() if t.startswith("2 ")]
    assert line.split()[-1] == "same"
    assert "1.07x faster" in line and "FAIL" in line and "1.12x slower" in line
    assert "uvloop FAILED 2 (echo hello through a pipe + communicate()): echo wrote b''" in text


def test_the_plot_draws_a_png(tmp_path: Any) -> None:
    pytest.importorskip("matplotlib")
    runs = runs_for(W2) + runs_of("8", "rss_growth_mib", {"asyncio": [0.0], "fastspawn": [0.0], "floor": [0.0]})
    runs.append({"workload": "8", "impl": "uvloop", "round": 1, "warmup": False, "fail": "worker timed out"})
    rows = bench.summarize([bench.WORKLOADS["2"], bench.WORKLOADS["8"]], ["asyncio", "uvloop", *W2], runs)
    path = tmp_path / "bench.png"
    bench.plot(rows, str(path), {"2": {"n": 100}, "8": {"nbytes": bench.MIB}}, {"python": "3.x"})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_module_of_the_bench_imports_one_that_imports_it_back() -> None:
    package = Path(bench.__file__).parent
    imports: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text())
        imports[path.stem] = {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 1
        }
        assert not any(
            isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fastspawn.bench")
            for node in ast.walk(tree)
        ), f"{path.name} imports the bench package absolutely"

    def reaches(start: str, seen: frozenset[str]) -> None:
        for dep in imports.get(start, set()):
            assert dep not in seen, f"import circle: {' -> '.join([*seen, dep])}"
            reaches(dep, seen | {dep})

    for module in imports:
        if module not in ("__init__", "__main__"):
            reaches(module, frozenset({module}))


# Every workload, small, so that each implementation's result checks run here: a column that
# cannot run a workload must show FAIL with the reason, and one that can must pass its checks.
TINY: dict[str, dict[str, Any]] = {
    "1": {"n": 3},
    "2": {"n": 3},
    "3": {"total": 8, "width": 4},
    "4": {"total": 8, "width": 4},
    "5": {"nbytes": bench.MIB},
    "6": {"nbytes": bench.MIB},
    "7": {"n": 1000},
    "8": {"nbytes": bench.MIB // 4},
    "9a": {"n": 3, "held_mib": 0},
    "9b": {"n": 3, "held_mib": 16},
    "9c": {"n": 3, "held_mib": 16},
    "10a": {"n": 3, "hold_ms": 0},
    "10b": {"n": 2, "hold_ms": 20},
}


def test_tiny_covers_every_workload() -> None:
    assert set(TINY) == set(bench.WORKLOADS)


@pytest.mark.parametrize("impl", bench.IMPLS)
@pytest.mark.parametrize("wid", list(TINY))
def test_every_workload_passes_its_checks_on_every_implementation_here(impl: str, wid: str) -> None:
    missing = bench.available(impl)
    if missing is not None:
        pytest.skip(f"{impl} is not importable: {missing}")
    result = bench.run_worker(impl, wid, TINY[wid])
    assert "fail" not in result, result
    assert {m.key for m in bench.WORKLOADS[wid].metrics} == set(result["metrics"])


def test_a_held_exec_stalls_a_loop_that_spawns_on_its_own_thread() -> None:
    # The slow exec is real: asyncio spawns on the loop's thread, so its ticker misses the hold.
    result = bench.run_worker("asyncio", "10b", {"n": 2, "hold_ms": 50})
    assert "fail" not in result, result
    assert result["metrics"]["max_stall_ms"] >= 40, result
    assert result["metrics"]["us_per_spawn"] >= 45_000, result


def test_a_workload_that_fails_or_raises_is_a_fail_with_its_reason() -> None:
    # A wrong result (seq rejects the count): the check's own words.
    assert bench.run_worker("fastspawn", "7", {"n": "many"}) == {"fail": "seq exited with 1, expected 0"}
    # Anything else: the exception's type and message.
    result = bench.run_worker("fastspawn", "1", {"n": 1, "bogus": 1})
    assert result["fail"].startswith("TypeError: ") and "bogus" in result["fail"], result
