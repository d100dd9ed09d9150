"""``Process``: ``asyncio.subprocess.Process`` with a shorter ``communicate()`` for the
common case.

asyncio's ``communicate()`` always gathers three coroutines (stdin, stdout, stderr) in
three tasks, even when two of them do nothing: about 160 k instructions of the parent's
per spawn, a third of all it does for ``echo hello`` (callgrind). When there is nothing
to feed and exactly one of stdout/stderr to collect, reading that one stream and then
waiting is the same work in the same order, without the tasks. Everything else goes to
asyncio's own ``communicate()``.

``fastspawn.create_subprocess_exec``/``_shell`` return ``Process``. ``install()`` cannot
change the class asyncio builds, so it gives asyncio's ``Process.communicate`` the same
short path (``short_communicate``), taken only for processes on fastspawn's transports.
Both take the short path only where the speed layer is on (``_private.FAST_STREAMS``): it
runs asyncio's private ``Process._read_stream``.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Callable, Coroutine, Optional, Union

from ._lifecycle import LifecycleProcess
from ._private import FAST_STREAMS
from ._private.hooks import read_stream, transport_of
from ._transport import SubprocessTransport

__all__ = ["Process", "short_communicate"]

_Input = Union[bytes, bytearray, memoryview, None]
_Communicate = Callable[[asyncio.subprocess.Process, _Input], Coroutine[Any, Any, tuple[bytes, bytes]]]


def _one_stream(proc: asyncio.subprocess.Process, input: _Input) -> int:
    """1 or 2 when ``communicate(input)`` only has that stream to collect, else 0.

    With no stdin pipe every supported Python feeds nothing (3.12+ would close a stdin
    pipe even without input, 3.9-3.11 would leave it open: not taken here)."""
    if input is not None or proc.stdin is not None or (proc.stdout is None) == (proc.stderr is None):
        return 0
    return 1 if proc.stdout is not None else 2


async def _collect(proc: asyncio.subprocess.Process, fd: int) -> Any:
    # asyncio's own reader coroutine: the same debug logging, read to EOF, then the pipe
    # transport closed; then the wait, as asyncio's communicate() does after its gather.
    output = await read_stream(proc, fd)
    await proc.wait()
    return (output, None) if fd == 1 else (None, output)


class Process(LifecycleProcess):
    """``asyncio.subprocess.Process``, with the same API and results, and more:
    ``async with proc:`` ends the child and its descendants, ``kill_tree()``,
    ``terminate_tree()``, ``send_signal_tree()``, ``aclose()`` (``_lifecycle``)."""

    # Typed as typeshed types asyncio's (which says bytes where None is returned too).
    async def communicate(self, input: _Input = None) -> tuple[bytes, bytes]:
        fd = _one_stream(self, input) if FAST_STREAMS else 0
        if fd:
            return await _collect(self, fd)  # type: ignore[no-any-return]
        return await super().communicate(input)


def short_communicate(stock: _Communicate) -> _Communicate:
    """``stock`` (asyncio's ``Process.communicate``), with ``Process``'s short path for
    processes whose transport is fastspawn's; any other transport gets ``stock`` itself."""

    @functools.wraps(stock)
    async def communicate(self: asyncio.subprocess.Process, input: Optional[_Input] = None) -> tuple[bytes, bytes]:
        if isinstance(transport_of(self), SubprocessTransport):
            fd = _one_stream(self, input)
            if fd:
                return await _collect(self, fd)  # type: ignore[no-any-return]
        return await stock(self, input)

    return communicate
