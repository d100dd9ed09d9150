"""Compares spawning and piping subprocesses under stock asyncio, uvloop, rsloop, fastspawn and a floor.

    python -m fastspawn.bench [--quick] [--rounds N] [--workloads 1,2,9] [--impls asyncio,fastspawn]
                              [--json FILE] [--plot FILE.png] [--from-json FILE]

Implementations (the event loops run the very same code, ``asyncio.create_subprocess_exec`` and the
stock ``Process``/``StreamReader`` on top; only the loop differs):

* ``asyncio``: a stock asyncio event loop, fastspawn not installed.
* ``uvloop``: uvloop's loop with uvloop's own spawner (only when uvloop is importable).
* ``rsloop``: rsloop's loop (an asyncio loop written in Rust) with its own spawner, ``std::process``
  and a pidfd reaper (only when rsloop is importable: ``pip install rsloop``, glibc 2.39+).
* ``fastspawn``: a stock selector loop that spawns with fastspawn (``fastspawn.new_event_loop()``).
* ``floor``: the same work with ``os.posix_spawn``, ``os.waitpid`` and blocking reads and no event
  loop: roughly what the kernel and the child cost.

The layers, each importing only the ones above it in this list:

* :mod:`.loops`: the implementations, their loops, and the check that each spawns with its own code.
* :mod:`.workloads`: the workload functions (each checks its result) and the table of workloads.
* :mod:`.report`: paired ratios, the tables and the JSON report.
* :mod:`.plot`: the chart (matplotlib, imported only when drawing).
* :mod:`.runner`: worker processes, rounds, and the command line (:func:`main`).

The workload functions (``spawn_wait``, ``echo_communicate``, ...) are public so that the
pytest-benchmark suite in ``benches/`` measures exactly the same code.
"""

from __future__ import annotations

from .loops import (
    BASELINE,
    FLOOR,
    IMPLS,
    TRUE,
    CheckError,
    available,
    check_exit,
    check_spawner,
    new_loop,
    run_on,
    uvloop_available,
)
from .plot import plot
from .report import Row, SummaryRow, format_summary, format_table, summarize, summary_rows, versus
from .runner import main, run_worker
from .workloads import (
    MIB,
    WORKLOADS,
    Metric,
    Metrics,
    Workload,
    communicate_big,
    concurrent_spawn,
    cpu_per_spawn,
    echo_communicate,
    holding_memory,
    read_chunks,
    read_lines,
    select_workloads,
    slow_reader,
    spawn_wait,
    spawn_wait_holding,
)

__all__ = [
    "BASELINE",
    "FLOOR",
    "IMPLS",
    "MIB",
    "TRUE",
    "WORKLOADS",
    "CheckError",
    "Metric",
    "Metrics",
    "Row",
    "SummaryRow",
    "Workload",
    "available",
    "check_exit",
    "check_spawner",
    "communicate_big",
    "concurrent_spawn",
    "cpu_per_spawn",
    "echo_communicate",
    "format_summary",
    "format_table",
    "holding_memory",
    "main",
    "new_loop",
    "plot",
    "read_chunks",
    "read_lines",
    "run_on",
    "run_worker",
    "select_workloads",
    "slow_reader",
    "spawn_wait",
    "spawn_wait_holding",
    "summarize",
    "summary_rows",
    "uvloop_available",
    "versus",
]
