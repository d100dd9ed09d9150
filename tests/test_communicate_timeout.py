"""``fastspawn.Process.communicate(input=None, timeout=None)``: a timeout raises
``subprocess.TimeoutExpired`` with everything read so far and leaves the child running;
a later call continues and loses nothing; a cancellation, at any await, loses nothing
either; input is sent exactly once (gh-139373 semantics). The suite runs with asyncio's
own streams too (``FASTSPAWN_STOCK_STREAMS=1``), where only public reader API is used."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
from asyncio.subprocess import PIPE
from typing import Any

import pytest
from procs import open_fds, zombie_children

import fastspawn
from conftest import PY, Impl

FIRST_THEN_MORE = (
    "import sys, time\n"
    "sys.stdout.write('first\\n'); sys.stdout.flush()\n"
    "sys.stderr.write('err1 '); sys.stderr.flush()\n"
    "time.sleep(0.6)\n"
    "sys.stdout.write('second\\n'); sys.stderr.write('err2')\n"
)


@pytest.mark.parametrize("streams", ["both", "stdout"])
def test_timeout_keeps_the_output_and_the_child_running(fs: Impl, streams: str) -> None:
    async def main() -> None:
        stderr = PIPE if streams == "both" else subprocess.DEVNULL
        proc = await fastspawn.create_subprocess_exec(PY, "-c", FIRST_THEN_MORE, stdout=PIPE, stderr=stderr)
        await asyncio.sleep(0.2)
        with pytest.raises(subprocess.TimeoutExpired) as caught:
            await proc.communicate(timeout=0.1)
        exc = caught.value
        assert exc.timeout == 0.1
        assert exc.cmd == (PY, "-c", FIRST_THEN_MORE)
        assert exc.output == exc.stdout == b"first\n"
        assert exc.stderr == (b"err1 " if streams == "both" else None)
        assert proc.returncode is None
        os.kill(proc.pid, 0)  # still running
        # A second timeout: still everything so far.
        with pytest.raises(subprocess.TimeoutExpired) as caught:
            await proc.communicate(timeout=0.05)
        assert caught.value.output == b"first\n"
        out, err = await proc.communicate()
        assert out == b"first\nsecond\n"
        assert err == (b"err1 err2" if streams == "both" else None)
        assert proc.returncode == 0
        # Finished: a further call reads the (empty) streams again, as asyncio's.
        assert await proc.communicate() == (b"", b"" if streams == "both" else None)

    fds = open_fds()
    fs.run(main())
    assert open_fds() == fds
    assert zombie_children() == []


def test_timeout_zero_and_a_timeout_that_does_not_expire(fs: Impl) -> None:
    async def main() -> None:
        proc = await fastspawn.create_subprocess_exec("sh", "-c", "sleep 0.2; echo done", stdout=PIPE)
        with pytest.raises(subprocess.TimeoutExpired) as caught:
            await proc.communicate(timeout=0)
        assert caught.value.output == b""
        assert await proc.communicate(timeout=30) == (b"done\n", None)

    fs.run(main())


@pytest.mark.parametrize("streams", ["both", "stdout"])
def test_cancellation_loses_nothing(fs: Impl, streams: str) -> None:
    async def main() -> None:
        stderr = PIPE if streams == "both" else None
        proc = await fastspawn.create_subprocess_exec(PY, "-c", FIRST_THEN_MORE, stdout=PIPE, stderr=stderr)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(proc.communicate(), 0.3)
        out, err = await proc.communicate()
        assert out == b"first\nsecond\n"
        assert err == (b"err1 err2" if streams == "both" else None)

    fs.run(main())


# Reads all of stdin after a pause, then reports its size and hash.
SLOW_READER = (
    "import hashlib, sys, time\n"
    "time.sleep(0.3)\n"
    "d = sys.stdin.buffer.read()\n"
    "print(len(d), hashlib.sha256(d).hexdigest())\n"
)


def test_input_is_sent_once(fs: Impl) -> None:
    data = os.urandom(3 << 20)

    async def main() -> None:
        proc = await fastspawn.create_subprocess_exec(PY, "-c", SLOW_READER, stdin=PIPE, stdout=PIPE)
        with pytest.raises(subprocess.TimeoutExpired):
            await proc.communicate(data, timeout=0.05)
        with pytest.raises(ValueError, match="Cannot send input after starting communication"):
            await proc.communicate(data)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(proc.communicate(), 0.05)
        out, _ = await proc.communicate(b"")  # empty input is no input, as for Popen
        assert out == f"{len(data)} {hashlib.sha256(data).hexdigest()}\n".encode()

    fds = open_fds()
    fs.run(main())
    assert open_fds() == fds


# Echoes stdin to stdout in pieces and notes each piece on stderr.
ECHO_SLOWLY = (
    "import sys, time\n"
    "while True:\n"
    "    d = sys.stdin.buffer.read1(50000)\n"
    "    if not d: break\n"
    "    sys.stdout.buffer.write(d); sys.stdout.flush()\n"
    "    sys.stderr.write(str(len(d)) + ' '); sys.stderr.flush()\n"
    "    time.sleep(0.002)\n"
)


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5, 6, 8, 10, 15, 25, 40, 70, 120])
def test_cancel_at_each_await_loses_nothing(fs: Impl, steps: int) -> None:
    """communicate(input) cancelled after ``steps`` loop iterations, then again and again
    (each call cancelled ``steps`` iterations in), then let finish: the output is all the
    input, echoed once, and stderr accounts for all of it."""
    data = bytes(range(256)) * 2000

    async def main() -> tuple[bytes, bytes]:
        proc = await fastspawn.create_subprocess_exec(PY, "-c", ECHO_SLOWLY, stdin=PIPE, stdout=PIPE, stderr=PIPE)
        call: Any = proc.communicate(data)
        for _ in range(20):
            task = asyncio.ensure_future(call)
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            try:
                return await task  # type: ignore[no-any-return]
            except asyncio.CancelledError:
                pass
            call = proc.communicate()
        return await call  # type: ignore[no-any-return]

    out, err = fs.run(main())
    assert out == data
    assert sum(int(n) for n in err.split()) == len(data)
    assert zombie_children() == []


def test_a_killed_child_after_a_timeout(fs: Impl) -> None:
    """The subprocess idiom: on TimeoutExpired kill, then communicate() for the rest."""

    async def main() -> tuple[Any, ...]:
        proc = await fastspawn.create_subprocess_exec(PY, "-c", FIRST_THEN_MORE.replace("0.6", "30"), stdout=PIPE)
        try:
            await proc.communicate(timeout=0.3)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = await proc.communicate()
        return out, err, proc.returncode

    assert fs.run(main()) == (b"first\n", None, -signal.SIGKILL)


# -- wait(timeout=) ------------------------------------------------------------------------


def test_wait_with_a_timeout_leaves_the_child_running(fs: Impl) -> None:
    async def main() -> None:
        proc = await fastspawn.create_subprocess_exec("sleep", "30")
        with pytest.raises(subprocess.TimeoutExpired) as caught:
            await proc.wait(timeout=0.2)
        assert (caught.value.cmd, caught.value.timeout) == (("sleep", "30"), 0.2)
        assert proc.returncode is None
        proc.kill()
        assert await proc.wait(timeout=10) == -signal.SIGKILL
        assert await proc.wait(timeout=0) == -signal.SIGKILL  # known: no timeout

    fs.run(main())
    assert zombie_children() == []


def test_a_cancelled_wait_with_a_timeout_is_a_cancellation(fs: Impl) -> None:
    async def main() -> None:
        proc = await fastspawn.create_subprocess_exec("sleep", "30")
        task = asyncio.ensure_future(proc.wait(timeout=10))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert proc.returncode is None
        await proc.aclose(grace=0)

    fs.run(main())
    assert zombie_children() == []
