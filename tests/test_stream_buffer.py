"""``_core.StreamBuffer`` as the ``bytearray`` it stands in for inside ``StreamReader``:
3.15's ``take_bytes`` (which 3.15's ``StreamReader`` calls), the read-only buffer protocol
(3.14+ ``start_tls`` hands the reader's buffer to ``ssl.MemoryBIO.write``: gh-142352) and
``BufferError`` while a view is exported; and ``async for``'s flow control, which the
line iterator applies from the buffer's ``paused`` flag, as asyncio's ``readline`` does."""

from __future__ import annotations

import asyncio
import gc
import operator
import ssl
import sys
from typing import Any, Callable, Optional

import pytest

from fastspawn import _core
from fastspawn._private.streams import StreamReader as FastReader

TAKE_ARGS: list[Any] = [None, 0, 1, 3, 6, 7, -1, -6, -7, True, False, 2**63, -(2**63) - 1, 1.5, "1", b"1"]


def take_bytes_reference(data: bytearray, n: Any = None) -> bytes:
    """``bytearray.take_bytes`` where it exists (3.15+), else its semantics written out
    (CPython's ``bytearray_take_bytes_impl``)."""
    if hasattr(data, "take_bytes"):
        taken: bytes = data.take_bytes(n)
        return taken
    size = len(data)
    if n is None:
        to_take = size
    elif hasattr(type(n), "__index__"):
        to_take = operator.index(n)
        if not -sys.maxsize - 1 <= to_take <= sys.maxsize:
            raise IndexError(f"cannot fit '{type(n).__name__}' into an index-sized integer")
        if to_take < 0:
            to_take += size
    else:
        raise TypeError("n must be an integer or None")
    if to_take < 0 or to_take > size:
        raise IndexError(f"can't take {to_take} bytes outside size {size}")
    taken = bytes(data[:to_take])
    del data[:to_take]
    return taken


def outcome(call: Callable[[], Any]) -> Any:
    try:
        return ("ok", call())
    except Exception as e:
        return (type(e).__name__, str(e))


@pytest.mark.parametrize("content", [b"", b"abcdef"])
@pytest.mark.parametrize("n", TAKE_ARGS, ids=repr)
def test_take_bytes_is_bytearrays(content: bytes, n: Any) -> None:
    ours = _core.StreamBuffer()
    ours.extend(content)
    theirs = bytearray(content)
    assert outcome(lambda: ours.take_bytes(n)) == outcome(lambda: take_bytes_reference(theirs, n))
    assert bytes(ours) == bytes(theirs)


def test_take_bytes_default_takes_everything() -> None:
    buf = _core.StreamBuffer()
    buf.extend(b"abc\n")
    assert buf.take_bytes() == b"abc\n"
    assert len(buf) == 0


def filled(data: bytes = b"one\ntwo\n") -> Any:
    buf = _core.StreamBuffer()
    buf.extend(data)
    return buf


# Everything that moves or resizes the bytes, as (name, call on a buffer holding "one\ntwo\n").
RESIZING: list[tuple[str, Callable[[Any], Any]]] = [
    ("extend", lambda b: b.extend(b"x")),
    ("clear", lambda b: b.clear()),
    ("del", lambda b: b.__delitem__(slice(0, 1))),
    ("take", lambda b: b.take(1)),
    ("take_bytes", lambda b: b.take_bytes(1)),
    ("take_bytes(0)", lambda b: b.take_bytes(0)),
    ("next_line", lambda b: b.next_line(100)),
    ("take_lines", lambda b: b.take_lines(100, 100)),
    ("extend_from", lambda b: _core.BytesBuilder().extend_from(b)),
]


@pytest.mark.parametrize("call", [c for _, c in RESIZING], ids=[n for n, _ in RESIZING])
def test_exported_buffer_cannot_be_resized_as_bytearray(call: Callable[[Any], Any]) -> None:
    ours, theirs = filled(), bytearray(b"one\ntwo\n")
    with memoryview(ours), memoryview(theirs):
        assert outcome(lambda: call(ours))[0] == "BufferError"
        with pytest.raises(BufferError) as stock:
            theirs.clear()
        assert outcome(lambda: call(ours))[1] == str(stock.value)
        assert bytes(ours) == b"one\ntwo\n"
    # Released: the same call goes through.
    result = call(ours)
    if asyncio.iscoroutine(result):  # next_line's, on 3.12+: never awaited here
        result.close()


def test_exported_buffer_allows_what_changes_nothing() -> None:
    buf = filled()
    with memoryview(buf) as view:
        buf.extend(b"")
        del buf[:0]
        assert buf.take(0) == b""
        assert buf.find(b"two") == 4 and buf[:3] == b"one" and buf == b"one\ntwo\n"
        assert bytes(view) == b"one\ntwo\n"
    empty = _core.StreamBuffer()
    with memoryview(empty):
        empty.clear()


def test_buffer_is_read_only_bytes() -> None:
    buf = filled()
    view = memoryview(buf)
    assert (view.readonly, view.format, view.itemsize, view.shape, view.tobytes()) == (
        True,
        "B",
        1,
        (8,),
        b"one\ntwo\n",
    )
    with pytest.raises(TypeError):
        view[0] = 0
    view.release()
    # 3.14's StreamReader.read(): a copy through a temporary view, then a delete.
    assert bytes(memoryview(buf)[:4]) == b"one\n"
    del buf[:4]
    assert buf.take_bytes() == b"two\n"


def test_views_released_by_the_garbage_collector_unblock_the_buffer() -> None:
    buf = filled()
    cycle: list[Any] = [memoryview(buf)]
    cycle.append(cycle)
    del cycle
    gc.collect()
    assert buf.take_bytes() == b"one\ntwo\n"


def test_memory_bio_takes_the_buffer_as_start_tls_does() -> None:
    """What 3.14+ ``loop.start_tls`` does with a server's reader buffer (gh-142352)."""
    buf = filled()
    bio = ssl.MemoryBIO()
    bio.write(buf)
    buf.clear()
    assert bio.read() == b"one\ntwo\n"
    assert len(buf) == 0


class RecordingTransport(asyncio.ReadTransport):
    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    def pause_reading(self) -> None:
        self.events.append("pause")

    def resume_reading(self) -> None:
        self.events.append("resume")


def flow_control(reader_cls: type, exception_after: Optional[int]) -> Any:
    async def main() -> Any:
        events: list[str] = []
        reader = reader_cls(limit=4)
        reader.set_transport(RecordingTransport(events))
        for _ in range(3):
            reader.feed_data(b"ab\n" * 3)  # 9 bytes: more than 2 * limit, so it pauses
        got: list[Any] = []
        try:
            async for line in reader:
                got.append((line, list(events)))
                if len(got) == exception_after:
                    reader.set_exception(ValueError("boom"))
                if len(got) == 8:  # resumed at this line: pause again
                    reader.feed_data(b"cd\n" * 4)
                    reader.feed_eof()
        except ValueError as e:
            got.append(repr(e))
        return got, events, len(reader._buffer)

    return asyncio.run(main())


@pytest.mark.parametrize("exception_after", [None, 1, 8])
def test_async_for_pauses_and_resumes_as_asyncio(exception_after: Optional[int]) -> None:
    ours = flow_control(FastReader, exception_after)
    assert ours == flow_control(asyncio.StreamReader, exception_after)
    if exception_after is None:
        assert ours[1] == ["pause", "resume", "pause", "resume"]
