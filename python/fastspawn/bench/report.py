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
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from .loops import BASELINE, FLOOR, IMPLS, SUBJECT, versions
from .workloads import MIB, Metric, Workload

__all__ = [
    "Row",
    "SummaryRow",
    "format_summary",
    "format_table",
    "json_report",
    "machine_info",
    "summarize",
    "summary_rows",
    "times",
    "versus",
]


@dataclass
class Row:
    """One implementation's samples of one metric of one workload."""

    workload: Workload
    metric: Metric
    impl: str
    samples: list[float]
    fail: Optional[str]
    # Paired ratios to every other implementation that did not fail: the median, over rounds,
    # of this sample / the other's sample of the same round. The implementations of a round
    # run back to back, so this cancels the machine's drift from round to round, which a
    # ratio of medians does not.
    paired: dict[str, Optional[float]] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def ratio(self) -> Optional[float]:
        """The paired ratio to asyncio (this / asyncio)."""
        return self.paired.get(BASELINE)

    @property
    def paired_vs_floor(self) -> Optional[float]:
        """The paired ratio to the floor (this / floor)."""
        return self.paired.get(FLOOR)

    def times_better(self, other: str) -> Optional[float]:
        """How many times better than ``other`` this is, whatever the metric's direction: > 1 is
        better, so a time half as long and a rate twice as high are both 2.0."""
        ratio = self.paired.get(other)
        if ratio is None or ratio <= 0 or not math.isfinite(ratio):
            return None
        return ratio if self.metric.higher_is_better else 1 / ratio

    @property
    def improvement(self) -> Optional[float]:
        """How many times better than asyncio (> 1 is better)."""
        return self.times_better(BASELINE)

    def overlaps(self, other: Row) -> bool:
        """Whether the min-max ranges of the two rows' samples overlap."""
        return min(self.samples) <= max(other.samples) and min(other.samples) <= max(self.samples)


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
    """One :class:`Row` per workload, metric and implementation, in that order, with its paired
    ratios. A warm-up sample is left out; one failed sample fails the row."""
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
            ok = [row for row in by_impl.values() if row.fail is None]
            for row in ok:
                row.paired = {ref.impl: _paired_ratio(by_round[row.impl], by_round[ref.impl]) for ref in ok}
            rows += by_impl.values()
    return rows


def times(x: float) -> str:
    """``1.07x``, ``13.4x``, ``133x``."""
    return f"{x:.2f}x" if x < 10 else f"{x:.1f}x" if x < 100 else f"{x:,.0f}x"


def versus(row: Row, other: Row) -> str:
    """How ``row`` compares to ``other`` in words that need no inversion: ``"1.07x faster"``,
    ``"2.35x less CPU"``, ``"1.15x slower"``; ``"FAIL"`` if ``other`` failed."""
    if other.fail is not None or row.fail is not None:
        return "FAIL"
    if row.impl == other.impl:
        return "-"
    better = row.times_better(other.impl)
    better_word, worse_word = row.metric.words
    if better is None:
        # A ratio to or from zero (workload 8's memory growth): no "times", only the values.
        if row.median == other.median:
            return f"both {_num(row.median)}"
        word = better_word if (row.median > other.median) == row.metric.higher_is_better else worse_word
        return f"{word} ({_num(row.median)} vs {_num(other.median)})"
    if times(better) == "1.00x" or times(1 / better) == "1.00x":
        return "same (1.00x)"
    return f"{times(better)} {better_word}" if better >= 1 else f"{times(1 / better)} {worse_word}"


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
    """The per-workload tables: every metric's median, min-max and paired ratios per implementation."""
    out: list[str] = []
    last: Optional[tuple[str, str]] = None
    for row in rows:
        if (row.workload.id, row.metric.key) != last:
            if last is None or last[0] != row.workload.id:
                out.append("")
                out.append(f"{row.workload.label}  ({_params_text(params[row.workload.id])})")
            last = (row.workload.id, row.metric.key)
            out.append(f"    {row.metric.unit}, {row.metric.direction}")
            out.append(f"    {'impl':<10} {'median':>12} {'min - max':>25} {'/ floor':>8}   / asyncio")
        if row.fail is not None:
            out.append(f"    {row.impl:<10} {'FAIL':>12}   {row.fail}")
            continue
        span = f"{_num(min(row.samples))} - {_num(max(row.samples))}"
        base = next(
            (r for r in rows if r.workload is row.workload and r.metric is row.metric and r.impl == BASELINE), None
        )
        vs = ""
        if base is not None and row.impl != BASELINE:
            vs = f"{row.ratio:.2f}x  " if row.ratio is not None else ""
            vs += versus(row, base)
            if base.fail is None and row.overlaps(base) and not vs.startswith("both"):
                vs += " (ranges overlap)"
        paired = "" if row.paired_vs_floor is None else f"{row.paired_vs_floor:.3f}"
        out.append(f"    {row.impl:<10} {_num(row.median):>12} {span:>25} {paired:>8}   {vs}")
    return "\n".join(out)


@dataclass
class SummaryRow:
    """One line of the summary and one group of bars of the chart: a workload's metric, every
    implementation's :class:`Row` of it."""

    workload: Workload
    metric: Metric
    #: The workload in words, with the sizes of the run ("read 512 MiB from stdout, ...").
    title: str
    rows: dict[str, Row]

    @property
    def label(self) -> str:
        """The title, and for a workload's second metric what it measures."""
        first = next(m for m in self.workload.metrics if m.summary)
        return f"{self.workload.id} {self.title}" + ("" if self.metric is first else f": {self.metric.name}")

    def verdict(self, impl: str = SUBJECT) -> str:
        """``impl`` against asyncio in one word (two for CPU and memory): "faster", "same" (the
        min-max ranges overlap) or "slower"; "less CPU"/"more memory" where those are measured."""
        mine, base = self.rows.get(impl), self.rows.get(BASELINE)
        if mine is None or mine.fail is not None:
            return "FAIL"
        if base is None or base.fail is not None:
            return "n/a"
        if mine.overlaps(base):
            return "same"
        better = (mine.median > base.median) == self.metric.higher_is_better
        return self.metric.words[0 if better else 1]


def summary_rows(rows: Sequence[Row], params: dict[str, dict[str, Any]]) -> list[SummaryRow]:
    """The rows of the metrics that are summarized, grouped by workload and metric."""
    out: dict[tuple[str, str], SummaryRow] = {}
    for row in rows:
        if not row.metric.summary:
            continue
        key = (row.workload.id, row.metric.key)
        if key not in out:
            title = row.workload.describe(params.get(row.workload.id, row.workload.params))
            out[key] = SummaryRow(row.workload, row.metric, title, {})
        out[key].rows[row.impl] = row
    return list(out.values())


def format_summary(rows: Sequence[Row], params: dict[str, dict[str, Any]], subject: str = SUBJECT) -> str:
    """The summary table: one line per workload (two for workload 6: speed and memory) with
    ``subject``'s result, how it compares to each other implementation, and a verdict against
    asyncio. Every comparison is written the right way up for its metric."""
    lines = [r for r in summary_rows(rows, params) if subject in r.rows]
    if not lines:
        return ""
    others = [impl for impl in IMPLS if impl != subject and any(impl in r.rows for r in lines)]
    head = ["workload", subject, *(f"vs {impl}" for impl in others), "verdict vs asyncio"]
    table: list[list[str]] = []
    for line in lines:
        mine = line.rows[subject]
        if mine.fail is not None:
            table.append([line.label, "FAIL", *("" for _ in others), "FAIL"])
            continue
        unit = f" {line.metric.short}" if line.metric.short else ""
        cells = [versus(mine, line.rows[impl]) if impl in line.rows else "" for impl in others]
        table.append([line.label, f"{_num(mine.median)}{unit}", *cells, line.verdict(subject)])
    widths = [max(len(r[i]) for r in [head, *table]) for i in range(len(head))]
    widths[0] = min(widths[0], 60)

    def fmt(cells: Sequence[str]) -> str:
        first = cells[0] if len(cells[0]) <= widths[0] else cells[0][: widths[0] - 3] + "..."
        rest = (f"{c:<{w}}" for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([f"{first:<{widths[0]}}", *rest]).rstrip()

    out = [
        f"Summary: {subject}, workload by workload. Each 'vs' column says how {subject} compares to that",
        "implementation, already turned the right way up for the metric ('2.00x faster' is half the time",
        "per spawn or twice the MB/s; '2.00x less memory' is half the memory): the median of same-round ratios.",
        f"The verdict is {subject} against stock asyncio: 'same' when the min-max ranges of the two overlap.",
        "",
        fmt(head),
        fmt(["-" * w for w in widths]),
        *(fmt(r) for r in table),
    ]
    fails = [
        f"  {row.impl} FAILED {line.workload.id} ({line.title}): {row.fail}"
        for line in lines
        for row in line.rows.values()
        if row.fail is not None
    ]
    if fails:
        out += ["", "Failures (reported, not dropped):", *fails]
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
                "paired_ratios": r.paired,
                "times_better_than_asyncio": r.improvement,
            }
            for r in rows
        ],
    }
