"""``_core.BytesBuilder`` (what ``read()`` to EOF and so ``communicate()`` collect into) at
the sizes where it changes strategy: a vector up to 64 KiB, then a mapping whose whole
pages ``finish`` moves onto the ``bytes`` object (or copies, when the allocator puts the
object's data elsewhere in a page), with partial first and last pages copied. Every result
is checked byte for byte, and must outlive the builder and its own freeing."""

from __future__ import annotations

import mmap
import os
import threading

import pytest

from fastspawn import _core

PAGE = mmap.PAGESIZE
SIZES = [
    0,
    1,
    PAGE - 1,
    PAGE,
    PAGE + 1,
    (1 << 16) - 1,
    1 << 16,
    (1 << 16) + 1,
    16 * PAGE + 17,
    (3 << 20) + PAGE + 1,
    (40 << 20) + 12_345,
]


def pattern(n: int, seed: int = 0) -> bytes:
    block = bytes((i * 7 + seed) % 251 for i in range(251 * 16))
    return (block * (n // len(block) + 1))[:n]


@pytest.mark.parametrize("n", SIZES)
def test_extend_then_finish_is_byte_for_byte(n: int) -> None:
    data = pattern(n, n % 13)
    builder = _core.BytesBuilder()
    for start in range(0, n, 100_003):
        builder.extend(data[start : start + 100_003])
    assert len(builder) == n
    out = builder.finish()
    assert type(out) is bytes and len(builder) == 0
    assert out == data
    del builder
    assert out == data
    assert builder_reused(n) == pattern(n, 1)


def builder_reused(n: int) -> bytes:
    """A second builder after the first's result is freed: the allocator reuses the range."""
    builder = _core.BytesBuilder()
    builder.extend(pattern(n, 1))
    return builder.finish()


@pytest.mark.parametrize("n", [0, 5, (1 << 16) + 1, (3 << 20) + PAGE + 1])
def test_extend_from_a_stream_buffer_keeps_order(n: int) -> None:
    first, rest = pattern(n, 2), pattern(n + 7, 3)
    buffer = _core.StreamBuffer()
    buffer.extend(first)
    builder = _core.BytesBuilder()
    builder.extend_from(buffer)
    assert len(buffer) == 0
    builder.extend(rest)
    buffer.extend(b"tail")
    builder.extend_from(buffer)
    assert builder.finish() == first + rest + b"tail"


@pytest.mark.parametrize("n", [1, (1 << 16) + 1, (9 << 20) + 3])
def test_read_from_a_pipe_to_eof(n: int) -> None:
    data = pattern(n, 4)
    r, w = os.pipe()
    writer = threading.Thread(target=_write_all, args=(w, data))
    writer.start()
    pipe = _core.ReadPipe(r)
    builder = _core.BytesBuilder()
    try:
        while True:
            got = builder.read_from(pipe, 1 << 20)
            if got == 0:
                break
            if got is None:
                threading.Event().wait(0.001)  # nothing yet: the writer is behind
    finally:
        writer.join()
        pipe.close()
    out = builder.finish()
    assert len(out) == n and out == data


def _write_all(fd: int, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def test_many_results_alive_at_once() -> None:
    # Each moved result splits its allocation's mapping; all stay right while alive.
    results = [(i, builder_of(pattern((1 << 20) + i * 4099, i))) for i in range(40)]
    for i, out in results:
        assert out == pattern((1 << 20) + i * 4099, i)


def builder_of(data: bytes) -> bytes:
    builder = _core.BytesBuilder()
    builder.extend(data)
    return builder.finish()
