"""The chart of a comparison (``--plot FILE.png``; needs matplotlib: ``pip install 'fastspawn[plot]'``).

One group of horizontal bars per summary row (a workload's metric, named in words), one bar per
implementation, each as long as the number of times it is better than stock asyncio: a time, a CPU
cost or a memory growth (lower is better) is turned into asyncio's value divided by this one, so a
longer bar is always better and the line at 1x is asyncio. The number is written on every bar.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Optional, Sequence

from .loops import BASELINE, FLOOR, IMPLS, SUBJECT
from .report import Row, SummaryRow, summary_rows, times

__all__ = ["plot"]

# fastspawn stands out; the other loops are muted; the floor (not a loop) is grey.
COLORS = {SUBJECT: "#d62728", "uvloop": "#1f77b4", "rsloop": "#9467bd", FLOOR: "#a0a0a0"}
NAMES = {
    SUBJECT: "fastspawn",
    "uvloop": "uvloop (its own spawner)",
    "rsloop": "rsloop (its own spawner)",
    FLOOR: "floor: posix_spawn + waitpid, no event loop",
}


def _bar_text(better: float) -> str:
    text = times(better) if better >= 1 else f"{times(1 / better)} worse"
    return text.replace("x", "\u00d7")


def _unit(unit: str) -> str:
    return re.sub(r"\bus\b", "\u00b5s", unit)


def _no_ratio_text(row: Row, base: Optional[Row]) -> str:
    """What to write where there is no bar: a failure, or a value compared with zero."""
    if row.fail is not None:
        return "FAIL (see the table)"
    if base is None or base.fail is not None:
        return "no asyncio result to compare with"
    unit = f" {row.metric.short}" if row.metric.short else ""
    if row.median == base.median:
        return f"same as asyncio ({row.median:g}{unit})"
    return f"{row.median:.3g}{unit}, asyncio {base.median:.3g}{unit}"


def plot(
    rows: Sequence[Row],
    path: str,
    params: Optional[dict[str, dict[str, Any]]] = None,
    info: Optional[dict[str, Any]] = None,
) -> None:
    """Draws the chart of ``rows`` (from :func:`~.report.summarize`) into the PNG ``path``; ``params``
    fill the sizes into the workloads' names, ``info`` (:func:`~.report.machine_info`) the subtitle."""
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    plt = importlib.import_module("matplotlib.pyplot")

    lines: list[SummaryRow] = summary_rows(rows, params or {})
    impls = [i for i in IMPLS if i != BASELINE and any(i in line.rows for line in lines)]
    # fastspawn first in each group, the floor last.
    impls.sort(key=lambda i: (i != SUBJECT, i == FLOOR))
    bar = 0.8 / max(1, len(impls))
    group = 1.0
    fig_height = 1.6 + 0.23 * len(impls) * len(lines) + 0.28 * len(lines)
    fig, ax = plt.subplots(figsize=(11.5, fig_height), layout="constrained")

    # The floor can be far ahead (workload 7: a buffered file's iteration is C all the way); the
    # axis follows the loops, and a floor bar beyond it is cut, with its number written inside.
    loops_best = [
        b
        for line in lines
        for i in impls
        if i != FLOOR and i in line.rows and (b := line.rows[i].improvement) is not None
    ]
    xmax = max([2.0, *loops_best]) * 1.22
    pad = 0.01 * xmax
    for impl_index, impl in enumerate(impls):
        for line_index, line in enumerate(lines):
            row = line.rows.get(impl)
            if row is None:
                continue
            y = line_index * group + (impl_index - (len(impls) - 1) / 2) * bar
            better = row.improvement
            style: dict[str, Any] = {"va": "center", "fontsize": 7.5, "zorder": 5}
            if better is None:
                text = _no_ratio_text(row, line.rows.get(BASELINE))
                color = "#b00000" if row.fail is not None else COLORS.get(impl, "black")
                ax.text(1.0 + pad, y, f"{impl}: {text}", color=color, **style)
                continue
            ax.barh(y, min(better, xmax), height=bar * 0.92, color=COLORS.get(impl, "black"), zorder=2)
            if impl == SUBJECT:
                style["fontweight"] = "bold"
            base = line.rows.get(BASELINE)
            # The table's "same": within the spread of the samples, whatever the ratio says.
            text = ("\u2248 " if base is not None and row.overlaps(base) else "") + _bar_text(better)
            if better > xmax:
                ax.text(xmax - pad, y, text + " (bar cut)", ha="right", color="white", **style)
            else:
                # Right of the bar, or of the 1x line for a bar that stops short of it.
                ax.text(max(better, 1.0) + pad, y, text, **style)

    ax.axvline(1.0, color="black", linewidth=1.2, zorder=4)
    ax.axvspan(0, 1.0, color="#f4f4f4", zorder=0)
    top = -0.75 * group
    ax.text(1.0, top, "\u2190 worse  ", va="bottom", ha="right", fontsize=8.5, color="#606060")
    ax.text(1.0, top, "  asyncio = 1\u00d7: better \u2192", va="bottom", ha="left", fontsize=8.5, fontweight="bold")
    ax.set_yticks([i * group for i in range(len(lines))])
    ax.set_yticklabels(
        [f"{line.workload.id} {line.title}\n{_unit(line.metric.unit)}, {line.metric.direction}" for line in lines],
        fontsize=8.5,
    )
    ax.set_ylim(len(lines) * group - 0.5, -0.5 * group - 0.4)
    ax.set_xlim(0, xmax)
    ax.grid(axis="x", color="#e6e6e6", zorder=0)
    ax.set_xlabel(
        "times better than stock asyncio: a longer bar is always better\n"
        "(rates: this \u00f7 asyncio; times, CPU and memory, where lower is better: asyncio \u00f7 this;\n"
        "\u2248: the min\u2013max ranges of the samples overlap asyncio's, so within this machine's run-to-run spread)",
        fontsize=9,
    )
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLORS.get(i, "black")) for i in impls]
    # Under the axis, never over the bars ("outside" needs the constrained layout, matplotlib 3.7+).
    fig.legend(
        handles,
        [NAMES.get(i, i) for i in impls],
        loc="outside lower center",
        ncol=min(len(impls), 4),
        fontsize=8.5,
        frameon=False,
    )
    title = "fastspawn against stock asyncio (the black line), per workload"
    if info:
        versions = ", ".join(f"{i} {info[i]}" for i in ("uvloop", "rsloop") if i in info and i in impls)
        title += (
            f"\nPython {info.get('python', '?')}, Linux {info.get('kernel', '?')}, {info.get('cpu_count', '?')} CPUs"
            f"{'; ' + versions if versions else ''}; medians of same-round ratios"
        )
    fig.suptitle(title, fontsize=10.5)
    fig.savefig(path, dpi=110)
    plt.close(fig)
