"""``communicate()`` that neither a timeout nor a cancellation can spoil.

A :class:`Communication` is what one ``Process.communicate()`` call leaves for the next:
the output read so far and whether stdin still has to be drained and closed. A call that
times out (``subprocess.TimeoutExpired``, whose ``output``/``stderr`` hold everything read
so far) or is cancelled leaves it on the process, and the next call continues from there
and returns everything, as ``subprocess.Popen.communicate`` does after a timeout (and
asyncio on CPython main, gh-139373). Input is handed to the stdin transport in full on
the first call, so it is never sent twice; passing ``input`` again raises ``ValueError``.

Nothing is lost because every read used here either returns data or, cancelled, has taken
none: ``read(n)`` takes from the buffer only after its last await, in asyncio's reader as
in fastspawn's, and fastspawn's ``read()`` puts back what it collected when cancelled
(``_private.streams``). Only public reader API is used, so the same holds with asyncio's
own streams (``FASTSPAWN_STOCK_STREAMS=1``, or a Python outside ``_private.VERIFIED``).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections import deque
from collections.abc import Coroutine, Iterable
from typing import Any, Optional, Union

from ._private import FAST_STREAMS
from ._versions import CHANGES

if FAST_STREAMS:
    # Only here: it needs the core, which the pure-Python fallback lacks (``_load``).
    from ._private import streams as _fast

__all__ = ["Communication", "one_stream"]

logger = logging.getLogger("asyncio")

Input = Union[bytes, bytearray, memoryview, None]
Output = tuple[Optional[bytes], Optional[bytes]]

# Bytes taken per read where output is collected piece by piece (a timeout, a cap).
CHUNK = 1 << 16
# asyncio's communicate() feeds (drains and closes) a stdin pipe given no input from 3.12
# on; 3.11 leaves it open.
_FEEDS_WITHOUT_INPUT = CHANGES["communicate_feeds_without_input"].here


def one_stream(proc: asyncio.subprocess.Process, input: Input) -> int:
    """1 or 2 when ``communicate(input)`` only has that stream to collect, else 0.

    With no stdin pipe every supported Python feeds nothing (3.12+ would close a stdin
    pipe even without input, 3.11 would leave it open: not taken here)."""
    if input is not None or proc.stdin is not None or (proc.stdout is None) == (proc.stderr is None):
        return 0
    return 1 if proc.stdout is not None else 2


class Sink:
    """One stream's output: everything with no ``cap``; else the first ``cap`` bytes (or,
    with ``tail``, the last ``cap``), the rest counted in ``dropped``. Never holds more
    than ``cap`` bytes plus the chunk being added."""

    __slots__ = ("cap", "chunks", "done", "dropped", "size", "tail")

    def __init__(self, cap: Optional[int], tail: bool = False) -> None:
        self.cap = cap
        self.tail = tail
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.dropped = 0
        self.done = False

    def add(self, data: bytes) -> None:
        cap = self.cap
        if cap is not None:
            if self.tail:
                self._add_tail(data, cap)
                return
            if self.size + len(data) > cap:
                room = max(cap - self.size, 0)
                self.dropped += len(data) - room
                data = data[:room]
        if data:
            self.chunks.append(data)
            self.size += len(data)

    def _add_tail(self, data: bytes, cap: int) -> None:
        if len(data) >= cap:
            # It alone fills the cap: nothing kept before it stays.
            self.dropped += self.size + len(data) - cap
            self.chunks.clear()
            data = data[len(data) - cap :]
            self.size = 0
        if data:
            self.chunks.append(data)
            self.size += len(data)
        excess = self.size - cap
        while excess > 0:
            first = self.chunks[0]
            if len(first) <= excess:
                self.chunks.popleft()
                cut = len(first)
            else:
                self.chunks[0] = first[excess:]
                cut = excess
            self.size -= cut
            self.dropped += cut
            excess -= cut

    def value(self) -> bytes:
        """Everything kept so far (joined once; later calls reuse the join)."""
        if len(self.chunks) > 1:
            joined = b"".join(self.chunks)
            self.chunks.clear()
            self.chunks.append(joined)
        return self.chunks[0] if self.chunks else b""


async def _settle(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancels ``tasks`` and waits until each has finished (each is one read or drain,
    so one loop iteration): nobody is left waiting on a reader that the next call will
    read. A cancellation meanwhile is passed on once they have."""
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    cancelled = False
    while pending:
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError:
            cancelled = True
        pending = [t for t in pending if not t.done()]
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: what failed during a cancellation is moot
    if cancelled:
        raise asyncio.CancelledError


async def _all(coros: list[Coroutine[Any, Any, None]]) -> None:
    """Runs ``coros`` to the end together; the first exception cancels the rest."""
    if len(coros) == 1:
        await coros[0]
        return
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except BaseException:
        await _settle(tasks)
        raise
    failed = next((t for t in tasks if t.done() and not t.cancelled() and t.exception() is not None), None)
    if failed is not None:
        await _settle(tasks)
        raise failed.exception()  # type: ignore[misc]


class Communication:
    """The state of ``communicate()`` on one process, from its first call to the one that
    returns. ``cap`` (bytes per stream) is ``run_process``'s ``max_output``, ``tail``
    whether the last bytes are kept rather than the first."""

    def __init__(
        self, proc: asyncio.subprocess.Process, input: Input, cap: Optional[int] = None, tail: bool = False
    ) -> None:
        self.proc = proc
        self.sinks: dict[int, Sink] = {}
        for fd, stream in ((1, proc.stdout), (2, proc.stderr)):
            if stream is not None:
                self.sinks[fd] = Sink(cap, tail)
        stdin = proc.stdin if input is not None or _FEEDS_WITHOUT_INPUT else None
        self.stdin: Optional[asyncio.StreamWriter] = stdin
        if stdin is not None and input is not None:
            # All of it goes to the transport now, which writes it as the pipe takes it:
            # a timeout or a cancellation can never make it be sent twice.
            if asyncio.get_running_loop().get_debug():
                logger.debug("%r communicate: feed stdin (%s bytes)", proc, len(input))
            try:
                stdin.write(input)
            except (BrokenPipeError, ConnectionResetError) as exc:
                self._stdin_failed(exc)

    @classmethod
    def finished(cls, proc: asyncio.subprocess.Process, fd: int, output: bytes) -> Communication:
        """A communication whose stream ``fd`` (the only one) was read to the end."""
        comm = cls(proc, None)
        sink = comm.sinks[fd]
        sink.add(output)
        sink.done = True
        return comm

    def _stdin_failed(self, exc: BaseException) -> None:
        # communicate() ignores BrokenPipeError and ConnectionResetError, as asyncio's.
        if asyncio.get_running_loop().get_debug():
            logger.debug("%r communicate: stdin got %r", self.proc, exc)

    async def _finish_stdin(self) -> None:
        stdin = self.stdin
        assert stdin is not None
        try:
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            self._stdin_failed(exc)
        if asyncio.get_running_loop().get_debug():
            logger.debug("%r communicate: close stdin", self.proc)
        stdin.close()
        self.stdin = None

    async def _collect(self, fd: int, whole: bool) -> None:
        stream = self.proc.stdout if fd == 1 else self.proc.stderr
        assert stream is not None
        sink = self.sinks[fd]
        if asyncio.get_running_loop().get_debug():
            logger.debug("%r communicate: read %s", self.proc, "stdout" if fd == 1 else "stderr")
        if whole:
            # fastspawn's read() to EOF: one buffer, and put back if cancelled.
            sink.add(await stream.read())
        else:
            while data := await stream.read(CHUNK):
                sink.add(data)
        # The pipe transport closed itself at EOF (asyncio's _read_stream closes it again).
        sink.done = True

    def _work(self, whole: bool) -> list[Coroutine[Any, Any, None]]:
        work = [self._finish_stdin()] if self.stdin is not None else []
        for fd, sink in self.sinks.items():
            if not sink.done:
                stream = self.proc.stdout if fd == 1 else self.proc.stderr
                fast = whole and FAST_STREAMS and sink.cap is None and isinstance(stream, _fast.StreamReader)
                work.append(self._collect(fd, fast))
        return work

    def output(self) -> Output:
        out, err = self.sinks.get(1), self.sinks.get(2)
        return (None if out is None else out.value(), None if err is None else err.value())

    async def _run(self, whole: bool) -> None:
        work = self._work(whole)
        if work:
            await _all(work)
        await self.proc.wait()

    async def run(self, timeout: Optional[float], args: Any) -> Output:
        """Feeds, collects and waits for the exit; ``subprocess.TimeoutExpired`` (naming
        ``args``) with the output so far after ``timeout`` seconds, the child left running."""
        if timeout is None:
            await self._run(whole=True)
            return self.output()
        try:
            async with asyncio.timeout(timeout) as scope:
                await self._run(whole=False)
        except TimeoutError:
            if not scope.expired():
                raise
            out, err = self.output()
            raise subprocess.TimeoutExpired(args, timeout, output=out, stderr=err) from None
        return self.output()
