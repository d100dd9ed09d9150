"""``fastspawn.create_subprocess_*`` return ``fastspawn.Process``, whose ``communicate()``
skips asyncio's three tasks when there is one stream to collect and nothing to feed, and
``install()`` gives asyncio's ``Process.communicate`` the same short path for processes on
fastspawn's transports. Each scenario runs through ``fastspawn.create_subprocess_exec``,
through ``asyncio.create_subprocess_exec`` with ``install()`` applied, through asyncio's
``Process`` on fastspawn's transports, and on stock asyncio, and the outcomes must be
equal."""

from __future__ import annotations

import asyncio
import functools
import signal
from asyncio.subprocess import DEVNULL, PIPE
from typing import Any, Callable, Coroutine

import hypothesis
import pytest
from hypothesis import strategies as st
from procs import open_fds, zombie_children

import fastspawn
from conftest import FAST_STREAMS, IMPLS, PY
from fastspawn._communicate import Sink

Create = Callable[..., Coroutine[Any, Any, asyncio.subprocess.Process]]


def outcome(impl: str, create: Create, scenario: Callable[[Create], Coroutine[Any, Any, Any]]) -> Any:
    try:
        return ("ok", IMPLS[impl].run(scenario(create)))
    except Exception as exc:  # the outcome compared is the exception's type and text
        return ("raised", type(exc).__name__, str(exc))


def installed_outcome(scenario: Callable[[Create], Coroutine[Any, Any, Any]]) -> Any:
    fastspawn.install()
    try:
        return outcome("asyncio", asyncio.create_subprocess_exec, scenario)
    finally:
        fastspawn.uninstall()


def same_outcome(scenario: Callable[[Create], Coroutine[Any, Any, Any]], *, as_stock: bool = True) -> Any:
    """The outcome of ``scenario`` with fastspawn.Process, which must equal asyncio's
    Process on fastspawn's loop (same transports and readers, asyncio's communicate),
    and, with ``as_stock``, stock asyncio's."""
    fds = open_fds()
    got = outcome("asyncio", fastspawn.create_subprocess_exec, scenario)
    assert got == installed_outcome(scenario)
    assert got == outcome("fastspawn", asyncio.create_subprocess_exec, scenario)
    if as_stock:
        assert got == outcome("asyncio", asyncio.create_subprocess_exec, scenario)
    assert open_fds() == fds
    assert zombie_children() == []
    return got


WRITE_BOTH = "import sys; sys.stdout.write('out' * 100000); sys.stderr.write('err'); sys.exit(3)"


@pytest.mark.parametrize(
    ("stdin", "stdout", "stderr", "feed"),
    [
        (None, PIPE, None, None),  # the short path
        (None, None, PIPE, None),  # the short path, stderr
        (None, PIPE, DEVNULL, None),  # the short path
        (None, PIPE, PIPE, None),  # asyncio's path: two streams
        (PIPE, PIPE, None, b"fed"),  # asyncio's path: input
        (PIPE, PIPE, None, None),  # asyncio's path: a stdin pipe (closed on 3.12+ only)
        (None, None, None, None),  # asyncio's path: nothing to collect
    ],
)
def test_communicate_returns_what_asyncio_returns(stdin: Any, stdout: Any, stderr: Any, feed: Any) -> None:
    script = "import sys; d = sys.stdin.read() if len(sys.argv) > 1 else ''; " + WRITE_BOTH.replace(
        "'out' * 100000", "'out' * 100000 + d"
    )

    async def scenario(create: Create) -> Any:
        args = [PY, "-c", script] + (["read-stdin"] if feed is not None else [])
        proc = await create(*args, stdin=stdin, stdout=stdout, stderr=stderr)
        out, err = await proc.communicate(feed)
        return out, err, proc.returncode, await proc.wait()

    got = same_outcome(scenario)
    assert got[0] == "ok"


def test_direct_functions_return_fastspawn_process() -> None:
    async def main() -> tuple[type, bool]:
        proc = await fastspawn.create_subprocess_shell("exit 0", stdout=PIPE)
        await proc.communicate()
        return type(proc), isinstance(proc, asyncio.subprocess.Process)

    assert IMPLS["asyncio"].run(main()) == (fastspawn.Process, True)


def test_cancelled_communicate_leaves_the_process_usable() -> None:
    async def scenario(create: Create) -> Any:
        proc = await create(
            PY, "-c", "import sys, time; sys.stdout.write('early'); sys.stdout.flush(); time.sleep(30)", stdout=PIPE
        )
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(proc.communicate(), 0.5)
        proc.send_signal(signal.SIGKILL)
        out, err = await proc.communicate()
        return out, err, proc.returncode

    # fastspawn.Process keeps what a cancelled communicate() had read (tests/
    # test_communicate_timeout.py); so does asyncio's Process where fastspawn's reader is
    # in use: stock asyncio's reader loses it (b"", cpython#139373).
    assert outcome("asyncio", fastspawn.create_subprocess_exec, scenario) == ("ok", (b"early", None, -signal.SIGKILL))
    kept = b"early" if FAST_STREAMS else b""
    assert installed_outcome(scenario) == ("ok", (kept, None, -signal.SIGKILL))
    assert outcome("fastspawn", asyncio.create_subprocess_exec, scenario) == ("ok", (kept, None, -signal.SIGKILL))
    assert zombie_children() == []


def test_a_reader_exception_comes_out_of_communicate() -> None:
    async def scenario(create: Create) -> Any:
        proc = await create("sleep", "0.2", stdout=PIPE)
        assert proc.stdout is not None
        proc.stdout.set_exception(ValueError("reader failed"))
        try:
            await proc.communicate()
        finally:
            await proc.wait()

    assert same_outcome(scenario) == ("raised", "ValueError", "reader failed")


def test_communicate_waits_for_the_exit_after_the_output_closes() -> None:
    async def scenario(create: Create) -> Any:
        script = "import os, sys, time; os.write(1, b'done'); os.close(1); time.sleep(0.3); sys.exit(3)"
        proc = await create(PY, "-c", script, stdout=PIPE)
        out, err = await proc.communicate()
        return out, err, proc.returncode

    assert same_outcome(scenario) == ("ok", (b"done", None, 3))


STOCK_COMMUNICATE = asyncio.subprocess.Process.communicate


async def tasks_during_communicate(proc: asyncio.subprocess.Process) -> int:
    """How many unfinished tasks there are while ``proc.communicate()`` waits for a
    child that is asleep: asyncio's has one more than the short path, the reader's."""
    communicating = asyncio.ensure_future(proc.communicate())
    await asyncio.sleep(0.1)
    assert not communicating.done()
    count = len(asyncio.all_tasks())
    await communicating
    return count


def tasks_in(create: Create, *, custom_connector: bool = False, **pipes: Any) -> int:
    async def main() -> int:
        if custom_connector:  # fastspawn steps aside: a stock transport
            loop = asyncio.get_running_loop()
            loop.connect_read_pipe = loop.connect_read_pipe  # type: ignore[method-assign]
        return await tasks_during_communicate(await create("sleep", "0.3", **pipes))

    return IMPLS["asyncio"].run(main())


def test_installed_communicate_takes_the_short_path_on_fastspawn_transports_only() -> None:
    stock = tasks_in(asyncio.create_subprocess_exec, stdout=PIPE)
    fastspawn.install()
    try:
        if not FAST_STREAMS:
            # Without the speed layer install() leaves asyncio's communicate alone.
            assert asyncio.subprocess.Process.communicate is STOCK_COMMUNICATE
            assert tasks_in(asyncio.create_subprocess_exec, stdout=PIPE) == stock
            return
        assert asyncio.subprocess.Process.communicate is not STOCK_COMMUNICATE
        assert tasks_in(asyncio.create_subprocess_exec, stdout=PIPE) == stock - 1
        assert tasks_in(asyncio.create_subprocess_exec, stdout=PIPE, stderr=PIPE) == stock + 1
        assert tasks_in(asyncio.create_subprocess_exec, custom_connector=True, stdout=PIPE) == stock
    finally:
        fastspawn.uninstall()
    assert asyncio.subprocess.Process.communicate is STOCK_COMMUNICATE
    assert tasks_in(asyncio.create_subprocess_exec, stdout=PIPE) == stock
    # fastspawn.Process reads one stream in the caller's task, with or without the speed layer.
    assert tasks_in(fastspawn.create_subprocess_exec, stdout=PIPE) == stock - 1


def test_uninstall_leaves_a_later_wrapper_of_communicate_alone() -> None:
    fastspawn.install()
    try:
        ours = asyncio.subprocess.Process.communicate

        @functools.wraps(ours)
        async def traced(self: asyncio.subprocess.Process, input: Any = None) -> Any:
            return await ours(self, input)

        asyncio.subprocess.Process.communicate = traced  # type: ignore[method-assign]
        fastspawn.uninstall()
        assert asyncio.subprocess.Process.communicate is traced
    finally:
        fastspawn.uninstall()
        asyncio.subprocess.Process.communicate = STOCK_COMMUNICATE  # type: ignore[method-assign]
    fastspawn.install()
    fastspawn.uninstall()
    assert asyncio.subprocess.Process.communicate is STOCK_COMMUNICATE


# -- the capped sink of run_process(max_output=, keep_output=) ------------------------------


@hypothesis.given(
    chunks=st.lists(st.binary(max_size=40), max_size=30),
    cap=st.integers(min_value=0, max_value=100),
    tail=st.booleans(),
)
def test_a_capped_sink_keeps_the_head_or_the_tail_and_counts_the_rest(
    chunks: list[bytes], cap: int, tail: bool
) -> None:
    sink = Sink(cap, tail)
    for chunk in chunks:
        sink.add(chunk)
        assert sink.size <= cap
        assert sink.size == sum(map(len, sink.chunks))
    whole = b"".join(chunks)
    kept = whole[max(len(whole) - cap, 0) :] if tail else whole[:cap]
    assert sink.value() == kept
    assert sink.dropped == len(whole) - len(kept)
