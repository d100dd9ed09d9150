"""Declarative child setup, no preexec_fn: ``rlimits=``, ``pdeathsig=``, ``subreaper=``
(and ``cgroup=``, in tests/test_cgroup.py).

The core does each step in the child between clone and exec (the clone path), reports a
failing step as the equivalent Python call would fail, and refuses the keywords with a
TypeError wherever the spawn goes through ``subprocess.Popen`` instead (never ignoring
them). They are fastspawn's own: stock asyncio has nothing to compare with.
"""

from __future__ import annotations

import asyncio
import ctypes
import resource
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any
from unittest import mock

import pytest

import fastspawn
from fastspawn import _core

PIPE = asyncio.subprocess.PIPE
NOFILE, CORE = resource.RLIMIT_NOFILE, resource.RLIMIT_CORE


async def output(*argv: str, shell: bool = False, **kwargs: Any) -> str:
    """The child's stdout, checking it exited 0."""
    if shell:
        proc = await fastspawn.create_subprocess_shell(argv[0], stdout=PIPE, **kwargs)
    else:
        proc = await fastspawn.create_subprocess_exec(*argv, stdout=PIPE, **kwargs)
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    return out.decode()


# -- rlimits ----------------------------------------------------------------------------

GETRLIMIT = "import resource as r; print(r.getrlimit(r.RLIMIT_NOFILE), r.getrlimit(r.RLIMIT_CORE))"


def test_rlimits_are_set_in_the_child() -> None:
    rlimits = {NOFILE: (100, 200), CORE: (0, resource.RLIM_INFINITY)}
    assert asyncio.run(output("sh", "-c", "ulimit -Sn; ulimit -Hn", rlimits=rlimits)) == "100\n200\n"
    # RLIM_INFINITY reads -1 before 3.15 and 2**64 - 1 from 3.15 on: the interpreter's own value.
    expected = f"(100, 200) (0, {resource.RLIM_INFINITY})\n"
    assert asyncio.run(output(sys.executable, "-c", GETRLIMIT, rlimits=rlimits)) == expected
    assert asyncio.run(output("ulimit -Sn", shell=True, rlimits={NOFILE: [64, 64]})) == "64\n"
    # This process keeps its own.
    assert resource.getrlimit(NOFILE) != (100, 200)


def test_rlimits_through_install(installed: None) -> None:
    async def main() -> bytes:
        proc = await asyncio.create_subprocess_exec("sh", "-c", "ulimit -Sn", stdout=PIPE, rlimits={NOFILE: (99, 99)})
        out, _ = await proc.communicate()
        return out

    assert asyncio.run(main()) == b"99\n"


def test_rlimits_with_other_clone_path_options() -> None:
    script = "umask; ulimit -Sn; pwd"
    kwargs = {"rlimits": {NOFILE: (77, 77)}, "umask": 0o027, "cwd": "/tmp", "start_new_session": True}
    assert asyncio.run(output("sh", "-c", script, **kwargs)) == "0027\n77\n/tmp\n"


def setrlimit_error(resource_id: Any, limits: Any) -> BaseException:
    """What ``resource.setrlimit`` raises here for these arguments (each case fails
    without changing anything)."""
    try:
        resource.setrlimit(resource_id, limits)
    except BaseException as exc:
        return exc
    raise AssertionError(f"setrlimit({resource_id!r}, {limits!r}) changed this process's limit")


BAD_RLIMITS = [
    (99, (1, 1)),  # no such resource
    (-1, (1, 1)),
    ("core", (1, 1)),
    (CORE, (1,)),
    (CORE, (1, 2, 3)),
    (CORE, 5),
    (CORE, ("a", 1)),
    (CORE, (1.5, 2)),
    (CORE, (2**64, 2**64)),
    (CORE, (2, 1)),  # soft above hard: EINVAL
]


@pytest.mark.parametrize(("resource_id", "limits"), BAD_RLIMITS)
def test_bad_rlimits_raise_what_setrlimit_raises_before_spawning(resource_id: Any, limits: Any) -> None:
    expected = setrlimit_error(resource_id, limits)
    with mock.patch.object(_core, "spawn", side_effect=AssertionError("spawned")):
        with pytest.raises(type(expected)) as raised:
            asyncio.run(fastspawn.create_subprocess_exec("true", rlimits={resource_id: limits}))
    assert str(raised.value) == str(expected)


def test_rlimits_must_be_a_mapping() -> None:
    with pytest.raises(TypeError, match="rlimits must be a mapping"):
        asyncio.run(fastspawn.create_subprocess_exec("true", rlimits=[(CORE, (1, 1))]))


def test_a_limit_the_child_may_not_set_is_reported_with_its_step() -> None:
    """A hard RLIMIT_NOFILE above fs.nr_open: EPERM from the kernel even for root, seen
    only in the child; reported as setrlimit reports it, with a note naming the step."""
    with open("/proc/sys/fs/nr_open") as f:
        too_many = int(f.read()) + 1
    expected = setrlimit_error(NOFILE, (1024, too_many))
    with pytest.raises(ValueError) as raised:
        asyncio.run(fastspawn.create_subprocess_exec("true", rlimits={NOFILE: (1024, too_many)}))
    assert str(raised.value) == str(expected) == "not allowed to raise maximum limit"
    assert raised.value.__notes__ == [f"in the child: setrlimit of resource {NOFILE}"]


# -- subreaper --------------------------------------------------------------------------

# The subshell starts a sleep and exits: the orphaned sleep goes to the nearest subreaper.
ADOPTION = textwrap.dedent(
    """\
    pid=$( (sleep 5 >/dev/null & echo $!) ); sleep 0.2
    ppid=$(cut -d' ' -f4 /proc/$pid/stat); kill $pid
    [ "$ppid" = $$ ] && echo adopted || echo elsewhere
    """
)


def test_a_subreaper_child_keeps_orphaned_descendants_in_its_subtree() -> None:
    assert asyncio.run(output("sh", "-c", ADOPTION, subreaper=True)) == "adopted\n"
    assert asyncio.run(output("sh", "-c", ADOPTION)) == "elsewhere\n"


# -- pdeathsig --------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1, signal.NSIG, 2**40])
def test_a_signal_number_out_of_range_is_refused(value: int) -> None:
    with pytest.raises(ValueError, match=r"^signal number out of range$"):
        asyncio.run(fastspawn.create_subprocess_exec("true", pdeathsig=value))


def test_pdeathsig_must_be_a_signal_number() -> None:
    with pytest.raises(TypeError):
        asyncio.run(fastspawn.create_subprocess_exec("true", pdeathsig="SIGKILL"))


def state(pid: int) -> str:
    """The process's state letter (``Z``: zombie), or ``gone``."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return "gone"
    return stat[stat.rindex(")") + 2]


def test_a_child_spawned_from_a_thread_that_ends_is_not_killed() -> None:
    """The kernel sends the parent-death signal when the *thread* that created the child
    ends; fastspawn starts such children from one core thread that lives as long as the
    process, so a short-lived thread that spawned one can end."""
    started: list[fastspawn.Process] = []

    async def spawn() -> None:
        started.append(await fastspawn.create_subprocess_exec("sleep", "30", pdeathsig=signal.SIGKILL))

    worker = threading.Thread(target=asyncio.run, args=(spawn(),))
    worker.start()
    worker.join()
    proc = started.pop()
    time.sleep(0.5)
    try:
        assert state(proc.pid) not in ("Z", "gone")
    finally:
        transport = proc._transport  # type: ignore[attr-defined]
        child = transport.get_extra_info("subprocess")
        child.kill()
        assert child.wait(5) == -signal.SIGKILL
        transport.close()  # its loop ended with the thread


def test_what_the_kernel_does_with_a_thread_spawned_child() -> None:
    """The control: the same child started by the thread itself (Popen, prctl in a
    preexec_fn) is killed when that thread ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    started: list[subprocess.Popen[bytes]] = []

    def spawn() -> None:
        pr_set_pdeathsig = 1
        preexec = lambda: libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)  # noqa: E731
        started.append(subprocess.Popen(["sleep", "30"], preexec_fn=preexec))

    worker = threading.Thread(target=spawn)
    worker.start()
    worker.join()
    assert started[0].wait(5) == -signal.SIGKILL


# A parent process that spawns `sleep 60` (with the keywords in argv[1]) in one of three
# ways (argv[2]), prints the child's pid, then waits to be killed.
PARENT = textwrap.dedent(
    """\
    import asyncio, os, signal, sys, threading, time
    import fastspawn

    kwargs = eval(sys.argv[1])
    how = sys.argv[2]
    started = []

    async def spawn():
        if how == "installed":
            fastspawn.install()
            started.append(await asyncio.create_subprocess_exec("sleep", "60", **kwargs))
        else:
            started.append(await fastspawn.create_subprocess_exec("sleep", "60", **kwargs))

    if how == "thread":
        # From a thread that ends at once.
        worker = threading.Thread(target=asyncio.run, args=(spawn(),))
        worker.start()
        worker.join()
        time.sleep(0.2)
    else:
        asyncio.run(spawn())
    print(started[0].pid, flush=True)
    time.sleep(60)
    """
)

# Run as a subreaper, so the orphaned child comes to this script, which can then tell
# how it ended: it starts PARENT, SIGKILLs it once it has spawned, and reports.
SUPERVISOR = textwrap.dedent(
    """\
    import ctypes, os, signal, subprocess, sys, time

    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    parent = subprocess.Popen([sys.executable, "-c", sys.argv[1], *sys.argv[2:]], stdout=subprocess.PIPE)
    pid = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    # The child is ours now (reparented to this subreaper).
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            print(f"killed by {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else "exited")
            break
        time.sleep(0.01)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        print("survived")
    """
)


def after_parent_is_killed(kwargs: dict[str, Any], how: str) -> str:
    """What became of a ``sleep 60`` spawned with ``kwargs`` once its parent was killed."""
    argv = [sys.executable, "-c", SUPERVISOR, PARENT, repr(kwargs), how]
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout.strip()


@pytest.mark.parametrize("how", ["loop", "thread", "installed"])
def test_sigkilling_the_parent_process_kills_the_child(how: str) -> None:
    assert after_parent_is_killed({"pdeathsig": int(signal.SIGKILL)}, how) == f"killed by {signal.SIGKILL:d}"
    assert after_parent_is_killed({"pdeathsig": int(signal.SIGTERM)}, how) == f"killed by {signal.SIGTERM:d}"


def test_without_pdeathsig_the_child_outlives_its_parent() -> None:
    assert after_parent_is_killed({}, "loop") == "survived"


# -- where they cannot be honoured: a TypeError, never ignored --------------------------

# cgroup= is refused before its directory is looked at (tests/test_cgroup.py spawns with it).
SETUP = [
    {"rlimits": {CORE: (0, 0)}},
    {"pdeathsig": signal.SIGKILL},
    {"subreaper": True},
    {"cgroup": "/no/such/cgroup"},
]


@pytest.mark.parametrize("setup", SETUP, ids=lambda s: next(iter(s)))
def test_refused_with_preexec_fn(setup: dict[str, Any]) -> None:
    with pytest.raises(TypeError, match=rf"{next(iter(setup))}= cannot be honoured.*because of preexec_fn="):
        asyncio.run(fastspawn.create_subprocess_exec("true", preexec_fn=lambda: None, **setup))


@pytest.mark.parametrize("setup", SETUP, ids=lambda s: next(iter(s)))
def test_refused_when_popen_is_replaced(setup: dict[str, Any]) -> None:
    with mock.patch("subprocess.Popen", side_effect=AssertionError("Popen called")):
        with pytest.raises(TypeError, match=r"subprocess\.Popen is replaced"):
            asyncio.run(fastspawn.create_subprocess_exec("true", **setup))


@pytest.mark.parametrize("setup", SETUP, ids=lambda s: next(iter(s)))
def test_refused_where_install_steps_aside(installed: None, setup: dict[str, Any]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.connect_read_pipe = loop.connect_read_pipe  # type: ignore[method-assign]
        await asyncio.create_subprocess_exec("true", **setup)

    with pytest.raises(TypeError, match="asyncio's own spawner"):
        asyncio.run(main())


def test_defaults_are_not_requests() -> None:
    """Left at their defaults (or an empty rlimits), they do not stop a delegated spawn."""

    async def main() -> int:
        defaults: dict[str, Any] = {"rlimits": {}, "pdeathsig": None, "subreaper": False, "cgroup": None}
        proc = await fastspawn.create_subprocess_exec("true", preexec_fn=lambda: None, **defaults)
        return await proc.wait()

    assert asyncio.run(main()) == 0
