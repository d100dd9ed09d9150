"""``FdWatcher``: one epoll per event loop for every descriptor fastspawn watches.

Every child has its pidfd and its pipes watched. Through ``loop.add_reader`` each
registration costs a ``Handle``, a ``SelectorKey`` and a transport check, and removing it
as much again: about 5 µs of Python each, for two or more descriptors per spawn. Instead
each loop gets one ``select.epoll`` of fastspawn's own, registered with the loop once.
Descriptors are added to it with one ``epoll_ctl`` each, and a single loop callback runs
whatever it reports ready, so a child's pipe EOF and its exit are handled in one go.

Callbacks run as the loop runs reader callbacks: each in a copy of the context current
when it was registered, and an exception goes to the loop's exception handler without
stopping the others; callbacks removed or replaced by an earlier one in the same round
are skipped, as the loop skips cancelled handles.

The epoll exists only while there is something to watch: when the last descriptor is
removed, it is closed (and its reader removed from the loop) by a callback scheduled
then, so in the next loop iteration at the latest, unless something was added meanwhile,
and the next registration opens a new one. A loop with nothing of fastspawn's left to
watch so holds no descriptor of fastspawn's, as stock asyncio holds none (test suites
count descriptors around each test, after letting an iteration end). Closing once per
iteration, not at every removal, keeps a child's exit and its pipes' EOF, handled in one
round, to one close. When the removal happens in this watcher's own round (a child's
exit, a pipe's EOF), the close is scheduled after everything that round's callbacks
scheduled: the task a child's exit wakes runs before it, and the spawn such a task
typically makes next finds the epoll still open (sequential spawns otherwise opened,
registered, unregistered and closed an epoll each: 69 k of 308 k instructions per spawn).

``loop.close()`` closes an open epoll too: the loop's reader callback is an object only
the loop references, and its finalizer closes the epoll (while a KeyboardInterrupt or
SystemExit that escaped a callback is kept, its traceback keeps the loop's handle, and so
the epoll, alive too).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import select
import weakref
from typing import Callable, Optional

from ._private.hooks import describe_callback

__all__ = ["FdWatcher", "watcher_for"]

# As selectors.EpollSelector reads an epoll event: anything but EPOLLOUT alone makes the
# descriptor readable (EPOLLHUP, EPOLLERR), anything but EPOLLIN alone writable.
_NOT_READ = select.EPOLLOUT
_NOT_WRITE = select.EPOLLIN

# Events taken from the epoll per loop callback.
MAX_EVENTS = 64

_Callback = tuple[Callable[[], object], contextvars.Context]


class _Entry:
    """What one descriptor is watched for."""

    __slots__ = ("reader", "writer")

    def __init__(self) -> None:
        self.reader: Optional[_Callback] = None
        self.writer: Optional[_Callback] = None

    def mask(self) -> int:
        return (select.EPOLLIN if self.reader else 0) | (select.EPOLLOUT if self.writer else 0)


class FdWatcher:
    """The descriptors fastspawn watches on one loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # A weak reference: the loop holds this watcher (through its reader), not the
        # other way round.
        self._loop = weakref.ref(loop)
        # None while there is nothing to watch; closed (and left here) once the loop
        # dropped its reader, i.e. the loop was closed.
        self._epoll: Optional[select.epoll] = None
        self._entries: dict[int, _Entry] = {}
        self._release_pending = False
        # While _dispatch runs callbacks: a release they cause is scheduled after them.
        self._dispatching = False
        self._release_deferred = False
        # While a reader runs for a descriptor reported hung up (EPOLLHUP), that
        # descriptor; else -1. For a pipe: every writer is gone, so what it holds is all
        # there will ever be.
        self.hangup_fd = -1

    def _open(self, loop: asyncio.AbstractEventLoop) -> select.epoll:
        """A new epoll, registered with the loop."""
        epoll = select.epoll()
        # The loop's reader is an object of its own that only the loop holds (a partial:
        # no Python frame, hence no traceback, ever references it). When loop.close()
        # drops it, the epoll is closed at once, even while transports (perhaps in
        # reference cycles) still hold this watcher.
        reader = functools.partial(FdWatcher._dispatch, self, epoll)
        weakref.finalize(reader, _reader_dropped, weakref.ref(self), epoll)
        try:
            # Registered in an empty context: the loop keeps this handle as long as the
            # epoll lives, and must not keep the spawning task's context variables alive.
            contextvars.Context().run(loop.add_reader, epoll.fileno(), reader)
        except BaseException:
            epoll.close()
            raise
        self._epoll = epoll
        return epoll

    def _schedule_release(self) -> None:
        """Closes the epoll at the end of this loop iteration if nothing is watched then."""
        if self._release_pending:
            return
        if self._dispatching:
            # After the round's callbacks, so after what they woke (see _dispatch).
            self._release_deferred = True
            return
        loop = self._loop()
        if loop is None or loop.is_closed():
            return
        self._release_pending = True
        # In an empty context, as the reader: nothing of the caller's is kept alive. A new
        # one each time: a context can be entered by one thread at a time, and loops in
        # other threads may run their watchers' callbacks at the same moment.
        loop.call_soon(self._release_if_idle, context=contextvars.Context())

    def _release_if_idle(self) -> None:
        self._release_pending = False
        epoll = self._epoll
        if self._entries or epoll is None or epoll.closed:
            return
        self._epoll = None
        loop = self._loop()
        if loop is not None:
            loop.remove_reader(epoll.fileno())
        epoll.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} fds={sorted(self._entries)}>"

    def _check_open(self) -> None:
        loop = self._loop()
        if loop is None or loop.is_closed():
            # What loop.add_reader raises.
            raise RuntimeError("Event loop is closed")
        if self._epoll is None:
            self._open(loop)

    def add_reader(self, fd: int, callback: Callable[[], object]) -> None:
        """Calls ``callback()`` whenever ``fd`` is readable; replaces an earlier reader."""
        self._check_open()
        entry = self._entries.get(fd)
        if entry is None:
            # The common case, kept short: a new descriptor watched for reading.
            self._epoll_ctl(fd, 0, select.EPOLLIN)
            entry = self._entries[fd] = _Entry()
            entry.reader = (callback, contextvars.copy_context())
            return
        self._set(fd, entry, (callback, contextvars.copy_context()), entry.writer)

    def add_writer(self, fd: int, callback: Callable[[], object]) -> None:
        """Calls ``callback()`` whenever ``fd`` is writable; replaces an earlier writer."""
        self._check_open()
        entry = self._entries.get(fd)
        reader = None if entry is None else entry.reader
        self._set(fd, entry, reader, (callback, contextvars.copy_context()))

    def remove_reader(self, fd: int) -> bool:
        """Stops calling the reader of ``fd``; whether there was one."""
        entry = self._entries.get(fd)
        if entry is None or entry.reader is None:
            return False
        self._set(fd, entry, None, entry.writer)
        return True

    def remove_writer(self, fd: int) -> bool:
        """Stops calling the writer of ``fd``; whether there was one."""
        entry = self._entries.get(fd)
        if entry is None or entry.writer is None:
            return False
        self._set(fd, entry, entry.reader, None)
        return True

    def _set(
        self,
        fd: int,
        entry: Optional[_Entry],
        reader: Optional[_Callback],
        writer: Optional[_Callback],
    ) -> None:
        """Makes ``reader``/``writer`` the callbacks of ``fd``. The epoll changes first:
        if that fails, the exception propagates and nothing else has changed."""
        before = 0 if entry is None else entry.mask()
        mask = (select.EPOLLIN if reader else 0) | (select.EPOLLOUT if writer else 0)
        self._epoll_ctl(fd, before, mask)
        if not mask:
            if self._entries.pop(fd, None) is not None and not self._entries:
                self._schedule_release()
            return
        if entry is None:
            entry = self._entries[fd] = _Entry()
        entry.reader = reader
        entry.writer = writer

    def _epoll_ctl(self, fd: int, before: int, mask: int) -> None:
        """Moves ``fd``'s registration from ``before`` to ``mask`` (0: none)."""
        epoll = self._epoll
        if mask == before or epoll is None or epoll.closed:
            # Nothing to change, or the loop is closed and nothing will be called.
            return
        if not mask:
            try:
                epoll.unregister(fd)
            except OSError:
                # Closed already, which removed it from the epoll: nothing to undo.
                pass
        elif not before:
            try:
                epoll.register(fd, mask)
            except FileExistsError:
                # Still registered from before an unregister that failed.
                epoll.modify(fd, mask)
        else:
            try:
                epoll.modify(fd, mask)
            except FileNotFoundError:
                # Closed while watched, which removed it; the number is in use again.
                epoll.register(fd, mask)

    def _dispatch(self, epoll: select.epoll) -> None:
        """The loop's reader for ``epoll``: runs every ready callback."""
        try:
            # At most MAX_EVENTS at a time (the rest stay ready for the next round):
            # the default would allocate room for 1023 on every call.
            events = epoll.poll(0, MAX_EVENTS)
        except ValueError:  # closed
            return
        entries = self._entries
        self._dispatching = True
        try:
            self._run_ready(entries, events)
        finally:
            self._dispatching = False
            if self._release_deferred:
                self._release_deferred = False
                self._schedule_release()

    def _run_ready(self, entries: dict[int, _Entry], events: list[tuple[int, int]]) -> None:
        # As the loop would: the callbacks ready are those registered when the epoll
        # answered. One removed or replaced by an earlier callback is not called (a
        # replacement waits for the next round).
        ready = []
        for fd, event in events:
            entry = entries.get(fd)
            if entry is not None:
                reader = entry.reader if event != _NOT_READ else None
                writer = entry.writer if event != _NOT_WRITE else None
                ready.append((fd, event & select.EPOLLHUP, reader, writer))
        for fd, hangup, reader, writer in ready:
            if reader is not None:
                entry = entries.get(fd)
                if entry is not None and entry.reader is reader:
                    self.hangup_fd = fd if hangup else -1
                    try:
                        self._run(reader)
                    finally:
                        self.hangup_fd = -1
            if writer is not None:
                entry = entries.get(fd)
                if entry is not None and entry.writer is writer:
                    self._run(writer)

    def _run(self, callback: _Callback) -> None:
        # asyncio.Handle._run's contract, and its exception context.
        function, context = callback
        try:
            context.run(function)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            loop = self._loop()
            if loop is None:
                raise
            handle = asyncio.Handle(function, (), loop, context)
            loop.call_exception_handler(
                {"message": f"Exception in callback {describe_callback(function)}", "exception": exc, "handle": handle}
            )


_watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.ref[FdWatcher]] = weakref.WeakKeyDictionary()


def _reader_dropped(watcher_ref: weakref.ref[FdWatcher], epoll: select.epoll) -> None:
    """The loop let go of ``epoll``'s reader: removed by ``_release_if_idle``, or the loop
    was closed, after which nothing will be dispatched any more."""
    epoll.close()
    watcher = watcher_ref()
    if watcher is not None and watcher._epoll is epoll:
        watcher._entries.clear()


# The last watcher handed out: most programs spawn from one loop.
_last: Optional[FdWatcher] = None


def watcher_for(loop: asyncio.AbstractEventLoop) -> FdWatcher:
    """The loop's watcher, made (and registered with the loop) on first use."""
    global _last
    watcher = _last
    if watcher is not None and watcher._loop() is loop:
        return watcher
    ref = _watchers.get(loop)
    watcher = None if ref is None else ref()
    if watcher is None:
        watcher = FdWatcher(loop)
        _watchers[loop] = weakref.ref(watcher)
    _last = watcher
    return watcher
