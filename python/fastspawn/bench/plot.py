"""The chart of a comparison (``--plot FILE.png``; needs matplotlib: ``pip install 'fastspawn[plot]'``)."""

from __future__ import annotations

import importlib
from typing import Sequence

from .loops import BASELINE
from .report import Row

__all__ = ["plot"]


def plot(rows: Sequence[Row], path: str) -> None:
    """Bar chart: for each workload metric, how many times better than stock asyncio each implementation
    is (bars rise from 1 when better, hang below 1 when worse; log scale). FAILs are left out."""
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    plt = importlib.import_module("matplotlib.pyplot")
    ticker = importlib.import_module("matplotlib.ticker")
    labels = list(dict.fromkeys(f"{r.workload.id} {r.metric.unit}" for r in rows))
    impls = [i for i in dict.fromkeys(r.impl for r in rows) if i != BASELINE]
    width = 0.8 / max(1, len(impls))
    fig, ax = plt.subplots(figsize=(max(8.0, 1.1 * len(labels)), 5.5))
    for i, impl in enumerate(impls):
        xs, ys = [], []
        for r in rows:
            if r.impl == impl and r.improvement is not None:
                xs.append(labels.index(f"{r.workload.id} {r.metric.unit}") + (i - (len(impls) - 1) / 2) * width)
                ys.append(r.improvement)
        ax.bar(xs, [y - 1 for y in ys], width, bottom=1, label=impl)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    fmt = ticker.FuncFormatter(lambda v, _pos: f"{v:g}x")
    ax.yaxis.set_major_formatter(fmt)
    # Labelled minor ticks crowd each other on a log axis spanning decades.
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("times better than stock asyncio (> 1x is better)")
    ax.set_title("fastspawn bench: relative to stock asyncio (median of same-round ratios)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
