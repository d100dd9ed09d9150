"""Process behaviour through the standard asyncio API, on both implementations."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import resource
import signal
import subprocess
import sys
from asyncio.subprocess import DEVNULL, PIPE, STDOUT
from typing import Any

import pytest

import fastspawn._pipes as _pipes
import fastspawn._private.streams as _streams
from conftest import FAST_STREAMS, IMPLS, PY, Impl

EDGE_SIZES = [0, 1, 65535, 65536, 65537, 1_000_000]


def pattern(n: int) -> bytes:
    """n bytes that are not all alike, so reordering or loss shows."""
    block = bytes(range(251))
    return (block * (n // 251 + 1))[:n]


def test_echo_communicate(impl: Impl) -> None:
    async def main() -> tuple[bytes, int]:
        proc = await asyncio.create_subprocess_exec("echo", "hello", stdout=PIPE)
        out, err = await proc.communicate()
        assert err is None
        return out, proc.returncode

    assert impl.run(main()) == (b"hello\n", 0)


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_exit_codes(impl: Impl, code: int) -> None:
    async def main() -> int:
        proc = await asyncio.create_subprocess_shell(f"exit {code}")
        return await proc.wait()

    assert impl.run(main()) == code


@pytest.mark.parametrize("how", ["terminate", "kill", "send_signal"])
def test_signal_exit_codes(impl: Impl, how: str) -> None:
    expected = {"terminate": -signal.SIGTERM, "kill": -signal.SIGKILL, "send_signal": -signal.SIGINT}[how]

    async def main() -> tuple[int, int]:
        proc = await asyncio.create_subprocess_exec("sleep", "30")
        if how == "send_signal":
            proc.send_signal(signal.SIGINT)
        else:
            getattr(proc, how)()
        code = await proc.wait()
        # After exit, signalling is a no-op; once the transport is finished asyncio
        # raises ProcessLookupError, and nothing else.
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        return code, proc.returncode

    assert impl.run(main()) == (expected, expected)


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_stdout_edge_sizes(impl: Impl, tmp_path: pathlib.Path, size: int) -> None:
    data = pattern(size)
    src = tmp_path / "data"
    src.write_bytes(data)

    async def main() -> bytes:
        proc = await asyncio.create_subprocess_exec("cat", str(src), stdout=PIPE)
        out, _ = await proc.communicate()
        assert proc.returncode == 0
        return out

    assert impl.run(main()) == data


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_stdin_edge_sizes(impl: Impl, size: int) -> None:
    data = pattern(size)

    async def main() -> bytes:
        proc = await asyncio.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
        out, _ = await proc.communicate(data)
        assert proc.returncode == 0
        return out

    assert impl.run(main()) == data


@pytest.mark.parametrize("size", [65535, 65536, 65537, 1_000_000])
def test_stdin_write_drain_then_eof(impl: Impl, size: int) -> None:
    data = pattern(size)

    async def main() -> bytes:
        proc = await asyncio.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
        assert proc.stdin is not None and proc.stdout is not None

        async def feed() -> None:
            assert proc.stdin is not None
            for i in range(0, len(data), 10_000):
                proc.stdin.write(data[i : i + 10_000])
                await proc.stdin.drain()
            proc.stdin.write_eof()

        feeder = asyncio.ensure_future(feed())
        out = await proc.stdout.read()
        await feeder
        assert await proc.wait() == 0
        return out

    assert impl.run(main()) == data


def test_stdout_and_stderr_separately(impl: Impl) -> None:
    async def main() -> tuple[bytes, bytes]:
        proc = await asyncio.create_subprocess_shell("echo out; echo err >&2", stdout=PIPE, stderr=PIPE)
        out, err = await proc.communicate()
        return out, err

    assert impl.run(main()) == (b"out\n", b"err\n")


def test_stderr_to_stdout(impl: Impl) -> None:
    async def main() -> tuple[bytes, object]:
        proc = await asyncio.create_subprocess_shell("echo out; echo err >&2", stdout=PIPE, stderr=STDOUT)
        out, err = await proc.communicate()
        return out, err

    assert impl.run(main()) == (b"out\nerr\n", None)


def test_devnull(impl: Impl) -> None:
    async def main() -> bytes:
        proc = await asyncio.create_subprocess_shell("cat; echo done", stdin=DEVNULL, stdout=PIPE, stderr=DEVNULL)
        out, _ = await proc.communicate()
        return out

    assert impl.run(main()) == b"done\n"


def test_stdout_to_file_object_and_fd(impl: Impl, tmp_path: pathlib.Path) -> None:
    async def main() -> None:
        with open(tmp_path / "a", "wb") as f:
            proc = await asyncio.create_subprocess_exec("echo", "file", stdout=f)
            assert await proc.wait() == 0
        fd = os.open(tmp_path / "b", os.O_WRONLY | os.O_CREAT)
        try:
            proc = await asyncio.create_subprocess_exec("echo", "fd", stdout=fd)
            assert await proc.wait() == 0
        finally:
            os.close(fd)

    impl.run(main())
    assert (tmp_path / "a").read_bytes() == b"file\n"
    assert (tmp_path / "b").read_bytes() == b"fd\n"


def test_lines_and_readline(impl: Impl) -> None:
    async def main() -> list[bytes]:
        proc = await asyncio.create_subprocess_exec("seq", "1", "5000", stdout=PIPE)
        assert proc.stdout is not None
        first = await proc.stdout.readline()
        rest = [line async for line in proc.stdout]
        await proc.wait()
        return [first, *rest]

    assert impl.run(main()) == [f"{i}\n".encode() for i in range(1, 5001)]


def test_line_longer_than_limit_raises_value_error(impl: Impl) -> None:
    async def main() -> None:
        proc = await asyncio.create_subprocess_shell("head -c 5000 /dev/zero; echo", stdout=PIPE, limit=1024)
        assert proc.stdout is not None
        with pytest.raises(ValueError, match="chunk"):
            await proc.stdout.readline()
        proc.kill()
        # Not wait(): from 3.15 (and 3.13.15/3.14.7, gh-119710) asyncio's returns at the
        # exit and would leave the paused stdout pipe open.
        await proc.communicate()

    impl.run(main())


def test_env_replaces_environment_and_path_lookup_uses_it(impl: Impl, tmp_path: pathlib.Path) -> None:
    tool = tmp_path / "mytool"
    tool.write_text("#!/bin/sh\necho tool:$FOO\n")
    tool.chmod(0o755)

    async def main() -> bytes:
        proc = await asyncio.create_subprocess_exec(
            "mytool", stdout=PIPE, env={"PATH": f"/nonexistent:{tmp_path}", "FOO": "bar"}
        )
        out, _ = await proc.communicate()
        return out

    assert impl.run(main()) == b"tool:bar\n"


@pytest.mark.parametrize("kind", [str, bytes, pathlib.Path])
def test_cwd_types(impl: Impl, tmp_path: pathlib.Path, kind: type) -> None:
    cwd = kind(os.fsencode(tmp_path)) if kind is bytes else kind(tmp_path)

    async def main() -> bytes:
        proc = await asyncio.create_subprocess_exec("pwd", stdout=PIPE, cwd=cwd)
        out, _ = await proc.communicate()
        return out

    assert impl.run(main()) == os.fsencode(tmp_path) + b"\n"


def test_relative_program_resolves_against_cwd(impl: Impl, tmp_path: pathlib.Path) -> None:
    (tmp_path / "here.sh").write_text("#!/bin/sh\necho here\n")
    (tmp_path / "here.sh").chmod(0o755)

    async def main() -> bytes:
        proc = await asyncio.create_subprocess_exec("./here.sh", stdout=PIPE, cwd=tmp_path)
        out, _ = await proc.communicate()
        return out

    assert impl.run(main()) == b"here\n"


def test_executable_replaces_program(impl: Impl) -> None:
    async def main() -> bytes:
        proc = await asyncio.create_subprocess_exec("argv0-name", "-c", 'echo "$0"', executable="/bin/sh", stdout=PIPE)
        out, _ = await proc.communicate()
        return out

    assert impl.run(main()) == b"argv0-name\n"


def test_shell_executable(impl: Impl) -> None:
    async def main() -> bytes:
        proc = await asyncio.create_subprocess_shell("echo $0", executable="/bin/bash", stdout=PIPE)
        out, _ = await proc.communicate()
        return out

    assert impl.run(main()) == b"/bin/bash\n"


def _fd_state_script(fds: list[int]) -> str:
    return "; ".join(f"[ -e /proc/self/fd/{fd} ] && echo open || echo closed" for fd in fds)


@pytest.mark.parametrize("close_fds", [True, False])
def test_close_fds_and_pass_fds(impl: Impl, close_fds: bool) -> None:
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    os.set_inheritable(r1, True)
    os.set_inheritable(r2, True)
    try:

        async def main() -> bytes:
            proc = await asyncio.create_subprocess_shell(
                _fd_state_script([r1, r2, w1]), stdout=PIPE, close_fds=close_fds, pass_fds=(r2,) if close_fds else ()
            )
            out, _ = await proc.communicate()
            return out

        expected = b"closed\nopen\nclosed\n" if close_fds else b"open\nopen\nclosed\n"
        assert impl.run(main()) == expected
    finally:
        for fd in (r1, w1, r2, w2):
            os.close(fd)


def test_pass_fds_without_close_fds_warns_like_subprocess(impl: Impl) -> None:
    r, w = os.pipe()
    try:

        async def main() -> bytes:
            with pytest.warns(RuntimeWarning, match="pass_fds overriding close_fds"):
                proc = await asyncio.create_subprocess_shell(
                    _fd_state_script([r]), stdout=PIPE, close_fds=False, pass_fds=(r,)
                )
            out, _ = await proc.communicate()
            return out

        assert impl.run(main()) == b"open\n"
    finally:
        os.close(r)
        os.close(w)


def _stat_fields() -> str:
    # pgrp and session of the shell itself, from /proc/<pid>/stat.
    return "cut -d' ' -f5,6 /proc/$$/stat; echo $$"


def test_start_new_session(impl: Impl) -> None:
    async def main() -> list[bytes]:
        proc = await asyncio.create_subprocess_shell(_stat_fields(), stdout=PIPE, start_new_session=True)
        out, _ = await proc.communicate()
        return out.split()

    pgrp, sid, pid = impl.run(main())
    assert pgrp == sid == pid


def test_process_group(impl: Impl) -> None:
    async def main() -> list[bytes]:
        proc = await asyncio.create_subprocess_shell(_stat_fields(), stdout=PIPE, process_group=0)
        out, _ = await proc.communicate()
        return out.split()

    pgrp, sid, pid = impl.run(main())
    assert pgrp == pid
    assert sid != pid
    assert int(sid) == os.getsid(0)


@pytest.mark.parametrize("restore", [True, False])
def test_restore_signals(impl: Impl, restore: bool) -> None:
    async def main() -> int:
        proc = await asyncio.create_subprocess_exec(
            "grep", "SigIgn", "/proc/self/status", stdout=PIPE, restore_signals=restore
        )
        out, _ = await proc.communicate()
        return int(out.split()[1], 16)

    ignored = impl.run(main())
    sigpipe_ignored = bool(ignored & (1 << (signal.SIGPIPE - 1)))
    assert sigpipe_ignored is (not restore)


def test_umask_is_honoured(impl: Impl) -> None:
    async def main() -> bytes:
        proc = await asyncio.create_subprocess_shell("umask", stdout=PIPE, umask=0o027)
        out, _ = await proc.communicate()
        return out

    assert impl.run(main()).strip() == b"0027"


def test_preexec_fn_is_delegated_and_honoured(impl: Impl) -> None:
    async def main() -> bytes:
        proc = await asyncio.create_subprocess_shell(
            "echo $MARK", stdout=PIPE, preexec_fn=lambda: os.environ.__setitem__("MARK", "set-in-child")
        )
        out, _ = await proc.communicate()
        return out

    assert impl.run(main()) == b"set-in-child\n"


@pytest.mark.parametrize(
    ("pipesize", "granted"),
    [
        (1 << 18, 1 << 18),
        # Popen passes the size through fcntl(), which keeps the low 32 bits: 64 KiB.
        ((1 << 32) + (1 << 16), 1 << 16),
        # ... and 0, which the kernel rounds up to one page.
        (1 << 40, resource.getpagesize()),
    ],
)
def test_pipesize(impl: Impl, pipesize: int, granted: int) -> None:
    async def main() -> bytes:
        code = "import fcntl,sys; print(fcntl.fcntl(1, fcntl.F_GETPIPE_SZ))"
        proc = await asyncio.create_subprocess_exec(PY, "-c", code, stdout=PIPE, pipesize=pipesize)
        out, _ = await proc.communicate()
        return out

    if pipesize > 2**32 - 1 and sys.version_info >= (3, 15):
        # fcntl() warns from 3.15 when it cuts the value (Popen's and fastspawn's alike).
        with pytest.warns(DeprecationWarning, match="integer value out of range"):
            assert int(impl.run(main())) == granted
    else:
        assert int(impl.run(main())) == granted


def test_stdin_is_a_real_pipe(impl: Impl) -> None:
    # uvloop's socketpairs break /dev/stdin (uvloop#532); pipes must not.
    async def main() -> bytes:
        proc = await asyncio.create_subprocess_exec("cat", "/dev/stdin", stdin=PIPE, stdout=PIPE, stderr=DEVNULL)
        out, _ = await proc.communicate(b"via /dev/stdin")
        return out

    assert impl.run(main()) == b"via /dev/stdin"


def is_reading(transport: Any) -> bool:
    try:
        return bool(transport.is_reading())
    except NotImplementedError:
        # asyncio's pipe transport implements is_reading() from 3.11 on.
        return not transport._paused


def test_reader_pauses_and_memory_stays_capped(impl: Impl) -> None:
    limit = 4096

    async def main() -> tuple[bool, int, int]:
        proc = await asyncio.create_subprocess_exec("head", "-c", "10000000", "/dev/zero", stdout=PIPE, limit=limit)
        assert proc.stdout is not None
        transport = proc._transport.get_pipe_transport(1)  # type: ignore[attr-defined]
        await asyncio.sleep(0.3)
        paused = not is_reading(transport)
        buffered = len(proc.stdout._buffer)  # type: ignore[attr-defined]
        total = 0
        while chunk := await proc.stdout.read(65536):
            total += len(chunk)
        await proc.wait()
        return paused, buffered, total

    paused, buffered, total = impl.run(main())
    assert paused
    # StreamReader pauses above 2 * limit; one read may overshoot by at most its size.
    assert buffered <= 2 * limit + (1 << 20)
    assert total == 10_000_000


def test_reader_stays_capped_when_the_child_exited_with_output_pending(
    fs: Impl, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child exits with 600 kB still in its (1 MiB) pipe: the pipe then polls hung
    up, and fastspawn reads on to EOF in one go; it must still stop where the reader
    pauses. (fastspawn only: asyncio's wait() would not return while a pipe is open.)"""
    limit = 4096
    size = 600_000

    async def main() -> tuple[int, int]:
        # The child grows its own stdout pipe (pipesize= is 3.10+), fills 600 kB and exits.
        grow_and_fill = f"import fcntl, os; fcntl.fcntl(1, 1031, 1 << 20); os.write(1, bytes({size}))"
        proc = await asyncio.create_subprocess_exec(PY, "-c", grow_and_fill, stdout=PIPE, limit=limit)
        assert proc.stdout is not None
        assert await proc.wait() == 0
        total = most = 0
        while chunk := await proc.stdout.read(limit):
            total += len(chunk)
            most = max(most, len(proc.stdout._buffer))  # type: ignore[attr-defined]
        return most, total

    # StreamReader pauses above 2 * limit; one read may overshoot: 64 KiB into fastspawn's
    # reader, the transport's largest read into any other protocol (asyncio's reader, with
    # stock streams; made 64 KiB here, as 1 MiB would take the whole pipe in one read).
    if FAST_STREAMS:
        overshoot = _streams.MAX_SINK_READ
    else:
        overshoot = 1 << 16
        monkeypatch.setattr(_pipes.ReadPipeTransport, "max_size", overshoot)
    most, total = fs.run(main())
    assert total == size
    assert most <= 2 * limit + overshoot


@pytest.mark.parametrize("how", ["read", "readexactly", "lines", "read_to_eof"])
def test_fast_child_does_not_starve_other_tasks(impl: Impl, how: str) -> None:
    # fastspawn's reader may read the pipe itself instead of waiting for the loop while
    # the child keeps it full; it must still let other tasks run regularly, as asyncio's
    # reader does (which yields whenever its buffer is empty).
    size = 8 << 20
    if how == "lines":
        # 1 KiB lines, written in one go.
        argv = [sys.executable, "-c", f"import sys; sys.stdout.buffer.write((b'x' * 1023 + b'\\n') * {size >> 10})"]
    else:
        argv = ["head", "-c", str(size), "/dev/zero"]

    async def main() -> tuple[int, int]:
        ticks = 0
        since_tick = 0
        worst = 0

        async def ticker() -> None:
            nonlocal ticks, since_tick
            while True:
                ticks += 1
                since_tick = 0
                await asyncio.sleep(0)

        def took(n: int) -> None:
            nonlocal since_tick, worst
            since_tick += n
            worst = max(worst, since_tick)

        proc = await asyncio.create_subprocess_exec(*argv, stdout=PIPE)
        assert proc.stdout is not None
        task = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        total = 0
        try:
            if how == "read":
                while chunk := await proc.stdout.read(65536):
                    took(len(chunk))
                    total += len(chunk)
            elif how == "readexactly":
                for _ in range(size >> 16):
                    took(len(await proc.stdout.readexactly(1 << 16)))
                    total += 1 << 16
            elif how == "lines":
                async for line in proc.stdout:
                    took(len(line))
                    total += len(line)
            else:
                # The reader collects to EOF itself: the ticker must run while it does.
                data = await proc.stdout.read()
                total = len(data)
        finally:
            await proc.wait()
            task.cancel()
        return ticks, worst, total

    ticks, worst, total = impl.run(main())
    assert total == size
    # Without yielding, the ticker would have run once and a reader would take it all.
    assert ticks > 2
    # Stock asyncio's reader takes at most its buffer (2 * limit plus one 256 KiB read)
    # between yields; fastspawn's also its eager budget (1 MiB) and one read.
    assert worst <= 3 << 20


def test_broken_stdin_pipe(impl: Impl) -> None:
    async def main() -> None:
        proc = await asyncio.create_subprocess_exec("true", stdin=PIPE)
        await proc.wait()
        assert proc.stdin is not None
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(100):
                proc.stdin.write(b"x" * 65536)
                await proc.stdin.drain()
        # communicate() swallows the broken pipe, as asyncio does.
        proc2 = await asyncio.create_subprocess_exec("true", stdin=PIPE)
        await proc2.communicate(b"y" * 1_000_000)
        assert proc2.returncode == 0

    impl.run(main())


def test_subprocess_protocol_event_order(impl: Impl) -> None:
    events: list[str] = []

    class Recorder(asyncio.SubprocessProtocol):
        def __init__(self) -> None:
            self.done = asyncio.get_event_loop().create_future()

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            events.append("connection_made")

        def pipe_data_received(self, fd: int, data: bytes) -> None:
            if not events or events[-1] != f"data{fd}":
                events.append(f"data{fd}")

        def pipe_connection_lost(self, fd: int, exc: BaseException | None) -> None:
            events.append(f"pipe_lost{fd}")

        def process_exited(self) -> None:
            events.append("process_exited")

        def connection_lost(self, exc: BaseException | None) -> None:
            events.append("connection_lost")
            self.done.set_result(None)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.subprocess_exec(Recorder, "sh", "-c", "echo out; echo err >&2", stdin=None)
        await proto.done
        assert transport.get_returncode() == 0
        transport.close()

    impl.run(main())
    assert events[0] == "connection_made"
    assert events[-1] == "connection_lost"
    assert {"data1", "data2", "pipe_lost1", "pipe_lost2", "process_exited"} <= set(events)
    assert events.index("data1") < events.index("pipe_lost1")
    assert events.index("data2") < events.index("pipe_lost2")


def test_protocol_closing_transport_in_connection_made_still_reaps(impl: Impl) -> None:
    class Closer(asyncio.SubprocessProtocol):
        def __init__(self) -> None:
            self.exited = asyncio.get_event_loop().create_future()

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transport.close()

        def process_exited(self) -> None:
            self.exited.set_result(None)

    async def main() -> object:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.subprocess_exec(Closer, "sleep", "30", stdin=None, stdout=PIPE, stderr=None)
        await asyncio.wait_for(proto.exited, 10)
        return transport.get_returncode()

    assert impl.run(main()) == -signal.SIGKILL


def test_stdin_close_and_wait_closed(impl: Impl) -> None:
    async def main() -> tuple[bytes, int]:
        proc = await asyncio.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"before close")
        await proc.stdin.drain()
        proc.stdin.close()
        await asyncio.wait_for(proc.stdin.wait_closed(), 10)
        assert proc.stdin.is_closing()
        out = await proc.stdout.read()
        return out, await proc.wait()

    assert impl.run(main()) == (b"before close", 0)


def test_custom_protocol_subclass_gets_data_through_its_own_methods(impl: Impl) -> None:
    """A subclass of SubprocessStreamProtocol must see every pipe_data_received call."""
    seen: list[bytes] = []

    class Spy(asyncio.subprocess.SubprocessStreamProtocol):
        def pipe_data_received(self, fd: int, data: bytes | str) -> None:
            seen.append(bytes(data) if isinstance(data, (bytes, bytearray)) else data.encode())
            super().pipe_data_received(fd, data)

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.subprocess_exec(
            lambda: Spy(limit=2**16, loop=loop), "echo", "spied", stdin=None, stdout=PIPE, stderr=None
        )
        proc = asyncio.subprocess.Process(transport, proto, loop)
        out, _ = await proc.communicate()
        return out

    assert impl.run(main()) == b"spied\n"
    assert b"".join(seen) == b"spied\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="changing credentials needs root")
@pytest.mark.parametrize(
    "creds",
    [
        {"user": "nobody"},
        {"user": 65534, "group": 65534},
        {"group": "nogroup", "extra_groups": []},
        {"user": 65534, "group": 65534, "extra_groups": [65534, 1]},
        {"extra_groups": ["daemon"], "umask": 0o077},
    ],
    ids=lambda c: ",".join(c),
)
def test_user_group_extra_groups(impl: Impl, creds: dict[str, object]) -> None:
    async def main() -> bytes:
        proc = await asyncio.create_subprocess_shell("id -u; id -g; id -G; umask", stdout=PIPE, **creds)
        out, _ = await proc.communicate()
        assert proc.returncode == 0
        return out

    expected = IMPLS["asyncio"].run(main())
    assert impl.run(main()) == expected


def test_a_second_concurrent_read_raises_and_the_first_keeps_the_data(impl: Impl) -> None:
    async def main() -> list[object]:
        proc = await asyncio.create_subprocess_exec(PY, "-c", "import time; time.sleep(0.2); print('hi')", stdout=PIPE)
        assert proc.stdout is not None
        got = await asyncio.gather(proc.stdout.read(), proc.stdout.read(), return_exceptions=True)
        await proc.wait()
        return [g if isinstance(g, bytes) else (type(g).__name__, str(g)) for g in got]

    assert impl.run(main()) == [
        b"hi\n",
        ("RuntimeError", "read() called while another coroutine is already waiting for incoming data"),
    ]


@pytest.mark.parametrize("restore_signals", [True, False])
def test_child_starts_with_the_signals_popen_leaves_ignored(impl: Impl, restore_signals: bool) -> None:
    # glibc's posix_spawn would leave its internal signals (32, 33) ignored in the program.
    argv = ["grep", "^SigIgn", "/proc/self/status"]  # a bare name: Popen's fork_exec path

    async def main() -> bytes:
        proc = await asyncio.create_subprocess_exec(*argv, stdout=PIPE, restore_signals=restore_signals)
        out, _ = await proc.communicate()
        return out

    # Popen first: a thread started later gets glibc to handle signal 33 from then on.
    expected = subprocess.run(argv, capture_output=True, check=True, restore_signals=restore_signals).stdout
    assert impl.run(main()) == expected


IGNORED_INTERNAL_SIGNALS_SCRIPT = """
import asyncio, ctypes, subprocess, fastspawn
# Ignore signal 32 as a process started by an older glibc's posix_spawn has it (glibc
# 2.43 no longer leaves it so); glibc's sigaction() refuses its internal signals, so ask
# the kernel (rt_sigaction is syscall 13 on x86_64; kernel sigaction: handler, flags,
# restorer, mask; SIG_IGN is 1).
action = (ctypes.c_ulong * 4)(1, 0, 0, 0)
assert ctypes.CDLL(None).syscall(13, 32, action, None, 8) == 0
argv = ["grep", "^SigIgn", "/proc/self/status"]
async def main():
    proc = await fastspawn.create_subprocess_exec(*argv, stdout=subprocess.PIPE)
    return (await proc.communicate())[0]
# Popen first: a thread started later (the fallback reaper's) gets glibc to handle
# signal 33 from then on, which changes what a later child inherits.
stock = subprocess.run(argv, capture_output=True, check=True).stdout
ours = asyncio.run(main())
mine = [line for line in open("/proc/self/status") if line.startswith("SigIgn")][0]
print(int(mine.split()[1], 16) >> 31 & 1, ours == stock, ours, stock)
"""


def test_internal_signals_this_process_ignores_stay_ignored_in_the_child() -> None:
    # A process with signal 32 ignored (as glibc's posix_spawn before 2.43 leaves it): its
    # children must inherit that as Popen's would.
    r, w = os.pipe()
    try:
        script = [PY, "-c", IGNORED_INTERNAL_SIGNALS_SCRIPT]
        pid = os.posix_spawn(PY, script, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, w, 1)])
    finally:
        os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    ignored_here, same = out.split()[:2]
    assert ignored_here == "1", out
    assert same == "True", out
