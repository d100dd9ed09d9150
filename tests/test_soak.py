"""A soak of a few thousand mixed spawns (tests/soak.py: pipes both ways, missing
programs and directories, the clone path, cancellations at random await points) on
stock asyncio, on fastspawn, and on fastspawn's fallback reaper (FASTSPAWN_NO_PIDFD=1),
each in a fresh interpreter. Nothing may accumulate: descriptors, zombies, threads and
Python objects are counted exactly; memory is compared with stock asyncio's run of the
same soak, through what malloc still has handed out (precise) and RSS (noisy: it keeps
what malloc keeps for reuse). ``python tests/soak.py --spawns 100000`` runs a long one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from fastspawn._spawner import SPAWNER_THREADS

SOAK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "soak.py")
SPAWNS = 3000
# Python objects that may appear between the warm-up and the end (caches, interning).
OBJECT_SLACK = 100
# What fastspawn may hold beyond stock's growth: 64 bytes a spawn in malloc, and RSS
# noise.
MALLOC_SLACK_KIB = SPAWNS * 64 // 1024
RSS_SLACK_KIB = 2048


def soak(*args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-W", "error", SOAK, "--spawns", str(SPAWNS), *args],
        capture_output=True,
        text=True,
        timeout=110,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONASYNCIODEBUG", "FASTSPAWN_NO_PIDFD")},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.fixture(scope="module")
def stock() -> dict[str, Any]:
    return soak("--impl", "asyncio")


def growth(report: dict[str, Any], key: str) -> int:
    return int(report["end"][key] - report["warm"][key])


@pytest.mark.timeout(240)
@pytest.mark.parametrize("reaper", ["pidfd", "fallback"])
def test_nothing_accumulates_over_a_soak_of_mixed_spawns(stock: dict[str, Any], reaper: str) -> None:
    got = soak("--impl", "fastspawn", *(["--no-pidfd"] if reaper == "fallback" else []))
    for report in (stock, got):
        before, warm, end = report["before"], report["warm"], report["end"]
        assert report["errors"] == []
        counts = dict(report["counts"])
        assert counts.pop("new_fds_on_loop") == 0, report["impl"]
        assert sum(counts.values()) == SPAWNS
        assert end["fds"] == before["fds"]
        assert end["zombies"] == 0
        # The fallback reaper thread is started by the warm-up; fastspawn's spawner pool
        # (concurrent spawns) grows on demand to at most SPAWNER_THREADS; nothing else.
        pool = SPAWNER_THREADS if report is got else 0
        assert warm["threads"] <= end["threads"] <= warm["threads"] + pool
        assert end["python_threads"] <= before["python_threads"] + pool
        assert growth(report, "python_objects") <= OBJECT_SLACK
    assert got["counts"] == stock["counts"]
    assert got["end"]["threads"] <= (1 if reaper == "pidfd" else 2) + SPAWNER_THREADS
    if stock["end"]["malloc_kib"] >= 0:
        assert growth(got, "malloc_kib") <= max(growth(stock, "malloc_kib"), 0) + MALLOC_SLACK_KIB
    assert growth(got, "rss_kib") <= max(growth(stock, "rss_kib"), 0) + RSS_SLACK_KIB
