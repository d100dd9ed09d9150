"""``FdWatcher``: one epoll per event loop for every descriptor fastspawn watches.

Every child has its pidfd and its pipes watched. Through ``loop.add_reader`` each
registration costs a ``Handle``, a ``SelectorKey`` and a transport check, and removing it
as much again: about 5 µs of Python each, for two or more descriptors per spawn. Instead
each loop gets one ``select.epoll`` of fastspawn's own, registered with the loop once.
Descriptors are added to it with one ``epoll_ctl`` each, and a single loop callback runs
whatever it reports ready, so a child's pipe EOF and its exit are handled in one go.

Callbacks run as the loop runs reader callbacks: each in a copy of the context current
when it was registered, and an exception goes to the loop's exception handler without
stopping the others. ``loop.close()`` closes the epoll: the loop's reader callback is an
object only the loop references, and its finalizer closes the epoll.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import select
import weakref
from typing import Callable, Optional

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
        self._epoll = select.epoll()
        self._entries: dict[int, _Entry] = {}
        # True while a reader runs for a descriptor reported hung up (EPOLLHUP): for a
        # pipe, every writer is gone, so what it holds is all there will ever be.
        self.hangup = False
        # The loop's reader is an object of its own that only the loop holds (a partial:
        # no Python frame, hence no traceback, ever references it). When loop.close()
        # drops it, the epoll is closed at once, even while transports (perhaps in
        # reference cycles) still hold this watcher.
        reader = functools.partial(FdWatcher._dispatch, self)
        weakref.finalize(reader, _release, self._epoll, self._entries)
        loop.add_reader(self._epoll.fileno(), reader)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} fds={sorted(self._entries)}>"

    def _check_open(self) -> None:
        loop = self._loop()
        if loop is None or loop.is_closed():
            # What loop.add_reader raises.
            raise RuntimeError("Event loop is closed")

    def add_reader(self, fd: int, callback: Callable[[], object]) -> None:
        """Calls ``callback()`` whenever ``fd`` is readable; replaces an earlier reader."""
        self._check_open()
        entry = self._entries.get(fd)
        if entry is None:
            # The common case, kept short: a new descriptor watched for reading.
            entry = self._entries[fd] = _Entry()
            entry.reader = (callback, contextvars.copy_context())
            self._register(fd, select.EPOLLIN)
            return
        before = entry.mask()
        entry.reader = (callback, contextvars.copy_context())
        self._update(fd, entry, before)

    def add_writer(self, fd: int, callback: Callable[[], object]) -> None:
        """Calls ``callback()`` whenever ``fd`` is writable; replaces an earlier writer."""
        self._check_open()
        entry = self._entries.get(fd)
        if entry is None:
            entry = self._entries[fd] = _Entry()
        before = entry.mask()
        entry.writer = (callback, contextvars.copy_context())
        self._update(fd, entry, before)

    def remove_reader(self, fd: int) -> bool:
        """Stops calling the reader of ``fd``; whether there was one."""
        entry = self._entries.get(fd)
        if entry is None or entry.reader is None:
            return False
        before = entry.mask()
        entry.reader = None
        self._update(fd, entry, before)
        return True

    def remove_writer(self, fd: int) -> bool:
        """Stops calling the writer of ``fd``; whether there was one."""
        entry = self._entries.get(fd)
        if entry is None or entry.writer is None:
            return False
        before = entry.mask()
        entry.writer = None
        self._update(fd, entry, before)
        return True

    def _register(self, fd: int, mask: int) -> None:
        epoll = self._epoll
        try:
            epoll.register(fd, mask)
        except FileExistsError:
            # A descriptor closed while watched, and its number reused since.
            epoll.modify(fd, mask)

    def _update(self, fd: int, entry: _Entry, before: int) -> None:
        mask = entry.mask()
        if mask == before:
            return
        if not mask:
            del self._entries[fd]
        epoll = self._epoll
        if epoll.closed:
            # The loop is closed: nothing will be called any more.
            return
        if not mask:
            try:
                epoll.unregister(fd)
            except OSError:
                # Closing a descriptor removes it from every epoll: nothing to do.
                pass
        elif not before:
            self._register(fd, mask)
        else:
            epoll.modify(fd, mask)

    def _dispatch(self) -> None:
        """The loop's reader for the epoll: runs every ready callback."""
        try:
            # At most MAX_EVENTS at a time (the rest stay ready for the next round):
            # the default would allocate room for 1023 on every call.
            events = self._epoll.poll(0, MAX_EVENTS)
        except ValueError:  # closed
            return
        entries = self._entries
        for fd, event in events:
            # Looked up again before each call: an earlier callback may have removed it.
            if event != _NOT_READ:
                entry = entries.get(fd)
                if entry is not None and entry.reader is not None:
                    self.hangup = event & select.EPOLLHUP != 0
                    try:
                        self._run(entry.reader)
                    finally:
                        self.hangup = False
            if event != _NOT_WRITE:
                entry = entries.get(fd)
                if entry is not None and entry.writer is not None:
                    self._run(entry.writer)

    def _run(self, callback: _Callback) -> None:
        # asyncio.Handle._run's contract.
        function, context = callback
        try:
            context.run(function)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            loop = self._loop()
            if loop is None:
                raise
            loop.call_exception_handler(
                {"message": f"Exception in callback {function!r}", "exception": exc, "watcher": self}
            )


_watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.ref[FdWatcher]] = weakref.WeakKeyDictionary()


def _release(epoll: select.epoll, entries: dict[int, _Entry]) -> None:
    """Once the loop let go of its reader: nothing will be dispatched any more."""
    epoll.close()
    entries.clear()


# The last watcher handed out: most programs spawn from one loop.
_last: Optional[FdWatcher] = None


def watcher_for(loop: asyncio.AbstractEventLoop) -> FdWatcher:
    """The loop's watcher, made (and registered with the loop) on first use."""
    global _last
    watcher = _last
    if watcher is not None and watcher._loop() is loop and not watcher._epoll.closed:
        return watcher
    ref = _watchers.get(loop)
    watcher = None if ref is None else ref()
    if watcher is None or watcher._epoll.closed:
        watcher = FdWatcher(loop)
        _watchers[loop] = weakref.ref(watcher)
    _last = watcher
    return watcher
