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
import queue
import signal
import threading
import time
import weakref
from typing import Any, Optional

from . import _core
from ._options import NativeSpawn
from ._private.tasks import other_tasks

__all__ = ["spawn_native"]

# Spawns that wait for a slow exec at the same time, at most; more queue behind them.
SPAWNER_THREADS = 4
# How long a discarded child (its caller was cancelled during the spawn) is waited for
# after SIGKILL, and its leaf cgroup for emptying, on the loop's thread.
DISCARD_WAIT = 1.0

_Spawned = tuple[_core.Child, Optional[_core.WritePipe], Optional[_core.ReadPipe], Optional[_core.ReadPipe]]


def _spawn_catching(request: NativeSpawn) -> tuple[Optional[_Spawned], Optional[BaseException]]:
    # A frame of its own, without the job: an error's traceback keeps this frame, which
    # must not keep the job that keeps the error (concurrent.futures' work items clear
    # their self for the same reason).
    try:
        return _core.spawn(request), None
    except BaseException as exc:
        return None, exc


class _Job:
    """One spawn on a spawner thread, and its outcome, delivered on the loop's thread."""

    __slots__ = ("delivered", "error", "finished", "loop", "request", "spawned", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop, request: NativeSpawn) -> None:
        self.loop = loop
        self.request = request
        # Woken once the spawn is done; `finished` too, awaited after a cancellation.
        self.waiter: asyncio.Future[None] = loop.create_future()
        self.finished: Optional[asyncio.Future[None]] = None
        self.spawned: Optional[_Spawned] = None
        self.error: Optional[BaseException] = None
        # Whether the outcome reached the loop's thread.
        self.delivered = False

    def run(self) -> None:
        """On a spawner thread."""
        self.spawned, self.error = _spawn_catching(self.request)
        # As wrap_future: a closed loop takes nothing; the child handle and pipes go with
        # this job (the core's reaper then reaps the child).
        loop = self.loop
        if not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # closed meanwhile
                pass

    def _deliver(self) -> None:
        """On the loop's thread."""
        self.delivered = True
        for future in (self.waiter, self.finished):
            if future is not None and not future.done():
                future.set_result(None)


class _Spawner:
    """The spawner threads: at most ``SPAWNER_THREADS``, started as spawns need them, as
    a ``ThreadPoolExecutor`` grows, each taking jobs from one queue.

    Not a ``ThreadPoolExecutor``: its ``concurrent.futures.Future`` (a ``Condition``),
    work item and ``Semaphore`` per call, and the ``wrap_future`` chain back to the loop,
    cost the parent more CPU than the hop needs (workload 4: 74 k of 336 k user-space
    instructions per spawn). Here a job is one object, handed over through a
    ``SimpleQueue``, and its outcome comes back with one ``call_soon_threadsafe``.

    The threads are daemons: between spawns one waits in ``SimpleQueue.get`` (the GIL
    released) and holds nothing that exiting would lose, where the executor's were joined
    at exit."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self.threads = 0
        # Threads done with a job and not yet claimed by a new one (the executor's idle
        # semaphore).
        self.idle = 0

    def submit(self, job: _Job) -> None:
        with self.lock:
            if self.idle or self.threads >= SPAWNER_THREADS:
                # An idle thread takes it, or it waits behind the spawns under way.
                if self.idle:
                    self.idle -= 1
                self.queue.put(job)
                return
            self.threads += 1
            name = f"fastspawn-spawner_{self.threads - 1}"
        try:
            threading.Thread(target=self._serve, name=name, daemon=True).start()
        except BaseException:
            # No thread for it ("can't start new thread"): the job was never queued, and
            # the spawn fails with the error, as run_in_executor's would.
            with self.lock:
                self.threads -= 1
            raise
        self.queue.put(job)

    def _serve(self) -> None:
        get = self.queue.get
        while True:
            get().run()
            with self.lock:
                self.idle += 1


_spawner = _Spawner()


def _forget_spawner() -> None:
    # The child of a fork has none of the parent's threads: it starts its own.
    global _spawner
    _spawner = _Spawner()


os.register_at_fork(after_in_child=_forget_spawner)


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
    to this loop), and "no" always comes from a walk of every task: asyncio's registry
    read directly where that is verified (``_private.tasks``), else ``all_tasks``."""
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
    found = other_tasks(loop, current)
    if found is None:
        found = [task for task in asyncio.all_tasks(loop) if task is not current]
    _witnesses = (weakref.ref(loop), [weakref.ref(task) for task in found]) if found else None
    return bool(found)


def _discard(spawned: _Spawned) -> None:
    """A child spawned for a caller that was cancelled meanwhile: killed (with whatever it
    forked into its leaf cgroup, if it has one), reaped (a SIGKILLed child exits at once)
    and its pipes closed, before the cancellation goes on; the leaf is removed once empty
    (waiting up to a second). Never raises (the caller's cancellation is what propagates)
    and never blocks for long: a child that outlives DISCARD_WAIT (uninterruptible sleep)
    is left to the core's reaper, which takes it over when the handle is dropped."""
    child, *pipes = spawned
    try:
        with contextlib.suppress(OSError):
            child.send_signal(signal.SIGKILL)
        cgroup = child.cgroup
        if cgroup is not None:
            with contextlib.suppress(OSError):
                cgroup.kill()
        with contextlib.suppress(OSError):
            child.wait(DISCARD_WAIT)
        if cgroup is not None:
            deadline = time.monotonic() + DISCARD_WAIT
            with contextlib.suppress(OSError, RuntimeError):
                while not cgroup.remove() and time.monotonic() < deadline:
                    time.sleep(0.001)
    finally:
        for pipe in pipes:
            if pipe is not None:
                pipe.close()


async def spawn_native(loop: asyncio.AbstractEventLoop, request: NativeSpawn) -> Optional[_Spawned]:
    """``_core.spawn(request)``, on a spawner thread when the loop has other tasks; None
    when the core cannot start it natively here."""
    if not _has_other_tasks(loop):
        return _core.spawn(request)
    job = _Job(loop, request)
    _spawner.submit(job)
    try:
        await job.waiter
    except asyncio.CancelledError:
        # As with a spawn on the loop's thread, which no cancellation can interrupt, the
        # spawn finishes first: then the child, if it started, is ended and nothing of it
        # is left when the cancellation propagates.
        while not job.delivered:
            job.finished = finished = loop.create_future()
            with contextlib.suppress(asyncio.CancelledError):
                await finished
        if job.spawned is not None:
            _discard(job.spawned)
        raise
    error, spawned = job.error, job.spawned
    if error is not None:
        del job
        try:
            raise error
        finally:
            # No cycle through this frame (as concurrent.futures' Future.result).
            del error
    return spawned
