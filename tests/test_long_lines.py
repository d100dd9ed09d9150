"""``fastspawn.iter_lines(stream, max_line=None)``: never raises on a long line and never
drops data; lines over the stream's limit come whole, or, with ``max_line``, in pieces of
``max_line`` bytes of which only the last ends with the separator, in bounded memory.
For asyncio's StreamReader (public API only) and fastspawn's, whatever the chunking."""

from __future__ import annotations

import asyncio
import tracemalloc
from asyncio.subprocess import PIPE
from typing import Any, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastspawn
from conftest import PY, Impl
from fastspawn._private.streams import StreamReader as FastReader

READERS = {"asyncio": asyncio.StreamReader, "fastspawn": FastReader}

chunks_st = st.lists(
    st.binary(max_size=60).map(lambda b: b.replace(b"\x00", b"\n")) | st.sampled_from([b"x" * 100, b"\n"]),
    max_size=16,
)


def lines_of(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    out = [line + b"\n" for line in lines[:-1]]
    return out + ([lines[-1]] if lines[-1] else [])


def pieces_of(data: bytes, max_line: Optional[int]) -> list[bytes]:
    if max_line is None:
        return lines_of(data)
    return [line[i : i + max_line] for line in lines_of(data) for i in range(0, len(line), max_line)]


def consume(
    reader_cls: type, chunks: list[bytes], limit: int, max_line: Optional[int], fail_after: Optional[int]
) -> tuple[list[bytes], Any, bytes]:
    async def main() -> tuple[list[bytes], Any, bytes]:
        reader = reader_cls(limit=limit)

        async def feed() -> None:
            for i, chunk in enumerate(chunks):
                if i == fail_after:
                    reader.set_exception(RuntimeError("boom"))
                    return
                reader.feed_data(chunk)
                await asyncio.sleep(0)
            reader.feed_eof()

        feeder = asyncio.ensure_future(feed())
        got: list[bytes] = []
        error = None
        try:
            async for batch in fastspawn.iter_lines(reader, max_line):
                assert batch
                got.extend(batch)
        except RuntimeError as exc:
            error = str(exc)
        await feeder
        return got, error, bytes(reader._buffer)

    return asyncio.run(main())


@settings(max_examples=300, deadline=None)
@given(
    chunks=chunks_st,
    limit=st.integers(1, 24),
    max_line=st.none() | st.integers(1, 30),
    reader=st.sampled_from(list(READERS)),
)
def test_pieces_are_the_stream(chunks: list[bytes], limit: int, max_line: Optional[int], reader: str) -> None:
    got, error, left = consume(READERS[reader], chunks, limit, max_line, None)
    data = b"".join(chunks)
    assert error is None and left == b""
    assert b"".join(got) == data
    # Each line whole, or cut into max_line pieces from its start: only a line's last
    # piece ends with the separator.
    assert got == pieces_of(data, max_line)


@settings(max_examples=150, deadline=None)
@given(
    chunks=chunks_st,
    limit=st.integers(1, 24),
    max_line=st.none() | st.integers(1, 30),
    fail_after=st.integers(0, 15),
    reader=st.sampled_from(list(READERS)),
)
def test_an_error_of_the_stream_comes_after_what_was_read(
    chunks: list[bytes], limit: int, max_line: Optional[int], fail_after: int, reader: str
) -> None:
    got, error, left = consume(READERS[reader], chunks, limit, max_line, fail_after)
    fed = b"".join(chunks[:fail_after])
    if fail_after < len(chunks):
        assert error == "boom"
    assert b"".join(got) + left == fed


def test_max_line_must_be_positive() -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="max_line"):
            async for _ in fastspawn.iter_lines(asyncio.StreamReader(), max_line=0):
                pass

    asyncio.run(main())


LONG = 1 << 20


def test_a_line_over_the_limit_comes_whole_from_a_child(impl: Impl) -> None:
    script = f"import sys; sys.stdout.write('a\\n' + 'x' * {LONG} + '\\nb\\n' + 'y' * 70000)"

    async def main() -> tuple[list[bytes], Any]:
        proc = await asyncio.create_subprocess_exec(PY, "-c", script, stdout=PIPE)
        assert proc.stdout is not None
        lines = [line async for batch in fastspawn.iter_lines(proc.stdout) for line in batch]
        await proc.wait()
        # readline() keeps asyncio's semantics: the limit is an error there.
        proc = await asyncio.create_subprocess_exec(PY, "-c", script, stdout=PIPE)
        assert proc.stdout is not None
        await proc.stdout.readline()
        with pytest.raises(ValueError) as caught:
            await proc.stdout.readline()
        await proc.communicate()
        return lines, str(caught.value)

    lines, error = impl.run(main())
    assert lines == [b"a\n", b"x" * LONG + b"\n", b"b\n", b"y" * 70000]
    assert "limit" in error


def test_max_line_keeps_memory_bounded(impl: Impl) -> None:
    """64 MiB without a separator, read with max_line=64 KiB: the pieces add up to the
    output, none is longer, and the reading side's Python memory peaks far below it."""
    size = 64 << 20
    script = f"import os\nb = b'z' * (1 << 20)\nfor _ in range({size >> 20}): os.write(1, b)\nos.write(1, b'\\n')"

    async def main() -> tuple[int, int, int]:
        proc = await asyncio.create_subprocess_exec(PY, "-c", script, stdout=PIPE)
        assert proc.stdout is not None
        total = longest = 0
        tracemalloc.start()
        try:
            async for batch in fastspawn.iter_lines(proc.stdout, max_line=65536):
                for piece in batch:
                    total += len(piece)
                    longest = max(longest, len(piece))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        await proc.wait()
        return total, longest, peak

    total, longest, peak = impl.run(main())
    assert total == size + 1
    assert longest == 65536
    assert peak < 8 << 20
