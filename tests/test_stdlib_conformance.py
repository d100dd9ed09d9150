"""CPython's own asyncio tests against fastspawn, on every Python installed on this
machine that fastspawn supports (>= 3.11), next to the same suites on stock asyncio:

* ``test.test_asyncio.test_subprocess`` with ``fastspawn.install()`` applied;
* ``test.test_asyncio.test_streams`` with ``asyncio.StreamReader`` replaced by
  ``fastspawn.StreamReader``.

The counts are printed at the end of the run.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import pythons

import fastspawn

RUNNER = pathlib.Path(__file__).with_name("stdlib_conformance.py")
RESULTS: list[dict[str, Any]] = []


_FOUND, UNSUPPORTED = pythons.find()
INTERPRETERS = [_FOUND[v] for v in sorted(_FOUND)]


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A directory holding only the installed fastspawn package (abi3: one build serves
    every interpreter), so no other site-packages leak into the other Pythons."""
    root = tmp_path_factory.mktemp("fastspawn-only")
    shutil.copytree(pathlib.Path(fastspawn.__file__).parent, root / "fastspawn")
    return str(root)


def run_suite(exe: str, package_dir: str, use_fastspawn: bool, streams: bool = False) -> dict[str, Any]:
    args = [exe, str(RUNNER)] + (["--fastspawn"] if use_fastspawn else []) + (["--streams"] if streams else [])
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = package_dir
    proc = subprocess.run(args, capture_output=True, text=True, timeout=900, env=env)
    lines = proc.stdout.strip().splitlines()
    assert lines, f"{exe} printed no result:\n{proc.stderr[-5000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    result["log"] = proc.stderr
    return result


@pytest.mark.parametrize("exe", INTERPRETERS, ids=lambda exe: exe.split("/versions/")[-1].split("/")[0])
def test_stdlib_asyncio_subprocess_suite(exe: str, package_dir: str) -> None:
    with ThreadPoolExecutor(2) as pool:
        stock_f = pool.submit(run_suite, exe, package_dir, False)
        ours_f = pool.submit(run_suite, exe, package_dir, True)
        stock, ours = stock_f.result(), ours_f.result()
    RESULTS.extend([stock, ours])
    assert ours["run"] == stock["run"] > 0
    failed = ours["failures"] + ours["errors"]
    assert not failed, f"fastspawn fails {failed}\n{ours['log'][-8000:]}"
    # fastspawn must really have been exercised, not routed away: the suite's few
    # delegations are its preexec_fn tests and its mocks of Popen/connect_read_pipe.
    # (Its FastChildWatcher class, where fastspawn steps aside by design, runs the same
    # test bodies as the other watcher classes, which do go through fastspawn.)
    routes = ours["routes"]
    assert routes["native"] >= 0.8 * (sum(routes.values()) - routes["stock_fast_watcher"]), routes


@pytest.mark.parametrize("exe", INTERPRETERS, ids=lambda exe: exe.split("/versions/")[-1].split("/")[0])
def test_stdlib_asyncio_streams_suite_on_fastspawn_reader(exe: str, package_dir: str) -> None:
    stock = run_suite(exe, package_dir, False, streams=True)
    ours = run_suite(exe, package_dir, True, streams=True)
    RESULTS.extend([stock, ours])
    assert ours["run"] == stock["run"] > 0
    failed = ours["failures"] + ours["errors"]
    assert not failed, f"fastspawn.StreamReader fails {failed}\n{ours['log'][-8000:]}"


def summary_lines() -> list[str]:
    lines = []
    for r in RESULTS:
        bad = len(r["failures"]) + len(r["errors"])
        passed = r["run"] - bad - r["skipped"]
        route = r.get("routes") or {}
        routed = (
            f"  spawns: {route['native']} native, {route['delegated_popen']} delegated to Popen, "
            f"{route['stock_asyncio']} to stock asyncio, "
            f"{route['stock_fast_watcher']} to stock asyncio under a FastChildWatcher"
            if route and r["impl"] == "fastspawn" and r["suite"] == "test_subprocess"
            else ""
        )
        lines.append(
            f"Python {r['python']:<8} {r['suite']:<15} {r['impl']:<9} ran {r['run']}: {passed} passed, {bad} failed, "
            f"{r['skipped']} skipped{routed}"
        )
    lines.extend(f"Python {v}: not supported by fastspawn (requires-python >= 3.11); not run" for v in UNSUPPORTED)
    return lines
