"""Pipe transports over the Rust core's non-blocking pipe ends.

They behave as asyncio's ``_UnixReadPipeTransport`` / ``_UnixWritePipeTransport`` do
(flow control, write buffering, ``write_eof``, broken pipes), but every read and write
is one call into the core, and they need nothing from the loop beyond the public
``add_reader``/``add_writer`` API, so they also run on uvloop.

The one deliberate difference: a transport whose loop is already closed cleans up
synchronously instead of scheduling callbacks, so garbage collection at interpreter
exit never raises "Event loop is closed".
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from typing import Any, Callable, Optional, Union

from . import _core
from ._sink import PipeSink
from ._watcher import FdWatcher

__all__ = ["ReadPipeTransport", "WritePipeTransport"]

# asyncio's own logger, so fastspawn's messages are configured with asyncio's.
logger = logging.getLogger("asyncio")

# Enough to drain a grown (1 MiB) pipe in a few reads; asyncio reads 256 KiB.
MAX_PROTOCOL_READ = 1 << 20
# After this many writes on a lost connection, asyncio logs a warning; we do the same.
LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5
# asyncio's _FlowControlMixin default high-water mark.
DEFAULT_HIGH_WATER = 64 * 1024


class _PipeTransportBase:
    """What both directions share: the loop, the protocol, closing."""

    _pipe: Optional[Union[_core.ReadPipe, _core.WritePipe]]
    # Set by the subprocess transport once its child has exited: the pipe is then only a
    # descriptor to release, not a forgotten resource worth a ResourceWarning.
    quiet_on_collect = False

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        pipe: Union[_core.ReadPipe, _core.WritePipe],
        protocol: asyncio.BaseProtocol,
        watcher: FdWatcher,
    ) -> None:
        self._loop = loop
        self._watcher = watcher
        self._pipe = pipe
        self._fileno = pipe.fileno()
        self._protocol = protocol
        self._closing = False
        self._extra: dict[str, Any] = {"pipe": pipe}

    def __repr__(self) -> str:
        state = "closed" if self._pipe is None else ("closing" if self._closing else "open")
        return f"<{type(self).__name__} fd={self._fileno} {state}>"

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def is_closing(self) -> bool:
        return self._closing

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def _loop_usable(self) -> bool:
        return not self._loop.is_closed()

    def _schedule_connection_lost(self, exc: Optional[Exception]) -> None:
        if self._loop_usable():
            self._loop.call_soon(self._call_connection_lost, exc)
        else:
            # Nobody can receive callbacks any more; just release the descriptor.
            self._release()

    def _call_connection_lost(self, exc: Optional[Exception]) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._release()
            # As asyncio's pipe transports: the protocol is let go (get_protocol() then
            # answers None), so nothing the transport still references keeps it alive.
            self._protocol = None  # type: ignore[assignment]

    def _release(self) -> None:
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None

    def _fatal_error(self, exc: Exception, message: str) -> None:
        # asyncio logs OSErrors (a broken pipe is expected) only in debug mode and hands
        # everything else to the loop's exception handler.
        if not isinstance(exc, OSError) and self._loop_usable():
            self._loop.call_exception_handler(
                {"message": message, "exception": exc, "transport": self, "protocol": self._protocol}
            )
        self._close(exc)

    def _close(self, exc: Optional[Exception]) -> None:
        raise NotImplementedError

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if self._pipe is not None:
            if not self.quiet_on_collect:
                _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._pipe.close()


class ReadPipeTransport(_PipeTransportBase, asyncio.ReadTransport):
    """The read side of a child's stdout or stderr."""

    _pipe: Optional[_core.ReadPipe]
    _protocol: asyncio.Protocol
    # As asyncio's read pipe transport: the most handed to the protocol per read.
    max_size = MAX_PROTOCOL_READ

    def __init__(
        self, loop: asyncio.AbstractEventLoop, pipe: _core.ReadPipe, protocol: asyncio.Protocol, watcher: FdWatcher
    ) -> None:
        super().__init__(loop, pipe, protocol, watcher)
        self._paused = False
        # A reader to read into directly, when the protocol in between would only pass
        # the data to it (set by the subprocess transport; see _sink).
        self.sink: Optional[PipeSink] = None

    def _release(self) -> None:
        super()._release()
        # The reader refers to this transport as its pipe source, so keeping it as the
        # sink would make a reference cycle: every pipe transport and reader (with its
        # buffer in the core) would wait for the garbage collector instead of going
        # with their last reference, as asyncio's do.
        self.sink = None

    def start(self) -> None:
        """Begins reading; called once the protocols are connected."""
        if not self._closing and not self._paused:
            self._watcher.add_reader(self._fileno, self._read_ready)

    def attach_sink(self, reader: PipeSink) -> None:
        """Reads go straight into ``reader`` from now on (the protocol in between would
        only pass the data on), and ``reader`` may read the pipe itself while it waits."""
        self.sink = reader
        reader.attach_pipe_source(self)

    def read_into_sink(self) -> int:
        """One read into the sink now, outside the loop's readiness callback: the count
        read, 0 when nothing was there, at EOF (handled as the loop would) or when the
        transport is paused or closing."""
        if self._paused or self._closing:
            return 0
        return self._read_ready()

    def read_direct(self, n: int) -> Optional[bytes]:
        """Up to ``n`` bytes read now and handed to the sink's caller instead of through
        its (empty) buffer: None when nothing was there, at EOF (handled as the loop
        would) or when the transport is paused or closing."""
        pipe = self._pipe
        if self._paused or self._closing or pipe is None:
            return None
        try:
            data = pipe.read_at_most(n)
        except OSError as exc:
            self._fatal_error(exc, "Fatal read error on pipe transport")
            return None
        if data is None:
            return None
        if data:
            return data
        self._at_eof()
        return None

    def _read_ready(self) -> int:
        got = self._read_once()
        if got and self._watcher.hangup_fd == self._fileno:
            # Every writer is gone (EPOLLHUP), so the pipe holds all there will ever be:
            # read on to EOF now rather than come back through the loop for it (a
            # paused or closed transport stops, as ever).
            total = got
            while got and not self._paused and not self._closing:
                got = self._read_once()
                total += got
            return total
        return got

    def _read_once(self) -> int:
        pipe = self._pipe
        if pipe is None:
            return 0
        sink = self.sink
        try:
            if sink is not None:
                got = sink.feed_from_pipe(pipe)
                if got is None:
                    return 0
                if got:
                    return got
            else:
                data = pipe.read(self.max_size)
                if data is None:
                    return 0
                if data:
                    self._protocol.data_received(data)
                    return len(data)
        except OSError as exc:
            self._fatal_error(exc, "Fatal read error on pipe transport")
            return 0
        self._at_eof()
        return 0

    def _at_eof(self) -> None:
        self._closing = True
        self._watcher.remove_reader(self._fileno)
        self._loop.call_soon(self._protocol.eof_received)
        self._loop.call_soon(self._call_connection_lost, None)
        sink = self.sink
        if sink is not None:
            # The protocol would only pass this EOF on to the reader, from the
            # connection_lost just scheduled: tell the reader now, so a task awaiting it
            # resumes in the next loop iteration instead of the one after. (feed_eof is
            # idempotent; the protocol's own call later changes nothing.)
            sink.feed_eof()

    def is_reading(self) -> bool:
        return not self._paused and not self._closing

    def pause_reading(self) -> None:
        if self._closing or self._paused:
            return
        self._paused = True
        self._watcher.remove_reader(self._fileno)

    def resume_reading(self) -> None:
        if self._closing or not self._paused:
            return
        self._paused = False
        self._watcher.add_reader(self._fileno, self._read_ready)

    def close(self) -> None:
        if not self._closing:
            self._close(None)

    def _close(self, exc: Optional[Exception]) -> None:
        self._closing = True
        if self._loop_usable():
            self._watcher.remove_reader(self._fileno)
        self._schedule_connection_lost(exc)


class WritePipeTransport(_PipeTransportBase, asyncio.Transport):
    """The write side of a child's stdin, with asyncio's flow control.

    An ``asyncio.Transport``, as asyncio's write pipe transport is (through its flow
    control mixin): ``pause_reading()``/``resume_reading()``/``is_reading()`` raise
    NotImplementedError rather than AttributeError."""

    _pipe: Optional[_core.WritePipe]

    def __init__(
        self, loop: asyncio.AbstractEventLoop, pipe: _core.WritePipe, protocol: asyncio.BaseProtocol, watcher: FdWatcher
    ) -> None:
        super().__init__(loop, pipe, protocol, watcher)
        self._conn_lost = 0
        self._protocol_paused = False
        self._high_water = DEFAULT_HIGH_WATER
        self._low_water = DEFAULT_HIGH_WATER // 4

    def start(self) -> None:
        """Watches for the reader going away (the fd polls readable with EPOLLERR)."""
        if not self._closing:
            self._watcher.add_reader(self._fileno, self._read_ready)

    def _read_ready(self) -> None:
        # The child closed its end of the pipe.
        if self.get_write_buffer_size():
            self._close(BrokenPipeError())
        else:
            self._close(None)

    def get_write_buffer_size(self) -> int:
        return 0 if self._pipe is None else self._pipe.buffered

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low_water, self._high_water)

    def set_write_buffer_limits(self, high: Optional[int] = None, low: Optional[int] = None) -> None:
        if high is None:
            high = DEFAULT_HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water = high
        self._low_water = low
        self._maybe_pause_protocol()

    def _maybe_pause_protocol(self) -> None:
        if self.get_write_buffer_size() <= self._high_water or self._protocol_paused:
            return
        self._protocol_paused = True
        try:
            self._protocol.pause_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler(
                {
                    "message": "protocol.pause_writing() failed",
                    "exception": exc,
                    "transport": self,
                    "protocol": self._protocol,
                }
            )

    def _maybe_resume_protocol(self) -> None:
        if not self._protocol_paused or self.get_write_buffer_size() > self._low_water:
            return
        self._protocol_paused = False
        try:
            self._protocol.resume_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler(
                {
                    "message": "protocol.resume_writing() failed",
                    "exception": exc,
                    "transport": self,
                    "protocol": self._protocol,
                }
            )

    def write(self, data: Union[bytes, bytearray, memoryview]) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            # The exception asyncio's pipe transport gives (an assert there).
            raise AssertionError(repr(data))
        if not data:
            return
        pipe = self._pipe
        if self._conn_lost or self._closing or pipe is None:
            if self._conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning("pipe closed by peer or os.write(pipe, data) raised exception.")
            self._conn_lost += 1
            return
        was_empty = pipe.buffered == 0
        try:
            left = pipe.write(data if isinstance(data, bytes) else bytes(data))
        except OSError as exc:
            self._conn_lost += 1
            self._fatal_error(exc, "Fatal write error on pipe transport")
            return
        if left:
            if was_empty:
                self._watcher.add_writer(self._fileno, self._write_ready)
            self._maybe_pause_protocol()

    def _write_ready(self) -> None:
        pipe = self._pipe
        if pipe is None:
            return
        try:
            left = pipe.flush()
        except OSError as exc:
            pipe.discard()
            self._conn_lost += 1
            self._watcher.remove_writer(self._fileno)
            self._fatal_error(exc, "Fatal write error on pipe transport")
            return
        if left:
            return
        self._watcher.remove_writer(self._fileno)
        self._maybe_resume_protocol()
        if self._closing:
            self._watcher.remove_reader(self._fileno)
            self._call_connection_lost(None)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if self._closing or self._pipe is None:
            return
        self._closing = True
        if not self._pipe.buffered:
            if self._loop_usable():
                self._watcher.remove_reader(self._fileno)
            self._schedule_connection_lost(None)

    def close(self) -> None:
        if self._pipe is not None and not self._closing:
            self.write_eof()

    def abort(self) -> None:
        self._close(None)

    def _close(self, exc: Optional[Exception]) -> None:
        self._closing = True
        pipe = self._pipe
        if self._loop_usable():
            if pipe is not None and pipe.buffered:
                self._watcher.remove_writer(self._fileno)
            self._watcher.remove_reader(self._fileno)
        if pipe is not None:
            pipe.discard()
        self._schedule_connection_lost(exc)
