"""fastspawn's StreamReader (``fastspawn._private.streams``, what fastspawn hands out on
a verified Python) against asyncio.StreamReader: the same chunks in, the same lines,
bytes and errors out, whatever the chunking (hypothesis), for `async for`,
`iter_lines`, `read(n)`, `read()`, `readexactly`, `readuntil`."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Optional

from hypothesis import given, settings
from hypothesis import strategies as st

import fastspawn
from fastspawn._private.streams import StreamReader as FastReader

chunks_st = st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\x00", b"\n")), max_size=12)
limit_st = st.integers(min_value=1, max_value=24)


def outcome(exc: Optional[BaseException]) -> Any:
    return None if exc is None else (type(exc).__name__, str(exc))


def run(
    reader_cls: type,
    chunks: list[bytes],
    limit: int,
    consume: Callable[[asyncio.StreamReader], Any],
    fail_after: Optional[int] = None,
) -> Any:
    async def main() -> Any:
        reader = reader_cls(limit=limit)

        async def feed() -> None:
            for i, chunk in enumerate(chunks):
                if fail_after is not None and i == fail_after:
                    reader.set_exception(RuntimeError("boom"))
                    return
                reader.feed_data(chunk)
                await asyncio.sleep(0)
            reader.feed_eof()

        feeder = asyncio.ensure_future(feed())
        got: list[Any] = []
        try:
            await consume(reader, got)  # type: ignore[call-arg]
            exc = None
        except Exception as e:
            exc = e
        feeder.cancel()
        try:
            await feeder
        except asyncio.CancelledError:
            pass
        return got, outcome(exc), bytes(reader._buffer)  # type: ignore[attr-defined]

    return asyncio.run(main())


def same(chunks: list[bytes], limit: int, consume: Any, fail_after: Optional[int] = None) -> None:
    stock = run(asyncio.StreamReader, chunks, limit, consume, fail_after)
    ours = run(FastReader, chunks, limit, consume, fail_after)
    assert ours == stock


async def async_for(reader: asyncio.StreamReader, got: list[Any]) -> None:
    async for line in reader:
        got.append(line)


async def batched(reader: asyncio.StreamReader, got: list[Any]) -> None:
    async for lines in fastspawn.iter_lines(reader):
        assert lines
        got.extend(lines)


async def read_all(reader: asyncio.StreamReader, got: list[Any]) -> None:
    got.append(await reader.read())


@settings(max_examples=150, deadline=None)
@given(chunks=chunks_st, limit=limit_st, fail_after=st.none() | st.integers(0, 12))
def test_async_for_lines(chunks: list[bytes], limit: int, fail_after: Optional[int]) -> None:
    same(chunks, limit, async_for, fail_after)


@settings(max_examples=150, deadline=None)
@given(chunks=chunks_st, limit=limit_st, fail_after=st.none() | st.integers(0, 12))
def test_iter_lines_is_async_for_in_batches(chunks: list[bytes], limit: int, fail_after: Optional[int]) -> None:
    stock = run(asyncio.StreamReader, chunks, limit, async_for, fail_after)
    ours = run(FastReader, chunks, limit, batched, fail_after)
    if stock[1] is not None and stock[1][0] == "ValueError":
        # A line over the limit: async for raises; iter_lines hands it out whole
        # (tests/test_long_lines.py).
        assert ours[1] is None or ours[1] == ("RuntimeError", "boom")
        return
    assert ours == stock


@settings(max_examples=100, deadline=None)
@given(chunks=chunks_st, limit=limit_st, sizes=st.lists(st.integers(-1, 30), min_size=1, max_size=8))
def test_read_sizes(chunks: list[bytes], limit: int, sizes: list[int]) -> None:
    async def consume(reader: asyncio.StreamReader, got: list[Any]) -> None:
        for n in sizes:
            got.append(await reader.read(n))

    same(chunks, limit, consume)


@settings(max_examples=100, deadline=None)
@given(chunks=chunks_st, limit=limit_st, fail_after=st.none() | st.integers(0, 12))
def test_read_to_eof(chunks: list[bytes], limit: int, fail_after: Optional[int]) -> None:
    stock = run(asyncio.StreamReader, chunks, limit, read_all, fail_after)
    ours = run(FastReader, chunks, limit, read_all, fail_after)
    assert ours[:2] == stock[:2]
    # When read() fails, asyncio drops what it had collected; fastspawn keeps it buffered.
    fed = b"".join(chunks if fail_after is None else chunks[:fail_after])
    assert ours[2] == (b"" if stock[1] is None else fed)


@settings(max_examples=100, deadline=None)
@given(chunks=chunks_st, limit=limit_st, sizes=st.lists(st.integers(0, 30), min_size=1, max_size=6))
def test_readexactly(chunks: list[bytes], limit: int, sizes: list[int]) -> None:
    async def consume(reader: asyncio.StreamReader, got: list[Any]) -> None:
        for n in sizes:
            got.append(await reader.readexactly(n))

    same(chunks, limit, consume)


@settings(max_examples=100, deadline=None)
@given(chunks=chunks_st, limit=limit_st, sep=st.sampled_from([b"\n", b"\n\n", b"ab", b"a"]))
def test_readuntil_and_readline_mixed(chunks: list[bytes], limit: int, sep: bytes) -> None:
    async def consume(reader: asyncio.StreamReader, got: list[Any]) -> None:
        for _ in range(6):
            try:
                got.append(await reader.readuntil(sep))
            except asyncio.LimitOverrunError as e:
                got.append(("overrun", e.consumed))
                got.append(await reader.readline())

    same(chunks, limit, consume)


def test_read_to_eof_keeps_output_when_cancelled() -> None:
    """asyncio loses what read() collected when it is cancelled (cpython#139373)."""

    async def main() -> bytes:
        reader = FastReader()
        task = asyncio.ensure_future(reader.read())
        await asyncio.sleep(0)
        reader.feed_data(b"first ")
        reader.feed_data(b"second")
        await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        reader.feed_data(b" third")
        reader.feed_eof()
        return await reader.read()

    assert asyncio.run(main()) == b"first second third"


def test_anext_called_directly_is_a_coroutine_that_takes_nothing_until_it_runs() -> None:
    def direct(reader_cls: type) -> tuple[bytes, bytes, list[bytes]]:
        async def main() -> tuple[bytes, bytes, list[bytes]]:
            reader = reader_cls()
            reader.feed_data(b"a\nb\nc\n")
            reader.feed_eof()
            first = await reader.__anext__()
            dropped = reader.__anext__()  # never awaited: must not take "b\n"
            dropped.close()
            second = await asyncio.create_task(reader.__anext__())
            rest = [line async for line in reader]
            return first, second, rest

        result: tuple[bytes, bytes, list[bytes]] = asyncio.run(main())
        return result

    assert direct(FastReader) == direct(asyncio.StreamReader) == (b"a\n", b"b\n", [b"c\n"])
