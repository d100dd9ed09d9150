"""``kill_tree``/``terminate_tree``/``send_signal_tree``: which descendants each mechanism
reaches (the child's pidfd, its process group, the walk over /proc), checked from the
outside by pid and pidfd after the fact; that nothing else is ever signalled; and what is
left without /proc or pidfds."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from asyncio.subprocess import DEVNULL, PIPE
from typing import Any

import pytest
from procs import (
    Pinned,
    descends_from,
    open_fds,
    pids_with_arg,
    stat_of,
    token,
    wait_exec,
    wait_none_with_arg,
    wait_orphaned,
    zombie_children,
)

import fastspawn
from conftest import Impl
from fastspawn import _tree


@pytest.fixture
def pins() -> Any:
    pinned = Pinned()
    yield pinned
    pinned.close()


# name: (script, spawn options, orphaned before the signal, reached by kill_tree)
CASES: dict[str, tuple[str, dict[str, Any], bool, bool]] = {
    "background grandchild": ("sleep {t} >/dev/null & echo $!; wait", {}, False, True),
    "background grandchild, own group": ("sleep {t} >/dev/null & echo $!; wait", {"process_group": 0}, False, True),
    "grandchild that called setsid": ("setsid sleep {t} >/dev/null & echo $!; wait", {}, False, True),
    "setsid grandchild, own session": (
        "setsid sleep {t} >/dev/null & echo $!; wait",
        {"start_new_session": True},
        False,
        True,
    ),
    "orphan left in the child's group": (
        "(sleep {t} >/dev/null & echo $!); sleep {t}",
        {"process_group": 0},
        True,
        True,
    ),
    "orphan left in the parent's group": ("(sleep {t} >/dev/null & echo $!); sleep {t}", {}, True, False),
    "double-forked daemon (setsid)": (
        "(setsid sleep {t} >/dev/null & echo $!); sleep {t}",
        {"process_group": 0},
        True,
        False,
    ),
    # A subreaper child adopts the daemon (PR_SET_CHILD_SUBREAPER, clone path): the walk
    # finds it under the child.
    "double-forked daemon, subreaper=True": (
        "(setsid sleep {t} >/dev/null & echo $!); sleep {t}",
        {"subreaper": True},
        False,
        True,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_which_descendants_kill_tree_reaches(fs: Impl, pins: Pinned, case: str) -> None:
    script, options, orphaned, reached_expected = CASES[case]
    t = token()

    async def main() -> None:
        proc = await fastspawn.create_subprocess_shell(script.format(t=t), stdout=PIPE, **options)
        assert proc.stdout is not None
        grandchild = int(await proc.stdout.readline())
        pins.pin([grandchild])
        wait_exec([grandchild])  # past setsid, where there is one
        if orphaned:
            await wait_orphaned(grandchild, proc.pid)
        else:
            assert descends_from(grandchild, proc.pid)
        reached = proc.kill_tree()
        assert await proc.wait() == -signal.SIGKILL
        assert proc.pid in reached
        if reached_expected:
            assert grandchild in reached
            assert pins.wait_exited([grandchild]) == []
        else:
            # Documented: it escapes (reparented to init, outside the group).
            assert grandchild not in reached
            assert pins.wait_exited([grandchild], 0.3) == [grandchild]
        await proc.aclose()

    before = open_fds()
    fs.run(main())
    pins.close()
    assert wait_none_with_arg(t) == []
    assert open_fds() == before
    assert zombie_children() == []


def test_a_grandchild_that_ignores_sigterm_is_killed_after_the_child_was_reaped(fs: Impl, pins: Pinned) -> None:
    t = token()
    script = f"(trap '' TERM; exec sleep {t}) >/dev/null & echo $!; wait"

    async def main() -> None:
        proc = await fastspawn.create_subprocess_shell(script, stdout=PIPE)
        assert proc.stdout is not None
        grandchild = int(await proc.stdout.readline())
        pins.pin([grandchild])
        wait_exec([grandchild])  # past the trap
        assert grandchild in proc.terminate_tree()
        assert await proc.wait() == -signal.SIGTERM
        # It ignores SIGTERM, and was continued after the freeze: running, not stopped.
        assert pins.wait_exited([grandchild], 0.3) == [grandchild]
        stat = stat_of(grandchild)
        assert stat is not None and stat[0] in "SR"
        # The child is reaped; the grandchild, pinned by terminate_tree, is still reached.
        assert proc.kill_tree() == {grandchild}
        assert pins.wait_exited([grandchild]) == []
        assert proc.kill_tree() == frozenset()
        await proc.aclose()

    fs.run(main())
    assert wait_none_with_arg(t) == []
    assert zombie_children() == []


def test_children_forked_during_the_walk_are_reached(fs: Impl) -> None:
    t = token()
    script = f"i=0; while [ $i -lt 300 ]; do sleep {t} >/dev/null & i=$((i+1)); done; wait"

    async def main() -> None:
        proc = await fastspawn.create_subprocess_shell(script)
        while len(pids_with_arg(t)) < 20:
            await asyncio.sleep(0.005)
        # The shell is still forking: freeze, walk, kill.
        reached = proc.kill_tree()
        assert await proc.wait() == -signal.SIGKILL
        assert len(reached) > 20

    fs.run(main())
    assert wait_none_with_arg(t) == []
    assert zombie_children() == []


def test_other_signals_reach_the_tree_without_freezing(fs: Impl, pins: Pinned) -> None:
    t = token()

    async def main() -> None:
        proc = await fastspawn.create_subprocess_shell(
            f"sleep {t} >/dev/null & echo $!; setsid sleep {t} >/dev/null & echo $!; wait", stdout=PIPE
        )
        assert proc.stdout is not None
        kids = [int(await proc.stdout.readline()) for _ in range(2)]
        pins.pin(kids)
        wait_exec(kids)
        assert set(kids) | {proc.pid} <= proc.send_signal_tree(signal.SIGUSR1)
        assert await proc.wait() == -signal.SIGUSR1
        assert pins.wait_exited(kids) == []
        await proc.aclose()

    fs.run(main())
    assert zombie_children() == []


def test_never_a_process_outside_the_tree(fs: Impl, pins: Pinned, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sibling survives; and a process that /proc (as if read before a pid was reused)
    shows under the child, but is not there when read again after pinning, is left
    alone."""
    t = token()
    real_scan = _tree.scan

    async def main() -> None:
        sibling = await fastspawn.create_subprocess_exec("sleep", t)
        stranger = await fastspawn.create_subprocess_exec("sleep", t)
        pins.pin([sibling.pid, stranger.pid])
        proc = await fastspawn.create_subprocess_shell(f"sleep {t} & wait")
        lied_about = []

        def lying_scan() -> dict[int, _tree.Stat]:
            found = real_scan()
            true = found[stranger.pid]
            # Once as the child's child with the stranger's own start time, once with the
            # right parent but another start time (a reused pid).
            lie = true._replace(ppid=proc.pid) if not lied_about else true._replace(starttime=true.starttime + 1)
            lied_about.append(lie)
            found[stranger.pid] = lie
            return found

        monkeypatch.setattr(_tree, "scan", lying_scan)
        reached = proc.kill_tree()
        assert lied_about
        assert stranger.pid not in reached and sibling.pid not in reached
        assert await proc.wait() == -signal.SIGKILL
        assert pins.wait_exited([sibling.pid, stranger.pid], 0.3) == [sibling.pid, stranger.pid]
        for p in (sibling, stranger):
            p.kill()
            await p.wait()
        await proc.aclose()

    fs.run(main())
    assert zombie_children() == []


@pytest.mark.parametrize("without", ["/proc", "pidfds"])
def test_without_proc_or_pidfds_the_child_and_its_group_are_still_reached(
    fs: Impl, pins: Pinned, monkeypatch: pytest.MonkeyPatch, without: str
) -> None:
    if without == "/proc":
        monkeypatch.setattr(_tree, "PROC", "/nonexistent")
    else:
        monkeypatch.setattr(_tree, "_pidfd_state", False)
    t = token()
    script = f"sleep {t} >/dev/null & echo $!; setsid sleep {t} >/dev/null & echo $!; wait"

    async def main() -> None:
        proc = await fastspawn.create_subprocess_shell(script, stdout=PIPE, process_group=0)
        assert proc.stdout is not None
        in_group, in_session = [int(await proc.stdout.readline()) for _ in range(2)]
        pins.pin([in_group, in_session])
        wait_exec([in_group, in_session])
        assert proc.kill_tree() == {proc.pid}
        assert await proc.wait() == -signal.SIGKILL
        assert pins.wait_exited([in_group]) == []  # killpg
        assert pins.wait_exited([in_session], 0.3) == [in_session]  # needs the walk
        await proc.aclose()

    fs.run(main())
    pins.close()
    assert wait_none_with_arg(t) == []
    assert zombie_children() == []


def test_tree_signals_after_the_end_do_nothing(fs: Impl) -> None:
    async def main() -> None:
        proc = await fastspawn.create_subprocess_exec("true", stdout=DEVNULL)
        assert await proc.wait() == 0
        for send in (proc.kill_tree, proc.terminate_tree, lambda: proc.send_signal_tree(signal.SIGUSR1)):
            assert send() == frozenset()
        assert await proc.aclose() == 0
        assert proc.kill_tree() == frozenset()

    fs.run(main())


# -- a child that leads its group and exits at once ------------------------------------------

# `sh -c 'server &'`: the shell exits at once and leaves the server in its group. The group
# id is the shell's pid, so the shell's zombie is kept (with pidfds) until the process is
# closed or dropped: killpg stays safe and reaches the server. start_new_session takes the
# posix_spawn path, process_group=0 the clone path.
LEAVES_ORPHAN = "sleep {t} >/dev/null & echo $!"
GROUP_LEADERS = [{"process_group": 0}, {"start_new_session": True}]


@pytest.mark.parametrize("options", GROUP_LEADERS, ids=["process_group=0", "start_new_session"])
def test_the_group_of_a_child_that_exited_is_still_reached(fs: Impl, pins: Pinned, options: dict[str, Any]) -> None:
    t = token()
    kept = fastspawn.features().pidfd

    async def main() -> None:
        proc = await fastspawn.create_subprocess_shell(LEAVES_ORPHAN.format(t=t), stdout=PIPE, **options)
        assert proc.stdout is not None
        orphan = int(await proc.stdout.readline())
        pins.pin([orphan])
        wait_exec([orphan])
        assert await proc.wait() == 0
        await wait_orphaned(orphan, proc.pid)
        stat = stat_of(proc.pid)
        if not kept:
            # The fallback reaper reaps on its own thread: the group is lost with the pid.
            assert stat is None or stat[0] != "Z"
            assert proc.kill_tree() == frozenset()
            assert pins.wait_exited([orphan], 0.3) == [orphan]
            return  # pins.close() kills it
        assert stat is not None and stat[0] == "Z"  # kept for its group
        assert proc.returncode == 0
        assert orphan in proc.kill_tree()
        assert pins.wait_exited([orphan]) == []
        await proc.aclose()
        assert stat_of(proc.pid) is None  # reaped by aclose

    fs.run(main())
    pins.close()
    assert wait_none_with_arg(t) == []
    assert zombie_children() == []


@pytest.mark.parametrize("options", GROUP_LEADERS, ids=["process_group=0", "start_new_session"])
def test_async_with_ends_what_a_child_that_exited_left_in_its_group(
    fs: Impl, pins: Pinned, options: dict[str, Any]
) -> None:
    t = token()

    async def main() -> int:
        async with await fastspawn.create_subprocess_shell(LEAVES_ORPHAN.format(t=t), stdout=PIPE, **options) as proc:
            assert proc.stdout is not None
            orphan = int(await proc.stdout.readline())
            pins.pin([orphan])
            wait_exec([orphan])
            assert await proc.wait() == 0
        assert stat_of(proc.pid) is None
        return orphan

    before = open_fds()
    orphan = fs.run(main())
    if fastspawn.features().pidfd:
        assert pins.wait_exited([orphan]) == []
    else:
        # The fallback reaper reaps the child, and its group id with it: documented escape.
        assert pins.wait_exited([orphan], 0.3) == [orphan]
    pins.close()
    assert open_fds() == before
    assert wait_none_with_arg(t) == []
    assert zombie_children() == []


def test_a_kept_zombie_is_reaped_when_the_process_is_dropped(fs: Impl) -> None:
    async def main() -> int:
        proc = await fastspawn.create_subprocess_exec("true", process_group=0)
        assert await proc.wait() == 0
        assert proc.returncode == 0
        pid = proc.pid
        kept = stat_of(pid)
        assert (kept is not None and kept[0] == "Z") == fastspawn.features().pidfd
        del proc
        return pid

    pid = fs.run(main())
    gc.collect()
    assert stat_of(pid) is None
    assert zombie_children() == []


def test_a_child_in_the_parents_group_is_reaped_at_its_exit(fs: Impl) -> None:
    async def main() -> None:
        proc = await fastspawn.create_subprocess_exec("true")
        assert await proc.wait() == 0
        assert stat_of(proc.pid) is None
        assert zombie_children() == []

    fs.run(main())


def test_a_kept_zombie_reaped_by_another_reaper_is_let_go(fs: Impl) -> None:
    async def main() -> None:
        proc = await fastspawn.create_subprocess_exec("true", process_group=0)
        assert await proc.wait() == 0
        if fastspawn.features().pidfd:
            # Someone else's waitpid takes it: from then on its pid may be anyone's, so
            # neither the group nor the walk may use it.
            assert os.waitpid(proc.pid, os.WNOHANG) == (proc.pid, 0)
        assert proc.kill_tree() == frozenset()
        assert await proc.aclose() == 0
        assert proc.returncode == 0

    fs.run(main())
    assert zombie_children() == []
