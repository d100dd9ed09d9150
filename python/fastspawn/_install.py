"""Routing the standard library's event loops through fastspawn.

``install()`` replaces ``_make_subprocess_transport`` on asyncio's Unix selector loop
class, the one hook every ``loop.subprocess_exec``/``subprocess_shell`` call goes
through after asyncio has validated its arguments. So ``asyncio.create_subprocess_*``,
anyio and everything else built on them spawn with fastspawn, and argument errors stay
exactly asyncio's own.

It also wraps ``asyncio.subprocess.Process.communicate`` so that processes on fastspawn's
transports get ``fastspawn.Process``'s short path (see ``_process``); every other
process, on any loop, runs asyncio's ``communicate`` unchanged.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any, Coroutine, Optional, TypeVar

from . import _spawn
from ._process import short_communicate

__all__ = ["EventLoop", "install", "is_installed", "new_event_loop", "run", "uninstall"]

_T = TypeVar("_T")

_lock = threading.Lock()
# Child watchers (and the policy's _watcher) went away in 3.14.
_HAS_CHILD_WATCHERS = sys.version_info < (3, 14)
_saved: Optional[Any] = None
_saved_communicate: Optional[Any] = None
_installed_communicate: Optional[Any] = None


def _stock_machinery_customized(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether code replaced a piece of asyncio's own subprocess machinery on this loop:
    its pipe connectors, or (Python <= 3.13) the child watcher, with a watcher of its own
    or with asyncio's FastChildWatcher, which reaps every child with ``waitpid(-1)`` and
    so cannot coexist with any other reaper. fastspawn then steps aside and lets
    asyncio's implementation use the replacement, rather than silently bypassing it."""
    loop_attrs = vars(loop)
    if "connect_read_pipe" in loop_attrs or "connect_write_pipe" in loop_attrs:
        return True
    if _HAS_CHILD_WATCHERS:
        watcher = getattr(asyncio.get_event_loop_policy(), "_watcher", None)
        if watcher is not None:
            kind = type(watcher)
            if kind.__module__ != "asyncio.unix_events" or any(
                c.__name__ == "FastChildWatcher" and c.__module__ == "asyncio.unix_events" for c in kind.__mro__
            ):
                return True
    return False


async def _make_subprocess_transport(
    self: asyncio.AbstractEventLoop,
    protocol: asyncio.SubprocessProtocol,
    args: Any,
    shell: bool,
    stdin: Any,
    stdout: Any,
    stderr: Any,
    bufsize: int,
    extra: Optional[dict[str, Any]] = None,
    **kwargs: Any,
) -> Any:
    if _saved is not None and _stock_machinery_customized(self):
        return await _saved(self, protocol, args, shell, stdin, stdout, stderr, bufsize, extra, **kwargs)
    # bufsize is 0 here: loop.subprocess_exec/shell refuse anything else.
    return _spawn.spawn_transport(self, protocol, args, shell, stdin, stdout, stderr, extra, kwargs)


def _loop_class() -> type[Any]:
    cls: type[Any] = asyncio.unix_events._UnixSelectorEventLoop
    return cls


def install() -> None:
    """Makes every stock asyncio selector loop spawn subprocesses with fastspawn.

    Idempotent; ``uninstall()`` restores the standard behaviour."""
    global _saved, _saved_communicate, _installed_communicate
    with _lock:
        cls = _loop_class()
        if cls.__dict__.get("_make_subprocess_transport") is _make_subprocess_transport:
            return
        _saved = cls.__dict__["_make_subprocess_transport"]
        cls._make_subprocess_transport = _make_subprocess_transport
        process: Any = asyncio.subprocess.Process
        _saved_communicate = process.__dict__["communicate"]
        _installed_communicate = process.communicate = short_communicate(_saved_communicate)


def uninstall() -> None:
    """Undoes ``install()``; a no-op when not installed."""
    global _saved, _saved_communicate, _installed_communicate
    with _lock:
        cls = _loop_class()
        if cls.__dict__.get("_make_subprocess_transport") is not _make_subprocess_transport:
            return
        cls._make_subprocess_transport = _saved
        _saved = None
        process: Any = asyncio.subprocess.Process
        # Left alone if someone replaced it since (their wrapper may call ours, which runs
        # asyncio's own communicate for every process it does not recognise).
        if process.__dict__.get("communicate") is _installed_communicate:
            process.communicate = _saved_communicate
        _saved_communicate = _installed_communicate = None


def is_installed() -> bool:
    """Whether ``install()`` is in effect."""
    return _loop_class().__dict__.get("_make_subprocess_transport") is _make_subprocess_transport


class EventLoop(asyncio.SelectorEventLoop):
    """A stock selector event loop that spawns with fastspawn, installed or not."""

    _make_subprocess_transport = _make_subprocess_transport


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new :class:`EventLoop`, e.g. for ``asyncio.Runner(loop_factory=...)``."""
    return EventLoop()


def run(main: Coroutine[Any, Any, _T], *, debug: Optional[bool] = None) -> _T:
    """``asyncio.run`` on an :class:`EventLoop`."""
    if sys.version_info >= (3, 11):
        with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
            return runner.run(main)
    loop = new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
