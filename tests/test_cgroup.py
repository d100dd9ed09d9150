"""``cgroup=``: a leaf cgroup v2 per child, joined before exec, which tree signals reach
whatever the descendants did (a double-forked daemon, a child already reaped), checked by
pid and pidfd from the outside; the leaf gone once the tree has ended; bad directories
refused before spawning with the failing call's OSError and nothing left behind.

Every test runs in a directory of its own under the cgroup v2 mount (found in
/proc/self/mountinfo), made and removed by the ``parent`` fixture; they are skipped only
where there is no writable cgroup v2 hierarchy.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import pathlib
import re
import signal
import subprocess
import sys
import textwrap
from asyncio.subprocess import PIPE
from collections.abc import Iterator
from typing import Any, Optional
from unittest import mock

import pytest
from procs import (
    Pinned,
    cgroup2_mount,
    open_fds,
    pids_with_arg,
    token,
    wait_exec,
    wait_none_with_arg,
    wait_orphaned,
    zombie_children,
)

import fastspawn
from conftest import Impl
from fastspawn import _core


def _make_test_dir() -> tuple[Optional[str], str]:
    mount = cgroup2_mount()
    if mount is None:
        return None, "no cgroup v2 hierarchy is mounted"
    path = os.path.join(mount, f"fastspawn-test-{os.getpid()}-{token()}")
    try:
        os.mkdir(path)
    except OSError as exc:
        return None, f"the cgroup v2 hierarchy at {mount} is not writable here: {exc}"
    return path, ""


def _clear(path: str) -> None:
    """Kills whatever a failed test left in ``path``'s leaves and removes them."""
    for entry in os.scandir(path):
        if entry.is_dir():
            _clear(entry.path)
            try:
                with open(os.path.join(entry.path, "cgroup.kill"), "w") as f:
                    f.write("1")
            except OSError:
                pass
            for _ in range(500):
                try:
                    os.rmdir(entry.path)
                    break
                except OSError:
                    asyncio.run(asyncio.sleep(0.01))


@pytest.fixture
def parent() -> Iterator[str]:
    """A cgroup v2 directory of this test's own; on teardown it must hold no leaf."""
    path, reason = _make_test_dir()
    if path is None:
        pytest.skip(reason)
    try:
        yield path
        assert leaves(path) == [], "a leaf was left behind"
    finally:
        _clear(path)
        os.rmdir(path)


@pytest.fixture
def pins() -> Iterator[Pinned]:
    pinned = Pinned()
    yield pinned
    pinned.close()


def leaves(path: str) -> list[str]:
    return sorted(entry.name for entry in os.scandir(path) if entry.is_dir())


def cgroup_of(pid: int) -> str:
    """The process's cgroup v2 path, from /proc."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip()
    raise AssertionError(f"{pid} has no cgroup v2 line")


# A child whose daemon (setsid, double-forked: reparented to init at once) prints its pid.
DAEMON = "(setsid sleep {t} >/dev/null & echo $!); "


async def spawn_with_daemon(
    parent: str, pins: Pinned, t: str, then: str = "sleep {t}", **options: Any
) -> tuple[fastspawn.Process, int]:
    """The child (``then`` after starting the daemon) and the daemon's pid, pinned, once it
    has left the child's subtree."""
    proc = await fastspawn.create_subprocess_shell((DAEMON + then).format(t=t), stdout=PIPE, cgroup=parent, **options)
    assert proc.stdout is not None
    daemon = int(await proc.stdout.readline())
    pins.pin([daemon])
    wait_exec([daemon])
    await wait_orphaned(daemon, proc.pid)
    assert proc.cgroup is not None
    assert cgroup_of(daemon).endswith("/" + os.path.basename(proc.cgroup.path))
    assert daemon in proc.cgroup.pids()
    return proc, daemon


def check_clean(t: str, before: set[int]) -> None:
    """Nothing left: no process with the token, no zombie, no descriptor."""
    assert wait_none_with_arg(t) == []
    assert zombie_children() == []
    assert open_fds() == before


# -- reaching every descendant -------------------------------------------------------------


def test_kill_tree_reaches_a_double_forked_daemon(fs: Impl, parent: str, pins: Pinned) -> None:
    t = token()

    async def main() -> None:
        proc, daemon = await spawn_with_daemon(parent, pins, t)
        assert proc.cgroup is not None
        path = proc.cgroup.path
        assert os.path.dirname(path) == parent
        assert os.path.basename(path).startswith(f"fastspawn-{os.getpid()}-")
        assert cgroup_of(proc.pid).endswith("/" + os.path.basename(path))
        # The walk alone cannot reach it (tests/test_tree.py); the cgroup does.
        reached = proc.kill_tree()
        assert {proc.pid, daemon} <= reached
        assert await proc.wait() == -signal.SIGKILL
        assert pins.wait_exited([daemon]) == []
        await proc.aclose()
        assert proc.cgroup.removed and not os.path.exists(path)

    before = open_fds()
    fs.run(main())
    pins.close()
    check_clean(t, before)


def test_async_with_ends_a_double_forked_daemon(fs: Impl, parent: str, pins: Pinned) -> None:
    t = token()

    async def main() -> None:
        proc, daemon = await spawn_with_daemon(parent, pins, t)
        assert proc.cgroup is not None
        path = proc.cgroup.path
        async with proc:
            pass
        # SIGTERM (the grace period was not needed) reached both.
        assert proc.returncode == -signal.SIGTERM
        assert pins.wait_exited([daemon]) == []
        assert not os.path.exists(path)

    before = open_fds()
    fs.run(main())
    pins.close()
    check_clean(t, before)


def test_a_daemon_that_ignores_sigterm_is_killed_after_the_grace(fs: Impl, parent: str, pins: Pinned) -> None:
    t = token()
    daemon_script = "(setsid sh -c 'trap \"\" TERM; exec sleep {t}' >/dev/null & echo $!); sleep {t}"

    async def main() -> None:
        proc = await fastspawn.create_subprocess_shell(daemon_script.format(t=t), stdout=PIPE, cgroup=parent)
        assert proc.stdout is not None and proc.cgroup is not None
        daemon = int(await proc.stdout.readline())
        pins.pin([daemon])
        wait_exec([daemon])
        path = proc.cgroup.path
        await proc.aclose(grace=0.3)
        assert pins.wait_exited([daemon]) == []
        assert not os.path.exists(path)

    before = open_fds()
    fs.run(main())
    pins.close()
    check_clean(t, before)


@pytest.mark.parametrize("how", ["kill_tree", "terminate_tree", "SIGUSR1", "aclose"])
def test_descendants_are_reached_after_the_child_was_reaped(fs: Impl, parent: str, pins: Pinned, how: str) -> None:
    """The child exits at once and is reaped, nothing was ever pinned: only the cgroup
    still knows the daemon."""
    t = token()

    async def main() -> None:
        proc, daemon = await spawn_with_daemon(parent, pins, t, then="exit 0")
        assert await proc.wait() == 0
        assert proc.cgroup is not None
        path = proc.cgroup.path
        assert proc.cgroup.pids() == [daemon] and proc.cgroup.populated()
        if how == "aclose":
            assert await proc.aclose() == 0
        else:
            send = {
                "kill_tree": proc.kill_tree,
                "terminate_tree": proc.terminate_tree,
                "SIGUSR1": lambda: proc.send_signal_tree(signal.SIGUSR1),
            }[how]
            assert send() == {daemon}
            assert pins.wait_exited([daemon]) == []
            assert await proc.aclose() == 0
        assert pins.wait_exited([daemon]) == []
        assert not os.path.exists(path)
        # Nothing left to reach.
        assert proc.kill_tree() == frozenset()

    before = open_fds()
    fs.run(main())
    pins.close()
    check_clean(t, before)


COUNTER = """\
who=$1; n=0
trap 'n=$((n+1)); echo $who$n' USR1
echo ${who}ready
while :; do sleep %s & wait $!; done
"""


def test_other_signals_reach_each_process_once(fs: Impl, parent: str, tmp_path: pathlib.Path) -> None:
    """The child's pidfd reaches the child, the cgroup the daemon; each counts the
    SIGUSR1s it gets: one each (the cgroup skips what the walk reached)."""
    t = token()
    script = tmp_path / "counter.sh"
    script.write_text(COUNTER % t)

    async def main() -> None:
        proc = await fastspawn.create_subprocess_shell(
            f"(setsid sh {script} d &); exec sh {script} c", stdout=PIPE, cgroup=parent
        )
        assert proc.stdout is not None

        async def lines_until(wanted: set[bytes]) -> None:
            while wanted:
                wanted.discard((await asyncio.wait_for(proc.stdout.readline(), 5)).strip())  # type: ignore[union-attr]

        await lines_until({b"cready", b"dready"})
        reached = proc.send_signal_tree(signal.SIGUSR1)
        assert proc.pid in reached and len(reached) >= 3
        await lines_until({b"c1", b"d1"})
        with pytest.raises(asyncio.TimeoutError):
            print(await asyncio.wait_for(proc.stdout.readline(), 0.3))
        await proc.aclose(grace=0)

    before = open_fds()
    fs.run(main())
    check_clean(t, before)


# -- run_process and install() --------------------------------------------------------------


def test_run_process_timeout_kills_a_daemon(fs: Impl, parent: str, pins: Pinned) -> None:
    t = token()

    async def main() -> None:
        with pytest.raises(subprocess.TimeoutExpired) as raised:
            await fastspawn.run_process((DAEMON + "sleep {t}").format(t=t), cgroup=parent, timeout=0.5, grace=0.5)
        daemon = int(raised.value.output)
        assert daemon not in pids_with_arg(t)

    before = open_fds()
    fs.run(main())
    check_clean(t, before)


def test_run_process_leaves_no_leaf(fs: Impl, parent: str) -> None:
    async def main() -> None:
        result = await fastspawn.run_process(["sh", "-c", "cat /proc/self/cgroup"], cgroup=pathlib.Path(parent))
        assert result.returncode == 0
        (line,) = [x for x in result.stdout.decode().splitlines() if x.startswith("0::")]
        assert re.fullmatch(rf"0::.*/{re.escape(os.path.basename(parent))}/fastspawn-{os.getpid()}-\d+", line)

    fs.run(main())


def test_through_install(installed: None, parent: str, pins: Pinned) -> None:
    """``asyncio.create_subprocess_*`` take it too; the core's child has the leaf."""
    t = token()

    async def main() -> None:
        proc = await asyncio.create_subprocess_shell((DAEMON + "exit 0").format(t=t), stdout=PIPE, cgroup=parent)
        assert proc.stdout is not None
        daemon = int(await proc.stdout.readline())
        pins.pin([daemon])
        assert await proc.wait() == 0
        child = proc._transport.get_extra_info("subprocess")  # type: ignore[attr-defined]
        cgroup = child.cgroup
        assert cgroup is not None and cgroup.pids() == [daemon]
        assert cgroup.kill() == [daemon]
        assert pins.wait_exited([daemon]) == []
        await proc.communicate()
        # asyncio's Process has no aclose(): the leaf goes when its transport closes empty
        # or, if it closed while the daemon ran, with the core object (the fixture checks).

    before = open_fds()
    asyncio.run(main())
    gc.collect()
    pins.close()
    check_clean(t, before)


def test_an_empty_leaf_is_removed_when_the_transport_closes(fs: Impl, parent: str) -> None:
    """asyncio's Process closes its transport itself once the child exited and its pipes
    closed: the empty leaf goes then, without aclose()."""

    async def main() -> None:
        proc = await fastspawn.create_subprocess_exec("true", stdout=PIPE, cgroup=parent)
        assert proc.cgroup is not None
        path = proc.cgroup.path
        assert os.path.isdir(path)
        assert await proc.stdout.read() == b""  # type: ignore[union-attr]
        assert await proc.wait() == 0
        for _ in range(100):
            if proc._transport.is_closing():  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.01)
        assert proc.cgroup.removed and not os.path.exists(path)

    fs.run(main())


def test_a_populated_leaf_is_left_when_the_transport_closes(fs: Impl, parent: str, pins: Pinned) -> None:
    """Documented: without a tree ending (aclose, async with), a transport closed while
    the daemon runs leaves the daemon and its leaf."""
    t = token()
    left: list[tuple[str, int]] = []

    async def main() -> None:
        proc, daemon = await spawn_with_daemon(parent, pins, t, then="exit 0")
        await proc.wait()
        assert proc.cgroup is not None
        left.append((proc.cgroup.path, daemon))
        proc._transport.close()  # type: ignore[attr-defined]

    fs.run(main())
    gc.collect()
    ((path, daemon),) = left
    assert leaves(parent) == [os.path.basename(path)]
    assert pins.wait_exited([daemon], 0.2) == [daemon]
    pins.close()
    assert wait_none_with_arg(t) == []
    os.rmdir(path)


# -- refused -----------------------------------------------------------------------------


def test_refused_with_preexec_fn(parent: str) -> None:
    with pytest.raises(TypeError, match=r"cgroup= cannot be honoured.*because of preexec_fn="):
        asyncio.run(fastspawn.create_subprocess_exec("true", preexec_fn=lambda: None, cgroup=parent))


def test_refused_when_popen_is_replaced(parent: str) -> None:
    with mock.patch("subprocess.Popen", side_effect=AssertionError("Popen called")):
        with pytest.raises(TypeError, match=r"cgroup= cannot be honoured.*subprocess\.Popen is replaced"):
            asyncio.run(fastspawn.create_subprocess_exec("true", cgroup=parent))


def spawn_error(cgroup: Any) -> BaseException:
    async def main() -> None:
        proc = await fastspawn.create_subprocess_exec("true", cgroup=cgroup)
        await proc.wait()

    with pytest.raises(BaseException) as raised:
        asyncio.run(main())
    return raised.value


@pytest.mark.parametrize("kind", ["missing", "file", "not cgroup2", "nul", "int"])
def test_bad_directories_raise_before_spawning(parent: str, tmp_path: pathlib.Path, kind: str) -> None:
    file = tmp_path / "file"
    file.write_text("")
    value: Any = {
        "missing": os.path.join(parent, "no", "such"),
        "file": file,
        "not cgroup2": str(tmp_path),
        "nul": parent + "\0x",
        "int": 5,
    }[kind]
    before, tmp_before = open_fds(), sorted(os.listdir(tmp_path))
    exc = spawn_error(value)
    expected: tuple[type[BaseException], Optional[int]] = {
        "missing": (FileNotFoundError, errno.ENOENT),
        "file": (NotADirectoryError, errno.ENOTDIR),
        "not cgroup2": (OSError, errno.ENOTSUP),
        "nul": (ValueError, None),
        "int": (TypeError, None),
    }[kind]
    assert type(exc) is expected[0], exc
    if isinstance(exc, OSError):
        assert exc.errno == expected[1]
        assert exc.filename is value  # as given: str or PathLike
    assert open_fds() == before
    assert sorted(os.listdir(tmp_path)) == tmp_before
    assert zombie_children() == []


def test_a_failed_join_is_reported_from_the_child_with_its_step(parent: str) -> None:
    """A threaded cgroup takes no process: the child's write to its leaf's cgroup.procs
    fails (EOPNOTSUPP), reported with a note naming the step; the leaf is removed."""
    threaded = os.path.join(parent, "threaded")
    os.mkdir(threaded)
    try:
        with open(os.path.join(threaded, "cgroup.type"), "w") as f:
            f.write("threaded")
        before = open_fds()
        exc = spawn_error(threaded)
        assert isinstance(exc, OSError) and (exc.errno, exc.filename) == (errno.EOPNOTSUPP, threaded)
        assert exc.__notes__ == ["in the child: joining its leaf cgroup (writing to cgroup.procs)"]
        assert leaves(threaded) == [] and open_fds() == before and zombie_children() == []
    finally:
        os.rmdir(threaded)


def test_no_leaf_allowed_is_the_mkdir_error(parent: str) -> None:
    """cgroup.max.descendants reached: mkdir's EAGAIN (BlockingIOError), as os.mkdir
    would raise it, before spawning."""
    full = os.path.join(parent, "full")
    os.mkdir(full)
    try:
        with open(os.path.join(full, "cgroup.max.descendants"), "w") as f:
            f.write("0")
        exc = spawn_error(pathlib.Path(full))
        assert isinstance(exc, BlockingIOError) and exc.filename == pathlib.Path(full)
        assert leaves(full) == []
    finally:
        os.rmdir(full)


def test_a_failed_exec_leaves_no_leaf(parent: str) -> None:
    exc = spawn_error_program("/no/such/program", parent)
    assert isinstance(exc, FileNotFoundError) and exc.filename == "/no/such/program"


def spawn_error_program(program: str, cgroup: str) -> BaseException:
    with pytest.raises(BaseException) as raised:
        asyncio.run(fastspawn.create_subprocess_exec(program, cgroup=cgroup))
    return raised.value


# Drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from this thread's effective set (root
# then obeys file modes), then spawns into argv[1], printing the error.
WITHOUT_DAC_OVERRIDE = textwrap.dedent(
    """\
    import asyncio, ctypes, sys
    import fastspawn

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    libc = ctypes.CDLL(None, use_errno=True)
    header, data = Header(0x20080522, 0), (Data * 2)()
    assert libc.capget(ctypes.byref(header), data) == 0
    data[0].effective &= ~((1 << 1) | (1 << 2))
    assert libc.capset(ctypes.byref(header), data) == 0

    async def main():
        await fastspawn.create_subprocess_exec("true", cgroup=sys.argv[1])

    try:
        asyncio.run(main())
    except OSError as exc:
        print(type(exc).__name__, exc.errno, exc.filename)
    """
)


def test_a_directory_that_is_not_writable_raises_permission_error(parent: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("drops root's capabilities: needs root")
    read_only = os.path.join(parent, "read-only")
    os.mkdir(read_only)
    os.chmod(read_only, 0o555)
    try:
        out = subprocess.run(
            [sys.executable, "-c", WITHOUT_DAC_OVERRIDE, read_only], capture_output=True, text=True, timeout=60
        )
        assert out.stdout.split() == ["PermissionError", str(errno.EACCES), read_only], out.stderr
        assert leaves(read_only) == []
    finally:
        os.rmdir(read_only)


@pytest.mark.parametrize(
    ("cgroup", "errno_"),
    [
        (b"", errno.ENOENT),
        (b"/", errno.ENOTSUP),
        (b"/proc", errno.ENOTSUP),
        (b"/x" * 4096, errno.ENAMETOOLONG),
        ("cgroup.procs", errno.ENOTDIR),  # a file of the cgroup hierarchy
    ],
)
def test_the_core_refuses_any_directory_it_cannot_use(parent: str, cgroup: Any, errno_: int) -> None:
    """``_core.spawn`` driven directly: the failing call's errno, named after
    ``cgroup_name``, nothing spawned, no descriptor kept."""
    from test_core_contract import request

    if isinstance(cgroup, str):
        cgroup = os.fsencode(os.path.join(parent, cgroup))
    before = open_fds()
    with pytest.raises(OSError) as raised:
        _core.spawn(request(cgroup=cgroup, cgroup_name="the name"))
    assert (raised.value.errno, raised.value.filename) == (errno_, "the name")
    assert open_fds() == before
    assert zombie_children() == []


def test_a_discarded_spawn_takes_its_leaf_along(parent: str) -> None:
    """A spawn whose caller was cancelled meanwhile (``_spawner._discard``): the child,
    what it already forked (in its leaf), and the leaf are gone before it returns."""
    from test_core_contract import request

    from fastspawn import _spawner

    t = token()
    before = open_fds()
    spawned = _core.spawn(request(f"(setsid sleep {t} >/dev/null &); sleep {t}", stdout=None, cgroup=parent.encode()))
    assert spawned is not None and spawned[0].cgroup is not None
    cgroup = spawned[0].cgroup
    while len(cgroup.pids()) < 3:
        asyncio.run(asyncio.sleep(0.005))
    _spawner._discard(spawned)
    assert cgroup.removed and leaves(parent) == []
    del spawned, cgroup
    check_clean(t, before)


def test_the_core_child_without_a_cgroup(fs: Impl) -> None:
    async def main() -> None:
        proc = await fastspawn.create_subprocess_exec("true")
        assert proc.cgroup is None
        await proc.wait()

    fs.run(main())


def test_cgroup_object_after_removal(fs: Impl, parent: str) -> None:
    async def main() -> None:
        proc = await fastspawn.create_subprocess_exec("true", cgroup=os.fsencode(parent))
        await proc.aclose()
        cgroup = proc.cgroup
        assert cgroup is not None and cgroup.removed
        assert cgroup.pids() == [] and not cgroup.populated()
        assert cgroup.kill() == [] and cgroup.signal(signal.SIGTERM) == []
        assert cgroup.remove() is True
        assert "removed" in repr(cgroup)

    fs.run(main())
