"""PEP 578: every spawn raises ``subprocess.Popen``'s audit event with Popen's values, and
a hook that raises stops the spawn (security tools and sandboxes log or block process
creation with it; fastspawn's native path raised none, so such a hook was bypassed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import Impl

TESTS = os.path.dirname(os.path.abspath(__file__))

# Audit hooks cannot be removed, so each implementation runs in a process of its own.
SCRIPT = """
import asyncio, json, os, pathlib, sys
import fastspawn
sys.path.insert(0, TESTS)
from procs import open_fds, zombie_children

events = []

def hook(event, args):
    if event != "subprocess.Popen":
        return
    executable, argv, cwd, env = args
    events.append(repr((executable, argv, cwd, env)))
    if "blocked" in str(argv[-1]):
        raise PermissionError("spawning is not allowed here")

sys.addaudithook(hook)
PIPE = asyncio.subprocess.PIPE

async def outcome(make):
    try:
        proc = await make()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    out, err = await proc.communicate()
    return [proc.returncode, out.decode()]

async def main():
    x = asyncio.create_subprocess_exec
    sh = asyncio.create_subprocess_shell
    cases = [
        lambda: x("echo", "plain", stdout=PIPE),
        lambda: x(b"/bin/echo", b"bytes", pathlib.Path("path"), stdout=PIPE),
        lambda: x("echo", "env+cwd", stdout=PIPE, env={"A": "1"}, cwd=pathlib.Path("/tmp")),
        lambda: x("nope", "argv0", executable="/bin/echo", stdout=PIPE),
        lambda: sh("echo shell", stdout=PIPE),
        lambda: sh("echo shell exe", stdout=PIPE, executable="/bin/sh"),
        lambda: x("echo", "clone", stdout=PIPE, umask=0o22),
        lambda: x("echo", "preexec", stdout=PIPE, preexec_fn=lambda: None),
        lambda: x("no-such-program-xyz", "missing"),
        lambda: x("true", env={"A": "b\\0"}),
        lambda: x("true", cwd="/no/such/dir"),
        lambda: x("echo", "blocked", stdin=PIPE, stdout=PIPE, stderr=PIPE),
        lambda: sh("echo blocked", stdin=PIPE, stdout=PIPE, stderr=PIPE),
        lambda: x("echo", "blocked", stdout=PIPE, umask=0o22),
        lambda: x("echo", "blocked", stdout=PIPE, preexec_fn=lambda: None),
        # Rejected before Popen gets that far: no event.
        lambda: x("true", user=-1),
    ]
    before = open_fds()
    results = []
    for make in cases:
        del events[:]
        results.append([await outcome(make), list(events)])
    # fastspawn closes its per-loop epoll at the end of the loop iteration that leaves it
    # empty; the last cases fail without yielding to the loop, so let one iteration end.
    await asyncio.sleep(0)
    # The descriptors opened since (the one listing /proc/self/fd is closed by now).
    opened = [n for n in sorted(open_fds()) if n not in before and os.path.exists(f"/proc/self/fd/{n}")]
    results.append(["new fds", opened, "zombies", zombie_children()])
    return results

loop = fastspawn.new_event_loop() if sys.argv[1] == "fastspawn" else asyncio.new_event_loop()
try:
    print(json.dumps(loop.run_until_complete(main())))
finally:
    loop.close()
"""


def run_audited(impl: str) -> list[object]:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(SCRIPT).replace("TESTS", repr(TESTS)), impl],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "PYTHONASYNCIODEBUG"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    results: list[object] = json.loads(result.stdout)
    return results


@pytest.fixture(scope="module")
def stock_events() -> list[object]:
    return run_audited("asyncio")


def test_every_spawn_raises_popens_audit_event(impl: Impl, stock_events: list[object]) -> None:
    got = run_audited(impl.name)
    # Stock asyncio is the reference; these check that the cases test what they say.
    assert stock_events[0] == [[0, "plain\n"], ["('echo', ['echo', 'plain'], None, None)"]]
    assert stock_events[11] == ["PermissionError: spawning is not allowed here", [stock_events[11][1][0]]]
    assert stock_events[-1] == ["new fds", [], "zombies", []]
    assert got == stock_events
