"""Lifetimes: no leaked fd, no zombie, no hang — after many spawns, failed spawns,
cancellation, close(), grandchildren, other threads, closed loops."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from asyncio.subprocess import PIPE

import pytest
from procs import open_fds, zombie_children

from conftest import IMPLS, PY, Impl


def settle_zombies(timeout: float = 5.0) -> list[int]:
    """Zombies that stay: children are reaped asynchronously, so give them a moment."""
    deadline = time.monotonic() + timeout
    while (zombies := zombie_children()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return zombies


def test_no_fd_or_zombie_after_200_spawns_including_failures(impl: Impl) -> None:
    async def main() -> None:
        for i in range(200):
            if i % 4 == 3:
                with pytest.raises(FileNotFoundError):
                    await asyncio.create_subprocess_exec("no-such-program-xyz", stdin=PIPE, stdout=PIPE, stderr=PIPE)
                continue
            if i % 4 == 2:
                with pytest.raises(FileNotFoundError):
                    extra = {"umask": 0o022} if i % 8 == 2 else {}
                    await asyncio.create_subprocess_exec("true", cwd="/no/such/dir", stdout=PIPE, **extra)
                continue
            # Every other successful spawn takes the clone path (a umask), the rest posix_spawn.
            extra = {"umask": 0o022} if i % 4 == 1 else {}
            proc = await asyncio.create_subprocess_exec("echo", str(i), stdin=PIPE, stdout=PIPE, stderr=PIPE, **extra)
            out, _ = await proc.communicate()
            assert out == f"{i}\n".encode()

    before = open_fds()
    impl.run(main())
    assert open_fds() == before
    assert settle_zombies() == []


def test_close_kills_running_child_and_reaps_it(impl: Impl) -> None:
    async def main() -> int:
        proc = await asyncio.create_subprocess_exec("sleep", "30", stdout=PIPE)
        proc._transport.close()  # type: ignore[attr-defined]
        return await proc.wait()

    before = open_fds()
    assert impl.run(main()) == -signal.SIGKILL
    assert open_fds() == before
    assert settle_zombies() == []


@pytest.mark.parametrize("steps", range(6))
def test_cancel_spawn_at_each_step(impl: Impl, steps: int) -> None:
    """Cancel create_subprocess_exec after 0..5 loop iterations: either it raised
    CancelledError or it returned a process; nothing may leak either way."""

    async def main() -> None:
        task = asyncio.ensure_future(asyncio.create_subprocess_exec("sleep", "30", stdin=PIPE, stdout=PIPE))
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        try:
            proc = await task
        except asyncio.CancelledError:
            return
        proc.kill()
        await proc.communicate()

    before = open_fds()
    impl.run(main())
    assert open_fds() == before
    assert settle_zombies() == []


@pytest.mark.parametrize("where", ["wait", "communicate", "read", "drain"])
def test_cancel_while_awaiting_the_process(impl: Impl, where: str) -> None:
    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(
            PY,
            "-c",
            "import sys,time; sys.stdout.write('x'); sys.stdout.flush(); time.sleep(30)",
            stdin=PIPE,
            stdout=PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None
        if where == "wait":
            coro = proc.wait()
        elif where == "communicate":
            coro = proc.communicate()
        elif where == "read":
            coro = proc.stdout.read()
        else:
            proc.stdin.write(b"y" * 1_000_000)  # nobody reads stdin: drain blocks
            coro = proc.stdin.drain()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(coro, 0.3)
        proc.kill()
        assert await proc.wait() == -signal.SIGKILL
        await proc.communicate()

    before = open_fds()
    impl.run(main())
    assert open_fds() == before
    assert settle_zombies() == []


def test_wait_returns_on_exit_while_grandchild_holds_stdout(fs: Impl) -> None:
    """asyncio 3.12/3.13 hang here until the grandchild exits (cpython#119710)."""

    async def main() -> tuple[int, float, bytes]:
        proc = await asyncio.create_subprocess_shell("sleep 30 & echo started", stdout=PIPE, start_new_session=True)
        assert proc.stdout is not None
        t0 = time.monotonic()
        code = await asyncio.wait_for(proc.wait(), 10)
        elapsed = time.monotonic() - t0
        first = await proc.stdout.readline()
        os.killpg(proc.pid, signal.SIGKILL)  # the grandchild
        await proc.stdout.read()
        return code, elapsed, first

    code, elapsed, first = fs.run(main())
    assert code == 0
    assert first == b"started\n"
    assert elapsed < 10


@pytest.mark.parametrize("path", ["posix_spawn", "clone"])
def test_spawn_from_loops_in_other_threads(impl: Impl, path: str) -> None:
    results: list[object] = []
    # A umask sends fastspawn down its clone path; threads spawn concurrently on both.
    extra = {"umask": 0o022} if path == "clone" else {}

    def worker(i: int) -> None:
        async def main() -> bytes:
            procs = [await asyncio.create_subprocess_exec("echo", f"{i}-{j}", stdout=PIPE, **extra) for j in range(5)]
            outs = [(await p.communicate())[0] for p in procs]
            return b"".join(outs)

        try:
            results.append(impl.run(main()))
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    expected = {b"".join(f"{i}-{j}\n".encode() for j in range(5)) for i in range(4)}
    assert set(results) == expected  # type: ignore[arg-type]


def run_script(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        # Without asyncio's debug mode (the suite also runs under it), whose "Close running
        # child process" log on close() is expected output, not an error.
        env={**{k: v for k, v in os.environ.items() if k != "PYTHONASYNCIODEBUG"}, **env},
    )


def test_closing_loop_with_running_children_is_silent_and_reaps_them() -> None:
    """No "Event loop is closed", no ResourceWarning for closed transports, no zombie."""
    result = run_script(
        """
        import asyncio, gc, os, time, fastspawn
        pids = []
        async def main():
            for _ in range(3):
                p = await asyncio.create_subprocess_exec("sleep", "30", stdout=-1, stdin=-1)
                pids.append(p.pid)
                p._transport.close()   # kills; nobody waits
            p = await asyncio.create_subprocess_exec("sleep", "0.1", stdout=-1)
            pids.append(p.pid)
            await p.wait()
            # Exited, its output never read: the loop closes with the pipe still open.
            p = await asyncio.create_subprocess_exec("sh", "-c", "echo unread", stdout=-1, stderr=-1)
            pids.append(p.pid)
            await p.wait()
        fastspawn.run(main())
        gc.collect()
        deadline = time.monotonic() + 5
        def gone(pid):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    return f.read().split(") ")[1][0] not in "RSDZ"
            except FileNotFoundError:
                return True
        while not all(gone(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        print("all reaped" if all(gone(p) for p in pids) else "zombies left")
        """
    )
    assert result.stdout.strip() == "all reaped", result.stderr
    assert result.stderr == ""


FALLBACK_SCRIPT = """
import asyncio, os, signal, fastspawn
from fastspawn import _core
assert _core.features()[2] is False, "pidfd should be disabled"
async def main():
    p = await fastspawn.create_subprocess_exec("sh", "-c", "echo hi; exit 3", stdout=-1)
    out, _ = await p.communicate()
    assert (out, p.returncode) == (b"hi\\n", 3), (out, p.returncode)
    p = await fastspawn.create_subprocess_exec("sleep", "30")
    p.terminate()
    assert await p.wait() == -signal.SIGTERM
    # The per-loop epoll closes at the end of the iteration that empties it: let it end.
    await asyncio.sleep(0)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        p = await fastspawn.create_subprocess_exec("true", stdout=-1)
        await p.communicate()
    await asyncio.sleep(0)
    assert len(os.listdir("/proc/self/fd")) == before
    print("fallback ok")
asyncio.run(main())
"""


def test_fallback_reaper_without_pidfd() -> None:
    """Where pidfds are unavailable (old kernel, seccomp) the one process-wide reaper
    thread watches children; simulated with FASTSPAWN_NO_PIDFD=1."""
    result = run_script(FALLBACK_SCRIPT, FASTSPAWN_NO_PIDFD="1")
    assert result.stdout.strip() == "fallback ok", result.stderr
    assert result.stderr == ""


def test_core_read_pipe_reads_report_nothing_data_and_eof() -> None:
    # The core's two ways of reading a pipe into new bytes: None while nothing is there,
    # the bytes (exactly what was written, at most `max`), then b"" at EOF.
    from fastspawn import _core

    r, w = os.pipe()
    pipe = _core.ReadPipe(r)
    try:
        for read in (pipe.read, pipe.read_at_most):
            assert read(10) is None
            os.write(w, b"0123456789abc")
            assert read(10) == b"0123456789"
            assert read(10) == b"abc"
            assert read(10) is None
        with pytest.raises(ValueError, match="max must be positive"):
            pipe.read_at_most(0)
        os.close(w)
        w = -1
        assert pipe.read_at_most(10) == b""
        assert pipe.read(10) == b""
    finally:
        pipe.close()
        if w >= 0:
            os.close(w)
    assert pipe.closed
    with pytest.raises(ValueError, match="closed pipe"):
        pipe.read_at_most(1)


def test_popen_view_waits_after_close_on_a_closed_loop(impl: Impl) -> None:
    """``get_extra_info("subprocess").wait()`` without a timeout blocks until the exit and
    reaps, even when the transport is closed after its loop (fastspawn raised
    TimeoutExpired there, and the child stayed a zombie)."""
    if not impl.is_fastspawn and sys.version_info < (3, 12):
        pytest.skip("3.11's ThreadedChildWatcher reaps the child first: its Popen.wait() then says 0")
    loop = impl.factory()

    async def spawn() -> asyncio.SubprocessTransport:
        transport, _ = await loop.subprocess_exec(
            asyncio.SubprocessProtocol, "sleep", "30", stdin=None, stdout=None, stderr=None
        )
        return transport

    try:
        transport = loop.run_until_complete(spawn())
    finally:
        loop.close()
    popen = transport.get_extra_info("subprocess")
    pid = popen.pid
    transport.close()  # kills the child
    assert popen.wait() == -signal.SIGKILL
    assert popen.returncode == -signal.SIGKILL
    assert popen.poll() == -signal.SIGKILL
    assert pid not in zombie_children()


@pytest.mark.parametrize("kind", ["wait", "pipes", "failed", "killed"])
def test_no_descriptor_outlives_the_children_on_a_loop_that_stays_open(impl: Impl, kind: str) -> None:
    """Once every child exited and its pipes closed, the loop holds no descriptor of the
    spawner's (fastspawn kept its epoll open until loop.close(); suites that count
    descriptors around each test on a shared loop failed)."""

    async def main() -> None:
        before = open_fds()
        for _ in range(3):
            if kind == "wait":
                proc = await asyncio.create_subprocess_exec("true")
                assert await proc.wait() == 0
            elif kind == "pipes":
                proc = await asyncio.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE, stderr=PIPE)
                assert await proc.communicate(b"hi") == (b"hi", b"")
            elif kind == "failed":
                with pytest.raises(FileNotFoundError):
                    await asyncio.create_subprocess_exec("no-such-program-xyz", stdout=PIPE)
            else:
                proc = await asyncio.create_subprocess_exec("sleep", "30", stdout=PIPE)
                proc.kill()
                await proc.communicate()
            await asyncio.sleep(0)
            assert open_fds() == before

    impl.run(main())


def test_finished_spawns_leave_no_reference_cycles(impl: Impl) -> None:
    """Transports, protocols and readers of finished spawns go with their last reference,
    as asyncio's do (fastspawn's read pipe transport and its reader referred to each
    other, so each spawn's pipes and buffers waited for the garbage collector)."""
    import gc

    async def main() -> None:
        for _ in range(20):
            proc = await asyncio.create_subprocess_exec("echo", "hi", stdout=PIPE, stderr=PIPE)
            assert await proc.communicate() == (b"hi\n", b"")
            proc = await asyncio.create_subprocess_exec("echo", "hi", stdout=PIPE)
            async for line in proc.stdout:  # type: ignore[union-attr]
                assert line == b"hi\n"
            await proc.wait()
        await asyncio.sleep(0)

    loop = impl.factory()
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        loop.run_until_complete(main())
        gc.collect()
        kinds = {type(o).__name__ for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        loop.close()
    assert not {k for k in kinds if "Transport" in k or "Stream" in k or "Pipe" in k or "Protocol" in k}


def test_readers_of_short_outputs_hold_little_memory(fs: Impl) -> None:
    """A reader holds about what it buffered, as asyncio's bytearray does. fastspawn's
    buffer kept room for a whole 64 KiB pipe read for as long as it lived, so readers
    kept alive (unread output, or cancelled spawns waiting in reference cycles for the
    garbage collector) held 64 KiB each: several MiB of RSS over a soak."""
    from soak import malloc_in_use_kib

    if malloc_in_use_kib() < 0:
        pytest.skip("needs glibc's mallinfo2")

    async def main() -> int:
        procs = []
        before = malloc_in_use_kib()
        for _ in range(50):
            proc = await asyncio.create_subprocess_exec("echo", "x" * 100, stdout=PIPE)
            await proc.wait()
            procs.append(proc)
        for _ in range(20):
            await asyncio.sleep(0.001)
        held = malloc_in_use_kib() - before
        for proc in procs:
            assert len(await proc.stdout.read()) == 101  # type: ignore[union-attr]
        return held

    # In malloc, per spawn kept alive with its reader (pymalloc's small objects aside):
    # asyncio about 0.5 KiB; fastspawn about 8.5 KiB (a first read's room, 4 KiB, and
    # the core's objects), 128 KiB before.
    held = {name: IMPLS[name].run(main()) / 50 for name in ("asyncio", "fastspawn")}
    assert held["fastspawn"] <= held["asyncio"] + 16, held
