"""``StreamReader`` with its buffer in Rust, and the protocol that uses it (fenced: both
drive asyncio's private reader and protocol state; used only where ``FAST_STREAMS``).

``StreamReader`` subclasses ``asyncio.StreamReader``. Its ``_buffer`` is a
``_core.StreamBuffer``, which answers the ``bytearray`` operations asyncio's own methods
use, so ``readline``, ``readuntil`` and their errors (``LimitOverrunError``,
``IncompleteReadError``, ``ValueError``) are asyncio's code, unchanged. What changes:

* ``async for line in reader`` takes a buffered line in one Rust call and awaits an
  already-finished awaitable, instead of running ``readline``'s coroutine per line;
* ``read(n)`` slices in Rust; ``read()`` (to EOF, what ``communicate()`` uses) collects
  into one bytes object grown in place, so memory peaks near the output size instead of
  about twice it (blocks + join), and output already read is put back if the read is
  cancelled;
* :func:`iter_lines` hands out every buffered line at once, for callers who want speed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Optional, SupportsIndex

from .. import _core
from .._sink import PipeSource

__all__ = ["StreamReader", "SubprocessStreamProtocol"]

# Lines handed out per iter_lines batch, at most (in bytes, roughly).
BATCH_BYTES = 1 << 20
# Largest single read from a pipe into the buffer. With the eager reads below, 64 KiB,
# 256 KiB and 1 MiB reads measured the same within noise (bench workload 5, alternating
# runs); the smallest keeps the buffer's overshoot past the pause threshold smallest.
MAX_SINK_READ = 1 << 16
# The core reserves room in the buffer for what the pipe holds (FIONREAD), not for a
# whole read, and the buffer keeps it while the reader lives: a reader that only ever
# got a line holds a few bytes, not 64 KiB (readers of cancelled spawns wait in
# reference cycles for the garbage collector; over a soak, a whole read's room each was
# several MiB of RSS).
# Largest single read while read() collects to EOF (a grown pipe holds 1 MiB).
MAX_SLURP_READ = 1 << 20
# A reader that runs out of buffered data while its last pipe read found data reads
# the pipe itself instead of waiting a loop iteration for the readiness callback. It
# takes at most this much that way before it waits on the loop again, so a fast child
# cannot starve the loop's other tasks.
EAGER_BYTES = 1 << 20


class StreamReader(asyncio.StreamReader):
    """``asyncio.StreamReader`` with the same API and semantics, buffered in Rust."""

    _buffer: Any  # a _core.StreamBuffer in place of asyncio's bytearray
    _limit: int
    _eof: bool
    _paused: bool
    _exception: Optional[BaseException]
    _transport: Optional[asyncio.ReadTransport]

    def __init__(self, limit: int = 2**16, loop: Optional[asyncio.AbstractEventLoop] = None) -> None:
        super().__init__(limit, loop)
        self._buffer = _core.StreamBuffer()
        # Set while read() collects to EOF: feed_data appends straight into it.
        self._slurp: Optional[_core.BytesBuilder] = None
        # Set by a pipe transport that feeds this reader directly (attach_pipe_source).
        self._pipe_transport: Optional[PipeSource] = None
        # The last pipe read found data, so more may be waiting.
        self._pipe_has_more = False
        self._eager_left = EAGER_BYTES

    def feed_data(self, data: Iterable[SupportsIndex]) -> None:
        assert not self._eof, "feed_data after feed_eof"
        if not data:
            return
        slurp = self._slurp
        if slurp is not None:
            # read() wants everything until EOF; it is woken by feed_eof/set_exception.
            slurp.extend(data if isinstance(data, bytes) else bytes(data))
            return
        self._buffer.extend(data)
        self._fed()

    def attach_pipe_source(self, source: PipeSource) -> None:
        """``_sink.PipeSink``: ``source`` feeds this reader from now on."""
        self._pipe_transport = source

    def feed_from_pipe(self, pipe: _core.ReadPipe) -> Optional[int]:
        """What ``feed_data(pipe.read(...))`` does, without the intermediate bytes: the
        pipe is read straight into the buffer. fastspawn's pipe transport calls it
        instead of going through the protocol when the protocol is fastspawn's own
        (which would only call ``feed_data``). Returns the count read, 0 at EOF (the
        transport then closes as usual), None when nothing was there."""
        assert not self._eof, "feed_data after feed_eof"
        slurp = self._slurp
        if slurp is not None:
            got: Optional[int] = slurp.read_from(pipe, MAX_SLURP_READ)
            self._pipe_has_more = bool(got)
            return got
        n: Optional[int] = self._buffer.read_from(pipe, MAX_SINK_READ)
        self._pipe_has_more = bool(n)
        if n:
            self._fed()
        return n

    def _eager_source(self) -> Optional[PipeSource]:
        """The pipe to read now instead of waiting for the loop, if reading it eagerly is
        allowed: the last read found data, the eager budget is not spent, and waiting
        would neither raise nor have to resume a paused transport."""
        if (
            self._pipe_has_more
            and self._eager_left > 0
            and self._waiter is None  # type: ignore[attr-defined]
            and not self._paused
            and self._exception is None
        ):
            return self._pipe_transport
        return None

    async def _wait_for_data(self, func_name: str) -> None:
        # While the child writes faster than we read, skip the trip through the loop:
        # the pipe is read here, as the readiness callback would have read it.
        source = self._eager_source()
        if source is not None:
            got = source.read_into_sink()
            if got:
                self._eager_left -= got
                return
            if self._eof:
                # That read found EOF, and the transport passed it on at once.
                return
        await super()._wait_for_data(func_name)  # type: ignore[misc]
        self._eager_left = EAGER_BYTES

    def _fed(self) -> None:
        """After data was added to the buffer: wake the reader, pause if over the limit."""
        self._wakeup_waiter()  # type: ignore[attr-defined]
        if self._transport is not None and not self._paused and len(self._buffer) > 2 * self._limit:
            try:
                self._transport.pause_reading()
            except NotImplementedError:
                # The transport can't be paused; we'll just have to buffer all data.
                self._transport = None
            else:
                self._paused = True
                self._buffer.paused = True

    def _maybe_resume_transport(self) -> None:
        super()._maybe_resume_transport()  # type: ignore[misc]
        self._buffer.paused = self._paused

    def set_exception(self, exc: Exception) -> None:
        super().set_exception(exc)
        # From now on every line goes through readline(), which raises it.
        self._buffer.blocked = True

    async def read(self, n: int = -1) -> bytes:
        if self._exception is not None:
            raise self._exception
        if n == 0:
            return b""
        if n < 0:
            return await self._read_to_eof()
        if not self._buffer and not self._eof:
            # Nothing buffered: a pipe read straight into the bytes returned, when the
            # pipe may be read eagerly (see _wait_for_data), saves the copy through it.
            source = self._eager_source()
            if source is not None:
                direct = source.read_direct(n)
                if direct:
                    self._eager_left -= len(direct)
                    return direct
                # The pipe was just found empty (or at EOF): no second try while waiting.
                self._pipe_has_more = False
            if not self._eof:
                await self._wait_for_data("read")
        data: bytes = self._buffer.take(n)
        self._maybe_resume_transport()
        return data

    async def _read_to_eof(self) -> bytes:
        if self._waiter is not None and not self._eof:  # type: ignore[attr-defined]
            # What _wait_for_data would raise, before the buffer is touched: the reader
            # already waiting keeps its data.
            raise RuntimeError("read() called while another coroutine is already waiting for incoming data")
        builder = _core.BytesBuilder()
        builder.extend_from(self._buffer)
        self._slurp = builder
        try:
            while not self._eof:
                if self._exception is not None:
                    raise self._exception
                await self._wait_for_data("read")
            if self._exception is not None:
                raise self._exception
        except BaseException:
            # Keep what was read for the next reader (asyncio would lose it: cpython#139373).
            self._slurp = None
            if len(builder):
                rest = bytes(self._buffer)
                self._buffer.clear()
                self._buffer.extend(builder.finish())
                self._buffer.extend(rest)
            raise
        self._slurp = None
        return builder.finish()

    async def readexactly(self, n: int) -> bytes:
        if n < 0:
            raise ValueError("readexactly size can not be less than zero")
        if self._exception is not None:
            raise self._exception
        if n == 0:
            return b""
        while len(self._buffer) < n:
            if self._eof:
                incomplete = bytes(self._buffer)
                self._buffer.clear()
                raise asyncio.IncompleteReadError(incomplete, n)
            await self._wait_for_data("readexactly")
        data: bytes = self._buffer.take(n)
        self._maybe_resume_transport()
        return data

    def __aiter__(self) -> _core.LineIter:  # type: ignore[override]
        # The async iterator is a Rust object: a buffered line costs no Python frame.
        return _core.LineIter(self._buffer, self._limit, self._anext_slow, self._maybe_resume_transport)

    async def __anext__(self) -> bytes:
        # For direct callers only (`async for` uses the iterator __aiter__ returns): a
        # coroutine, as asyncio's, so nothing is taken from the buffer until it runs.
        line: bytes = await self.__aiter__().__anext__()
        return line

    async def _anext_slow(self) -> bytes:
        line = await self.readline()
        if line == b"":
            raise StopAsyncIteration
        return line

    def take_lines(self) -> list[bytes]:
        """Every whole buffered line (one batch), none longer than the limit allows."""
        if self._exception is not None:
            return []
        lines: list[bytes] = self._buffer.take_lines(self._limit, BATCH_BYTES)
        if lines and self._paused:
            self._maybe_resume_transport()
        return lines


class SubprocessStreamProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """asyncio's protocol for ``Process``, with fastspawn's ``StreamReader``s."""

    _limit: int
    _loop: asyncio.AbstractEventLoop
    _pipe_fds: list[int]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's own connection_made (the same in 3.9-3.13), with fastspawn's readers
        # made in place of asyncio's.
        assert isinstance(transport, asyncio.SubprocessTransport)
        self._transport = transport
        stdout = transport.get_pipe_transport(1)
        if stdout is not None:
            self.stdout = StreamReader(limit=self._limit, loop=self._loop)
            self.stdout.set_transport(stdout)
            self._pipe_fds.append(1)
        stderr = transport.get_pipe_transport(2)
        if stderr is not None:
            self.stderr = StreamReader(limit=self._limit, loop=self._loop)
            self.stderr.set_transport(stderr)
            self._pipe_fds.append(2)
        stdin = transport.get_pipe_transport(0)
        if stdin is not None:
            self.stdin = asyncio.StreamWriter(
                stdin,  # type: ignore[arg-type]
                protocol=self,
                reader=None,
                loop=self._loop,
            )
