"""A slow exec does not freeze the loop (fastspawn's spawner thread), and cancelling a
spawn that waits for its exec leaves nothing behind.

The slow exec is real: a watcher process holds every exec of a private copy of
``/bin/true`` (fanotify's FAN_OPEN_EXEC_PERM, as exec-vetting security agents do; see
``fastspawn.bench.exec_hold``). That needs root and fanotify permission events, which CI has.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from procs import open_fds, zombie_children

import fastspawn
from conftest import Impl
from fastspawn.bench.exec_hold import held_exec
from fastspawn.bench.loops import CheckError

HOLD = 0.3


@pytest.fixture(scope="module")
def held_program() -> Iterator[str]:
    try:
        with held_exec(HOLD) as program:
            yield program
    except CheckError as exc:
        pytest.skip(f"no fanotify exec permission events here: {exc}")


async def ticks_while(work: asyncio.Future[object]) -> int:
    """How many times a 1 ms ticker on the loop ran while ``work`` ran."""
    ticks = 0
    while not work.done():
        await asyncio.sleep(0.001)
        ticks += 1
    return ticks


def test_a_slow_exec_freezes_only_stock_asyncio(impl: Impl, held_program: str) -> None:
    # Counted, not timed: while the exec is held for HOLD (0.3 s), a loop that goes on runs
    # the ticker dozens of times even on a loaded machine; a loop frozen in the spawn runs
    # it only before the spawn starts and in the few iterations after it returns.
    async def main() -> tuple[int, int]:
        async def spawn() -> object:
            return await asyncio.create_subprocess_exec(held_program)

        work = asyncio.ensure_future(spawn())
        ticks = await ticks_while(work)
        proc = work.result()
        assert isinstance(proc, asyncio.subprocess.Process)
        return ticks, await proc.wait()

    ticks, code = impl.run(main())
    assert code == 0
    if impl.is_fastspawn:
        # The spawn waited on the spawner thread; the ticker kept running.
        assert ticks >= 20, ticks
    else:
        # asyncio's Popen waits for the exec on the loop's thread (cpython#146181).
        assert ticks <= 5, ticks


def test_cancelled_while_the_exec_is_held_leaves_nothing(impl: Impl, held_program: str) -> None:
    async def main() -> None:
        task = asyncio.ensure_future(asyncio.create_subprocess_exec(held_program))
        await asyncio.sleep(HOLD / 3)
        task.cancel()
        try:
            proc = await task
        except asyncio.CancelledError:
            return
        # Stock asyncio cannot be interrupted inside its spawn: the process comes back.
        assert not impl.is_fastspawn
        await proc.wait()

    before = open_fds()
    impl.run(main())
    assert open_fds() == before
    assert zombie_children() == []


def test_other_tasks_are_seen_as_all_tasks_sees_them() -> None:
    """The spawner's check for other tasks (witnesses kept between spawns) answers as
    ``asyncio.all_tasks`` does, as tasks finish, become current, or belong to another loop."""
    from fastspawn._spawner import _has_other_tasks

    def truth(loop: asyncio.AbstractEventLoop) -> bool:
        current = asyncio.current_task(loop)
        return any(task is not current for task in asyncio.all_tasks(loop))

    async def other_loop() -> bool:
        return _has_other_tasks(asyncio.get_running_loop())

    async def main() -> list[tuple[bool, bool]]:
        loop = asyncio.get_running_loop()
        answers = [(_has_other_tasks(loop), truth(loop))]
        events = [asyncio.Event() for _ in range(6)]
        waiting = [asyncio.ensure_future(event.wait()) for event in events]
        await asyncio.sleep(0)

        async def ask() -> None:
            answers.append((_has_other_tasks(loop), truth(loop)))

        for event, task in zip(events, waiting, strict=True):
            answers.append((_has_other_tasks(loop), truth(loop)))
            await asyncio.ensure_future(ask())  # from another task, this one waiting
            # Another loop, in another thread, with one task: its own answer.
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                answers.append((pool.submit(asyncio.run, other_loop()).result(), False))
            event.set()
            await task
        answers.append((_has_other_tasks(loop), truth(loop)))
        return answers

    answers = asyncio.run(main())
    assert answers[0] == (False, False)
    assert answers[-1] == (False, False)
    assert len(answers) == 2 + 6 * 3
    assert all(seen == truth for seen, truth in answers)


def test_the_task_registry_read_directly_lists_what_all_tasks_lists() -> None:
    """``_private.tasks.other_tasks``: asyncio's registry read without ``all_tasks``, on
    the versions whose registry it knows (eager tasks included from 3.12), else None."""
    import sys

    from fastspawn._private.tasks import REGISTRY, other_tasks

    async def main() -> list[tuple[Any, set[Any]]]:
        loop = asyncio.get_running_loop()
        current = asyncio.current_task()
        seen = [(other_tasks(loop, current), asyncio.all_tasks(loop) - {current})]
        event = asyncio.Event()
        waiting = [asyncio.ensure_future(event.wait()) for _ in range(5)]
        await asyncio.sleep(0)
        seen.append((other_tasks(loop, current), asyncio.all_tasks(loop) - {current}))
        if sys.version_info >= (3, 12):
            # An eager task running its first step: the other tasks it sees.
            async def eager() -> None:
                me = asyncio.current_task()
                seen.append((other_tasks(loop, me), asyncio.all_tasks(loop) - {me}))

            factory = loop.get_task_factory()
            loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]
            try:
                await asyncio.ensure_future(eager())
            finally:
                loop.set_task_factory(factory)
        event.set()
        await asyncio.gather(*waiting)
        seen.append((other_tasks(loop, current), asyncio.all_tasks(loop) - {current}))
        return seen

    seen = asyncio.run(main())
    known = sys.version_info[:2] in REGISTRY and sys.implementation.name == "cpython"
    for found, expected in seen:
        if known:
            assert found is not None and set(found) == expected
        else:
            assert found is None
    assert [len(expected) for _, expected in seen][:2] == [0, 5]


class _Refusing:
    """A child whose signal and wait fail (EPERM: a child under another uid without
    CAP_KILL), with a leaf that cannot be killed either."""

    def __init__(self) -> None:
        self.cgroup = self

    def send_signal(self, sig: int) -> bool:
        raise PermissionError(1, "Operation not permitted")

    def kill(self) -> list[int]:
        raise PermissionError(1, "Operation not permitted")

    def wait(self, timeout: float | None = None) -> int | None:
        raise ChildProcessError(10, "No child processes")

    def remove(self) -> bool:
        raise OSError(16, "Device or resource busy")


def test_discarding_a_child_that_refuses_everything_still_closes_its_pipes() -> None:
    from fastspawn import _core, _spawner

    r, w = os.pipe()
    pipe = _core.ReadPipe(r)
    _spawner._discard((_Refusing(), None, pipe, None))  # type: ignore[arg-type]
    assert pipe.closed
    os.close(w)


def test_a_spawner_thread_that_cannot_start_fails_the_spawn(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastspawn import _spawner

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    async def main() -> None:
        other = asyncio.ensure_future(asyncio.sleep(10))  # so the spawn goes to a thread
        try:
            monkeypatch.setattr(_spawner, "_spawner", _spawner._Spawner())
            monkeypatch.setattr(threading.Thread, "start", refuse)
            with pytest.raises(RuntimeError, match="can't start new thread"):
                await fastspawn.create_subprocess_exec("true")
            assert _spawner._spawner.threads == 0
            monkeypatch.undo()
            proc = await fastspawn.create_subprocess_exec("true")
            assert await proc.wait() == 0
        finally:
            other.cancel()

    before = open_fds()
    fastspawn.run(main())
    assert open_fds() == before
    assert zombie_children() == []
