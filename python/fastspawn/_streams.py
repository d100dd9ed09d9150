"""The stream classes fastspawn hands out, and ``iter_lines``.

Where the speed layer is on (``_private.FAST_STREAMS``: a CPython version in
``_private.VERIFIED``), ``StreamReader`` and ``SubprocessStreamProtocol`` are fastspawn's
(``_private.streams``: the buffer in Rust); elsewhere they are asyncio's own classes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from ._private import FAST_STREAMS
from ._private import streams as _fast

__all__ = ["StreamReader", "SubprocessStreamProtocol", "iter_lines"]

StreamReader: type[asyncio.StreamReader]
SubprocessStreamProtocol: type[asyncio.subprocess.SubprocessStreamProtocol]
if FAST_STREAMS:
    StreamReader = _fast.StreamReader
    SubprocessStreamProtocol = _fast.SubprocessStreamProtocol
else:
    StreamReader = asyncio.StreamReader
    SubprocessStreamProtocol = asyncio.subprocess.SubprocessStreamProtocol


async def iter_lines(stream: asyncio.StreamReader) -> AsyncIterator[list[bytes]]:
    """Yields the lines of ``stream`` in batches: every line already buffered at once.

    The lines, concatenated, are exactly what ``async for line in stream`` yields, with
    the same errors; only the grouping differs. Any ``asyncio.StreamReader`` works;
    fastspawn's hands out whole batches.

        async for lines in fastspawn.iter_lines(proc.stdout):
            for line in lines: ...
    """
    take = stream.take_lines if isinstance(stream, _fast.StreamReader) else None
    while True:
        if take is not None:
            lines = take()
            if lines:
                yield lines
                continue
        line = await stream.readline()
        if not line:
            return
        yield [line]
