"""The stream classes fastspawn hands out, and ``iter_lines``.

Where the speed layer is on (``_private.FAST_STREAMS``: a CPython version in
``_private.VERIFIED``), ``StreamReader`` and ``SubprocessStreamProtocol`` are fastspawn's
(``_private.streams``: the buffer in Rust); elsewhere they are asyncio's own classes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Optional

from ._private import FAST_STREAMS

if FAST_STREAMS:
    # Only here: it needs the core, which the pure-Python fallback lacks (``_load``).
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


def _pieces(line: bytes, max_line: Optional[int]) -> list[bytes]:
    if max_line is None or len(line) <= max_line:
        return [line]
    return [line[i : i + max_line] for i in range(0, len(line), max_line)]


async def iter_lines(stream: asyncio.StreamReader, max_line: Optional[int] = None) -> AsyncIterator[list[bytes]]:
    """Yields the lines of ``stream`` in batches: every line already buffered at once.

    Unlike ``readline()``/``async for`` (which keep asyncio's semantics), a line longer
    than the stream's ``limit`` never raises and is never dropped: it comes whole. With
    ``max_line``, a line longer than ``max_line`` bytes comes in pieces of ``max_line``
    bytes, only the last of which ends with ``b"\\n"``, and memory stays bounded (about
    ``max_line`` plus the stream's own buffer). The pieces, concatenated, are exactly the
    stream's bytes; a last line without ``b"\\n"`` comes as it is at EOF. Errors of the
    stream (``set_exception``) are raised, after what was read of a long line.

    Any ``asyncio.StreamReader`` works (only its public ``readuntil``/``readexactly``
    are used); fastspawn's hands out whole batches.

        async for lines in fastspawn.iter_lines(proc.stdout):
            for line in lines: ...

    Cancelling the iteration in the middle of a long line loses the part of it already
    taken from the stream (the iterator is finished then anyway)."""
    if max_line is not None and max_line < 1:
        raise ValueError("max_line must be None or at least 1")
    # fastspawn's readers exist only where FAST_STREAMS (and _fast is imported only then).
    take = stream.take_lines if FAST_STREAMS and isinstance(stream, _fast.StreamReader) else None
    # The start of a line longer than the stream's limit, not handed out yet.
    partial = bytearray()
    while True:
        if take is not None and not partial:
            lines = take()
            if lines:
                if max_line is not None and max(map(len, lines)) > max_line:
                    lines = [piece for line in lines for piece in _pieces(line, max_line)]
                yield lines
                continue
        try:
            line = await stream.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:  # EOF
            rest = bytes(partial) + exc.partial
            if rest:
                yield _pieces(rest, max_line)
            return
        except asyncio.LimitOverrunError as exc:
            # No separator within the limit (or one beyond it): take what is buffered up
            # to it, which readuntil left in place, and read on.
            partial += await stream.readexactly(exc.consumed)
            if max_line is not None and len(partial) >= max_line:
                whole = len(partial) - len(partial) % max_line
                yield [bytes(partial[i : i + max_line]) for i in range(0, whole, max_line)]
                del partial[:whole]
            continue
        except Exception:
            if partial:
                yield [bytes(partial)]
                partial.clear()
            raise
        if partial:
            line = bytes(partial) + line
            partial.clear()
        yield _pieces(line, max_line)
