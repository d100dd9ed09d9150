"""``Process``: ``asyncio.subprocess.Process`` with a shorter ``communicate()`` for the
common case.

asyncio's ``communicate()`` always gathers three coroutines (stdin, stdout, stderr) in
three tasks, even when two of them do nothing: about 160 k instructions of the parent's
per spawn, a third of all it does for ``echo hello`` (callgrind). When there is nothing
to feed and exactly one of stdout/stderr to collect, reading that one stream and then
waiting is the same work in the same order, without the tasks. Everything else goes to
asyncio's own ``communicate()``. Only ``fastspawn.create_subprocess_exec``/``_shell``
return this class; with ``install()``, asyncio builds its own ``Process``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Union

__all__ = ["Process"]


class Process(asyncio.subprocess.Process):
    """``asyncio.subprocess.Process``, with the same API and results."""

    # Typed as typeshed types asyncio's (which says bytes where None is returned too).
    async def communicate(self, input: Union[bytes, bytearray, memoryview, None] = None) -> tuple[bytes, bytes]:
        # With no stdin pipe every supported Python feeds nothing (3.12+ would close a
        # stdin pipe even without input, 3.9-3.11 would leave it open: not taken here).
        if input is None and self.stdin is None and (self.stdout is None) != (self.stderr is None):
            fd = 1 if self.stdout is not None else 2
            # asyncio's own reader coroutine: the same debug logging, read to EOF, then
            # the pipe transport closed.
            output: Any = await self._read_stream(fd)  # type: ignore[attr-defined]
            await self.wait()
            return (output, None) if fd == 1 else (None, output)  # type: ignore[return-value]
        return await super().communicate(input)
