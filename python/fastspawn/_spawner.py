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
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

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


def _has_other_tasks(loop: asyncio.AbstractEventLoop) -> bool:
    current = asyncio.current_task(loop)
    return any(task is not current for task in asyncio.all_tasks(loop))


def _discard(spawned: _Spawned) -> None:
    """A child spawned for a caller that was cancelled meanwhile: killed (with whatever it
    forked into its leaf cgroup, if it has one), reaped (a SIGKILLed child exits at once)
    and its pipes closed, before the cancellation goes on; the leaf is removed once empty
    (waiting up to a second)."""
    child, *pipes = spawned
    child.send_signal(signal.SIGKILL)
    cgroup = child.cgroup
    if cgroup is not None:
        cgroup.kill()
    child.wait()
    if cgroup is not None:
        deadline = time.monotonic() + 1.0
        while not cgroup.remove() and time.monotonic() < deadline:
            time.sleep(0.001)
    for pipe in pipes:
        if pipe is not None:
            pipe.close()


async def spawn_native(loop: asyncio.AbstractEventLoop, request: NativeSpawn) -> Optional[_Spawned]:
    """``_core.spawn(request)``, on a spawner thread when the loop has other tasks; None
    when the core cannot start it natively here."""
    if not _has_other_tasks(loop):
        return _core.spawn(request)
    spawning = asyncio.wrap_future(_spawner_pool().submit(_core.spawn, request), loop=loop)
    try:
        return await asyncio.shield(spawning)
    except asyncio.CancelledError:
        # As with a spawn on the loop's thread, which no cancellation can interrupt, the
        # spawn finishes first: then the child, if it started, is ended and nothing of it
        # is left when the cancellation propagates.
        while not spawning.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(spawning)
        spawned = None if spawning.cancelled() or spawning.exception() is not None else spawning.result()
        if spawned is not None:
            _discard(spawned)
        raise
