"""From samples to what a reader sees: paired ratios, the per-workload tables, the JSON report.

A ratio is paired: for each round the implementations run back to back, and a ratio is the median,
over rounds, of one implementation's sample divided by the other's in the same round. Spawn latencies
on a shared machine drift between rounds, and pairing cancels that drift where a ratio of medians
would not.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import statistics
import sys
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from .loops import BASELINE, FLOOR, versions
from .workloads import MIB, Metric, Workload

__all__ = ["Row", "format_table", "json_report", "machine_info", "summarize"]


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
    """Where a run was taken: Python, kernel, CPUs, the date, and the versions of what was compared."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        **versions(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def json_report(
    info: dict[str, Any], config: dict[str, Any], runs: Sequence[dict[str, Any]], rows: Sequence[Row]
) -> dict[str, Any]:
    """The ``--json`` document: machine, configuration, every sample, and each row's summary."""
    return {
        "machine": info,
        "config": config,
        "ratios": "paired: the median over rounds of this sample / the reference's sample of the same round",
        "runs": list(runs),
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
