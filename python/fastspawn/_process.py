"""``Process``: ``asyncio.subprocess.Process`` with a shorter ``communicate()`` for the
common case.

asyncio's ``communicate()`` always gathers three coroutines (stdin, stdout, stderr) in
three tasks, even when two of them do nothing: about 160 k instructions of the parent's
per spawn, a third of all it does for ``echo hello`` (callgrind). When there is nothing
to feed and exactly one of stdout/stderr to collect, reading that one stream and then
waiting is the same work in the same order, without the tasks.

``fastspawn.create_subprocess_exec``/``_shell`` return ``Process``, whose
``communicate()`` (``_lifecycle``) takes that short path and otherwise runs
``_communicate.Communication``: asyncio's results, plus a timeout and nothing lost to a
timeout or a cancellation. ``install()`` cannot
change the class asyncio builds, so it gives asyncio's ``Process.communicate`` the same
short path (``short_communicate``), taken only for processes on fastspawn's transports.
Both take the short path only where the speed layer is on (``_private.FAST_STREAMS``): it
runs asyncio's private ``Process._read_stream``.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Callable, Coroutine, Optional, Union

from ._communicate import one_stream
from ._lifecycle import LifecycleProcess
from ._private.hooks import process_parts, read_stream, transport_of
from ._transport import SubprocessTransport

__all__ = ["Process", "short_communicate"]

_Input = Union[bytes, bytearray, memoryview, None]
_Communicate = Callable[[asyncio.subprocess.Process, _Input], Coroutine[Any, Any, tuple[bytes, bytes]]]


async def _collect(proc: asyncio.subprocess.Process, fd: int) -> Any:
    # asyncio's own reader coroutine: the same debug logging, read to EOF, then the pipe
    # transport closed; then the wait, as asyncio's communicate() does after its gather.
    output = await read_stream(proc, fd)
    await proc.wait()
    return (output, None) if fd == 1 else (None, output)


class Process(LifecycleProcess):
    """``asyncio.subprocess.Process``, with the same API and results, and more:
    ``async with proc:`` ends the child and its descendants, ``kill_tree()``,
    ``terminate_tree()``, ``send_signal_tree()``, ``aclose()``, and
    ``communicate(input=None, timeout=None)`` (``_lifecycle``)."""

    @classmethod
    def adopt(cls, proc: asyncio.subprocess.Process) -> Process:
        """This class for ``proc``, an ``asyncio.subprocess.Process`` (what
        ``asyncio.create_subprocess_*`` return after ``install()``, or a library built on
        them): the same child, transport and streams, with ``async with``, the tree
        signals and ``communicate(timeout=)``. Use one of the two objects for reading.
        ``proc`` itself if it already is one.

        On fastspawn's transports every guarantee of ``Process`` holds, except that a
        child leading its own group was not kept as a zombie if it exited before the
        adoption; on another spawner's transport the tree is reached through the walk
        and the group only while asyncio has not reaped the child."""
        if isinstance(proc, cls):
            return proc
        parts = process_parts(proc) if isinstance(proc, asyncio.subprocess.Process) else None
        if parts is None:
            raise TypeError(f"cannot adopt {type(proc).__name__!r}: not an asyncio.subprocess.Process")
        return cls(*parts)


def short_communicate(stock: _Communicate) -> _Communicate:
    """``stock`` (asyncio's ``Process.communicate``), with ``Process``'s short path for
    processes whose transport is fastspawn's; any other transport gets ``stock`` itself."""

    @functools.wraps(stock)
    async def communicate(self: asyncio.subprocess.Process, input: Optional[_Input] = None) -> tuple[bytes, bytes]:
        if isinstance(transport_of(self), SubprocessTransport):
            fd = one_stream(self, input)
            if fd:
                return await _collect(self, fd)  # type: ignore[no-any-return]
        return await stock(self, input)

    return communicate
