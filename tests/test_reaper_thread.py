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

# Shared by the scenarios: whether this process still has children (running or zombies).
PRELUDE = r"""
import asyncio, os, resource, sys, time
import fastspawn
from fastspawn import _core
from fastspawn._options import NativeSpawn

HARD = resource.getrlimit(resource.RLIMIT_NPROC)[1]

def children_left():
    # Running or exited: waitid(WNOHANG) answers None or a status; no child at all: ECHILD.
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True

def spawn(*argv):
    child, *_ = _core.spawn(NativeSpawn(
        program=argv[0].encode(), argv=[a.encode() for a in argv], env=None,
        exec_path=os.fsencode(os.pathsep.join(os.get_exec_path())), cwd=None,
        stdin=None, stdout=None, stderr=None, close_fds=True, pass_fds=[],
        start_new_session=False, process_group=None, restore_signals=True, pipe_size=None,
        program_name=argv[0], cwd_name=None, umask=None, groups=None, gid=None, uid=None,
        rlimits=None, pdeathsig=None, subreaper=False))
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


# os.fork() after the reaper thread started: the forked child has the parent's reaper
# (its queue, and a thread that does not exist there) and copies of its descriptors.
AFTER_FORK = {
    # In the forked child: spawn and communicate (the exit must be noticed), and drop a
    # running child (it must be reaped): no hang, no zombie.
    "child": r"""
async def work():
    proc = await fastspawn.create_subprocess_exec("sh", "-c", "echo hi; exit 3", stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 5)
    orphan = spawn("sleep", "0.1")
    del orphan
    return proc.returncode, out

# Start the reaper thread: through a dropped running child (with pidfds) or any child.
orphan = spawn("sleep", "0.05")
del orphan
print("parent:", asyncio.run(work()))
kept = spawn("sleep", "1")
pid = os.fork()
if pid == 0:
    # The parent's child is no child here: lost (no status, no signal), not running.
    try:
        kept.try_wait()
    except ChildProcessError:
        print("parent's child here: lost", kept.send_signal(0), flush=True)
    try:
        result = asyncio.run(work())
    except BaseException as exc:
        result = repr(exc)
    for _ in range(300):
        if not children_left():
            break
        time.sleep(0.01)
    print("forked child:", result, "zombies:", children_left(), flush=True)
    os._exit(0)
for _ in range(2000):
    if os.waitpid(pid, os.WNOHANG)[0]:
        break
    time.sleep(0.01)
else:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    print("forked child hung")
kept.send_signal(9)
kept.wait()
""",
    # In the parent: a forked child that lives on (no exec) must not hide the exits of
    # the parent's own children.
    "parent": r"""
async def main():
    proc = await fastspawn.create_subprocess_exec("sleep", "0.2")
    pid = os.fork()
    if pid == 0:
        time.sleep(4)
        os._exit(0)
    try:
        print("parent:", await asyncio.wait_for(proc.wait(), 3))
    except TimeoutError:
        print("parent: exit not noticed")
    os.kill(pid, 9)
    os.waitpid(pid, 0)

asyncio.run(main())
""",
}

FORK_EXPECTED = {
    "child": "parent: (3, b'hi\\n')\nparent's child here: lost False\nforked child: (3, b'hi\\n') zombies: False\n",
    "parent": "parent: 0\n",
}


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "no-pidfd"])
@pytest.mark.parametrize("scenario", list(AFTER_FORK))
def test_fork_after_the_reaper_started(scenario: str, pidfd: bool) -> None:
    """Without pidfds the forked child's communicate() used to hang (its spawn handed
    the child to a reaper thread that does not exist there) and, with or without, its
    dropped children stayed zombies; and the parent's exits went unnoticed while a
    forked child held the reaper's notify pipes open."""
    if pidfd and not fastspawn.features().pidfd:
        pytest.skip("needs pidfds")
    env = dict(os.environ)
    env.pop("FASTSPAWN_NO_PIDFD", None)
    if not pidfd:
        env["FASTSPAWN_NO_PIDFD"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", PRELUDE + AFTER_FORK[scenario]], env=env, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout) == (0, FORK_EXPECTED[scenario]), result.stderr[-3000:]
