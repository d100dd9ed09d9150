"""Where a native spawn runs: on the loop's thread, or on a spawner thread.

``posix_spawn`` and the core's ``clone(CLONE_VM|CLONE_VFORK)`` path suspend the spawning
thread until the child has exec'd. That is microseconds normally, but an exec can be slow:
a large binary on a cold or network filesystem, or a security agent that vets every exec
(fanotify permission events). Spawned on the event loop's thread, such a child freezes every
other task for as long (asyncio's ``Popen`` does the same: cpython#146181).

So when the loop has other tasks, the spawn runs on a spawner thread (the core releases the
GIL while it spawns) and the loop goes on; the task that asked awaits the result. When the
caller is the loop's only task, nobody can be kept waiting and a thread hop would only add
latency, so the spawn runs inline, as before. Bench workload 10 measures the loop's worst
stall either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

from . import _core
from ._options import NativeSpawn

__all__ = ["spawn_native"]

# Spawns that wait for a slow exec at the same time, at most; more queue behind them.
SPAWNER_THREADS = 4

_Spawned = tuple[_core.Child, Optional[_core.WritePipe], Optional[_core.ReadPipe], Optional[_core.ReadPipe]]

_lock = threading.Lock()
_pool: Optional[ThreadPoolExecutor] = None


def _spawner_pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(SPAWNER_THREADS, thread_name_prefix="fastspawn-spawner")
        return _pool


def _forget_pool() -> None:
    # The child of a fork has none of the parent's threads: it makes its own pool.
    global _pool, _lock
    _pool = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


# Tasks of one loop that were pending when last looked at (weak references: nothing is
# kept alive), any of which, still pending, proves that loop has another task. See
# _has_other_tasks.
_Witnesses = tuple[weakref.ref[asyncio.AbstractEventLoop], list[weakref.ref[asyncio.Task[Any]]]]
_witnesses: Optional[_Witnesses] = None


def _has_other_tasks(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop`` has a pending task other than the current one.

    ``asyncio.all_tasks(loop)`` answers that, but walks every task of the process: with
    hundreds of tasks waiting (a gather of many spawns under a semaphore) that walk cost
    more than the spawn itself, every spawn (workload 4: 1.1 M of the parent's 1.4 M
    instructions per spawn, 300 tasks). So the other tasks it found are kept, weakly, as
    witnesses, and a witness still pending answers yes at once; a witness found finished,
    or being the current task, is dropped, and only when none is left is ``all_tasks``
    asked again, so each task is looked at a bounded number of times. The answer is the
    same: a witness is checked exactly (pending, not the current task; the list belongs
    to this loop), and "no" always comes from ``all_tasks`` itself."""
    global _witnesses
    current = asyncio.current_task(loop)
    witnesses = _witnesses
    if witnesses is not None and witnesses[0]() is loop:
        candidates = witnesses[1]
        while candidates:
            task = candidates[-1]()
            if task is not None and task is not current and not task.done():
                return True
            # Finished, or the current task: no witness now (all_tasks finds it again
            # should it be one later).
            candidates.pop()
    others = [weakref.ref(task) for task in asyncio.all_tasks(loop) if task is not current]
    _witnesses = (weakref.ref(loop), others) if others else None
    return bool(others)


def _discard(spawned: _Spawned) -> None:
    """A child spawned for a caller that was cancelled meanwhile: killed, reaped (a
    SIGKILLed child exits at once) and its pipes closed, before the cancellation goes on."""
    child, *pipes = spawned
    child.send_signal(signal.SIGKILL)
    child.wait()
    for pipe in pipes:
        if pipe is not None:
            pipe.close()


def _wake(loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[None], _: object) -> None:
    # The spawner thread's "done" to the loop (as wrap_future does it, closed loop included).
    if not loop.is_closed():
        try:
            loop.call_soon_threadsafe(_set_done, waiter)
        except RuntimeError:  # closed meanwhile
            pass


def _set_done(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def spawn_native(loop: asyncio.AbstractEventLoop, request: NativeSpawn) -> Optional[_Spawned]:
    """``_core.spawn(request)``, on a spawner thread when the loop has other tasks; None
    when the core cannot start it natively here."""
    if not _has_other_tasks(loop):
        return _core.spawn(request)
    spawning = _spawner_pool().submit(_core.spawn, request)
    # One loop future, woken from the thread, rather than wrap_future + shield: those cost
    # two more futures, their callbacks and one more loop iteration per spawn.
    waiter: asyncio.Future[None] = loop.create_future()
    spawning.add_done_callback(functools.partial(_wake, loop, waiter))
    try:
        await waiter
    except asyncio.CancelledError:
        # As with a spawn on the loop's thread, which no cancellation can interrupt, the
        # spawn finishes first: then the child, if it started, is ended and nothing of it
        # is left when the cancellation propagates.
        finished = asyncio.wrap_future(spawning, loop=loop)
        while not finished.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(finished)
        spawned = None if finished.cancelled() or finished.exception() is not None else finished.result()
        if spawned is not None:
            _discard(spawned)
        raise
    return spawning.result()
