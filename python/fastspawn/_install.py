"""Routing the standard library's event loops through fastspawn.

``install()`` replaces ``_make_subprocess_transport`` (``_private.hooks.MAKE_TRANSPORT``)
on asyncio's Unix selector loop class, the one hook every ``loop.subprocess_exec``/``subprocess_shell`` call goes
through after asyncio has validated its arguments. So ``asyncio.create_subprocess_*``,
anyio and everything else built on them spawn with fastspawn, and argument errors stay
exactly asyncio's own.

Where the speed layer is on (``_private.FAST_STREAMS``), it also wraps
``asyncio.subprocess.Process.communicate`` so that processes on fastspawn's
transports get ``fastspawn.Process``'s short path (see ``_process``); every other
process, on any loop, runs asyncio's ``communicate`` unchanged.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Coroutine, Optional, TypeVar

from . import _spawn
from ._options import popen_kwargs
from ._private import FAST_STREAMS
from ._private.hooks import MAKE_TRANSPORT, selector_loop_class, stock_child_watcher_replaced
from ._process import short_communicate

__all__ = ["EventLoop", "install", "is_installed", "new_event_loop", "run", "uninstall"]

_T = TypeVar("_T")

_lock = threading.Lock()
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
    return stock_child_watcher_replaced()


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
        kwargs = popen_kwargs(kwargs, "asyncio's own spawner runs it: its subprocess machinery is customised")
        return await _saved(self, protocol, args, shell, stdin, stdout, stderr, bufsize, extra, **kwargs)
    # bufsize is 0 here: loop.subprocess_exec/shell refuse anything else.
    return await _spawn.spawn_transport(self, protocol, args, shell, stdin, stdout, stderr, extra, kwargs)


def _loop_class() -> type[Any]:
    cls = selector_loop_class()
    if cls is None:
        raise RuntimeError(f"this Python's asyncio has no {MAKE_TRANSPORT} hook on its selector loop to install into")
    return cls


def install() -> None:
    """Makes every stock asyncio selector loop spawn subprocesses with fastspawn.

    Idempotent; ``uninstall()`` restores the standard behaviour."""
    global _saved, _saved_communicate, _installed_communicate
    with _lock:
        cls = _loop_class()
        if cls.__dict__.get(MAKE_TRANSPORT) is _make_subprocess_transport:
            return
        _saved = cls.__dict__[MAKE_TRANSPORT]
        setattr(cls, MAKE_TRANSPORT, _make_subprocess_transport)
        if FAST_STREAMS:
            process: Any = asyncio.subprocess.Process
            _saved_communicate = process.__dict__["communicate"]
            _installed_communicate = process.communicate = short_communicate(_saved_communicate)


def uninstall() -> None:
    """Undoes ``install()``; a no-op when not installed."""
    global _saved, _saved_communicate, _installed_communicate
    with _lock:
        cls = _loop_class()
        if cls.__dict__.get(MAKE_TRANSPORT) is not _make_subprocess_transport:
            return
        setattr(cls, MAKE_TRANSPORT, _saved)
        _saved = None
        process: Any = asyncio.subprocess.Process
        # Left alone if someone replaced it since (their wrapper may call ours, which runs
        # asyncio's own communicate for every process it does not recognise).
        if _installed_communicate is not None and process.__dict__.get("communicate") is _installed_communicate:
            process.communicate = _saved_communicate
        _saved_communicate = _installed_communicate = None


def is_installed() -> bool:
    """Whether ``install()`` is in effect."""
    cls = selector_loop_class()
    return cls is not None and cls.__dict__.get(MAKE_TRANSPORT) is _make_subprocess_transport


class EventLoop(asyncio.SelectorEventLoop):
    """A stock selector event loop that spawns with fastspawn, installed or not."""


setattr(EventLoop, MAKE_TRANSPORT, _make_subprocess_transport)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new :class:`EventLoop`, e.g. for ``asyncio.Runner(loop_factory=...)``."""
    return EventLoop()


def run(main: Coroutine[Any, Any, _T], *, debug: Optional[bool] = None) -> _T:
    """``asyncio.run`` on an :class:`EventLoop`."""
    with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)
