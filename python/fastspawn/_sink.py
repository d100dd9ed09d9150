"""The contract between a read pipe transport and a reader it feeds directly.

fastspawn's pipe transport normally hands data to its protocol. When the protocol would
only pass it on to a reader that can take it straight from the pipe (fastspawn's
``StreamReader``), the transport feeds that reader instead, and the reader may read the
pipe itself while it waits. Neither side knows the other's class: each implements its
half of this contract (in the spirit of ``asyncio.BufferedProtocol``).
"""

from __future__ import annotations

from typing import Optional, Protocol

from . import _core

__all__ = ["PipeSink", "PipeSource"]


class PipeSource(Protocol):
    """The read pipe transport, as a directly fed reader sees it."""

    def read_into_sink(self) -> int:
        """One read into the sink now: the count, 0 when nothing was there, at EOF
        (handled as the loop would) or while paused or closing."""
        ...

    def read_direct(self, n: int) -> Optional[bytes]:
        """Up to ``n`` bytes read now and returned instead of fed: None when nothing was
        there, at EOF (handled as the loop would) or while paused or closing."""
        ...


class PipeSink(Protocol):
    """A reader that a read pipe transport feeds directly."""

    def attach_pipe_source(self, source: PipeSource) -> None:
        """From now on ``source`` feeds this reader (and may be read by it)."""
        ...

    def feed_from_pipe(self, pipe: _core.ReadPipe) -> Optional[int]:
        """Reads ``pipe`` into the reader: the count, 0 at EOF, None when nothing was there."""
        ...

    def feed_eof(self) -> None:
        """The pipe reached EOF."""
        ...
