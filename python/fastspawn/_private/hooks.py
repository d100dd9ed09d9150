"""The private hooks fastspawn needs to spawn at all (see the package docstring).

Each is looked up defensively: where an interpreter lacks one, the caller is told
(``None``/``False``) and steps aside rather than failing.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any, Callable, Optional

__all__ = [
    "MAKE_TRANSPORT",
    "describe_callback",
    "forget_popen_child",
    "popen_posix_spawn_switches",
    "process_parts",
    "read_stream",
    "selector_loop_class",
    "stock_child_watcher_replaced",
    "transport_of",
]

# The method of asyncio's selector loops that every loop.subprocess_exec/subprocess_shell
# call ends in, after asyncio validated its arguments: (protocol, args, shell, stdin,
# stdout, stderr, bufsize, extra=None, **kwargs) -> transport. Unchanged since 3.4.
MAKE_TRANSPORT = "_make_subprocess_transport"

# Child watchers (and the policy's _watcher) went away in 3.14.
_HAS_CHILD_WATCHERS = sys.version_info < (3, 14)


def selector_loop_class() -> Optional[type[Any]]:
    """asyncio's Unix selector loop class, the one ``install()`` patches, if it has the
    hook."""
    cls: Any = getattr(getattr(asyncio, "unix_events", None), "_UnixSelectorEventLoop", None)
    if cls is None or MAKE_TRANSPORT not in cls.__dict__:
        return None
    return cls  # type: ignore[no-any-return]


def stock_child_watcher_replaced() -> bool:
    """Whether (3.11-3.13) the policy's child watcher was replaced, by a non-stdlib one
    or by asyncio's ``FastChildWatcher``, which reaps every child with ``waitpid(-1)`` and
    so cannot coexist with any other reaper."""
    if not _HAS_CHILD_WATCHERS:
        return False
    watcher = getattr(asyncio.get_event_loop_policy(), "_watcher", None)
    if watcher is None:
        return False
    kind = type(watcher)
    return kind.__module__ != "asyncio.unix_events" or any(
        c.__name__ == "FastChildWatcher" and c.__module__ == "asyncio.unix_events" for c in kind.__mro__
    )


def popen_posix_spawn_switches() -> tuple[bool, bool]:
    """``subprocess``'s own switches for its ``os.posix_spawn`` path: whether it may use it
    at all, and whether it may when descriptors must be closed (3.13+). Both False where
    a version lacks them, which only makes fastspawn's mimicry of that path's errors
    stricter, never its spawns different."""
    return (
        bool(getattr(subprocess, "_USE_POSIX_SPAWN", False)),
        bool(getattr(subprocess, "_HAVE_POSIX_SPAWN_CLOSEFROM", False)),
    )


def forget_popen_child(proc: subprocess.Popen[Any]) -> None:
    """Tells ``proc`` that someone else reaps its child: its ``__del__`` must never call
    ``waitpid()`` (it could reap a recycled pid later)."""
    if hasattr(proc, "_child_created"):
        proc._child_created = False


def describe_callback(function: Callable[..., object], args: tuple[Any, ...] = ()) -> str:
    """A callback as asyncio names it in its messages, e.g. ``ReadPipeTransport._read_ready()``."""
    try:
        from asyncio import format_helpers

        text: str = format_helpers._format_callback_source(function, args)
        return text
    except Exception:
        return repr(function)


def transport_of(proc: asyncio.subprocess.Process) -> Any:
    """The transport under a stock ``Process``."""
    return getattr(proc, "_transport", None)


def process_parts(proc: asyncio.subprocess.Process) -> Optional[tuple[Any, Any, Any]]:
    """What a stock ``Process`` was built from, ``(transport, protocol, loop)``: the
    arguments of ``Process.__init__`` (unchanged since 3.4), kept as ``_transport``,
    ``_protocol`` and ``_loop``; None where a version lacks one."""
    transport, protocol, loop = (getattr(proc, name, None) for name in ("_transport", "_protocol", "_loop"))
    if transport is None or protocol is None or loop is None:
        return None
    return transport, protocol, loop


async def read_stream(proc: asyncio.subprocess.Process, fd: int) -> Any:
    """asyncio's own reader coroutine of ``communicate()``: the same debug logging, read
    to EOF, then the pipe transport closed."""
    return await proc._read_stream(fd)  # type: ignore[attr-defined]
