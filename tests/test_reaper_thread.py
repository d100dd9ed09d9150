"""The core's one fallback reaper thread, where it cannot be started, and after fork.

Each scenario runs in a fresh interpreter (``FASTSPAWN_NO_PIDFD`` is read once per
process, and the thread is process-wide), from ``SCRIPT`` below.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Optional

import pytest

import fastspawn

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fastspawn.__file__)))

# Shared by the scenarios: whether this process still has children (zombies included).
PRELUDE = r"""
import asyncio, os, resource, sys, time
import fastspawn
from fastspawn import _core

HARD = resource.getrlimit(resource.RLIMIT_NPROC)[1]

def children_left():
    try:
        return os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return False

def spawn(*argv):
    child, *_ = _core.spawn(argv[0].encode(), [a.encode() for a in argv], None, None, None, None, None,
                            True, [], False, None, True, None, argv[0], None)
    return child
"""

# RLIMIT_NPROC counts this user's processes and threads: with a soft limit of 2 this
# interpreter can start one child and then no thread. (Root is exempt, so the script
# runs as an otherwise unused uid.)
THREAD_REFUSED = {
    # Without pidfds every child needs the thread: the spawn fails with EAGAIN, and the
    # child it started is killed and reaped, not left running unwatched.
    "watch": r"""
resource.setrlimit(resource.RLIMIT_NPROC, (2, HARD))

async def main():
    try:
        await fastspawn.create_subprocess_exec("sleep", "30")
    except BlockingIOError as exc:
        print("spawn refused:", exc.errno == 11)
    print("children left:", children_left())
    resource.setrlimit(resource.RLIMIT_NPROC, (HARD, HARD))
    proc = await fastspawn.create_subprocess_exec("sh", "-c", "exit 4")
    print("then:", await proc.wait())

asyncio.run(main())
""",
    # With pidfds the thread only reaps children dropped while running: the orphan waits
    # for a later call that can start it (or reap it), and is then reaped.
    "orphan": r"""
resource.setrlimit(resource.RLIMIT_NPROC, (2, HARD))
child = spawn("sleep", "0.2")
del child  # still running: the reaper's job, and the thread cannot start
time.sleep(0.5)
print("zombie while refused:", children_left())
resource.setrlimit(resource.RLIMIT_NPROC, (HARD, HARD))
later = spawn("sh", "-c", "exit 4")
print("later:", later.wait())
for _ in range(200):
    if not children_left():
        break
    time.sleep(0.01)
print("children left:", children_left())
""",
}

EXPECTED = {
    "watch": "spawn refused: True\nchildren left: False\nthen: 4\n",
    "orphan": "zombie while refused: True\nlater: 4\nchildren left: False\n",
}

NOBODY = 54321  # a uid with no processes, so RLIMIT_NPROC counts only ours


def interpreter_for(uid: int) -> Optional[list[str]]:
    """An interpreter of this version that ``uid`` can run with fastspawn importable,
    and its environment; None if there is none (a venv under a private home)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": PACKAGE_PARENT}
    version = "{}.{}".format(*sys.version_info[:2])
    for exe in (sys.executable, os.path.realpath(sys.executable), f"/usr/bin/python{version}"):
        try:
            probe = subprocess.run(
                [exe, "-c", "import sys, fastspawn._core; print('%d.%d' % sys.version_info[:2])"],
                user=uid,
                group=uid,
                extra_groups=[],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
            )
        except OSError:
            continue
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return [exe]
    return None


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the scenario as another uid (needs root)")
@pytest.mark.parametrize("scenario", list(THREAD_REFUSED))
def test_a_reaper_thread_that_cannot_start(scenario: str) -> None:
    """It used to panic (``expect("fastspawn: cannot start the reaper thread")``), which
    the release build turned into SIGABRT."""
    command = interpreter_for(NOBODY)
    if command is None:
        pytest.skip(f"no interpreter of this version that uid {NOBODY} can run")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": PACKAGE_PARENT}
    if scenario == "watch":
        env["FASTSPAWN_NO_PIDFD"] = "1"
    elif not fastspawn.features().pidfd:
        pytest.skip("needs pidfds")
    result = subprocess.run(
        [*command, "-c", PRELUDE + THREAD_REFUSED[scenario]],
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (0, EXPECTED[scenario]), result.stderr[-3000:]
