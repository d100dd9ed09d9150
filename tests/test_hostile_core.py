"""Nothing reachable from Python aborts the interpreter or panics in the Rust core.

The core is driven directly (``fastspawn._core``) with hostile values: huge, negative,
NaN, infinite, wrong types, closed objects. Only ordinary exceptions (``Exception``
subclasses) may come back. PyO3 turns a Rust panic into ``PanicException``, which
derives from ``BaseException``: ``no_panic`` catches it and fails the test explicitly,
and an abort (allocation failure, a panic in a ``panic = "abort"`` build) kills the
test process, which fails the run.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import time
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spawn_requests import native_request

import fastspawn
from fastspawn import _core


def no_panic(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``, letting ordinary exceptions through; fails the test on any
    other BaseException (a Rust panic arrives as PanicException, which is one)."""
    try:
        return function(*args)
    except Exception:
        raise
    except BaseException as exc:
        name = getattr(function, "__qualname__", function)
        pytest.fail(f"{name}{args!r} raised {type(exc).__module__}.{type(exc).__name__}: {exc}")


request = native_request


def spawn_core(*argv: str) -> _core.Child:
    spawned = _core.spawn(request(program=argv[0].encode(), argv=[a.encode() for a in argv], program_name=argv[0]))
    assert spawned is not None
    return spawned[0]


# -- Child.wait(timeout) and ChildProcess.wait(timeout): Popen.wait's answers ----------

# Popen.wait(timeout=nan): before 3.15 the deadline arithmetic never expires, so it waits
# for the exit; 3.15 waits on a pidfd with poll(), which rejects NaN.
NAN_WAITS = sys.version_info < (3, 15)
HOSTILE_TIMEOUTS = [math.inf, 1e300, 2**64, 1e19, math.nan, -1.0, -math.inf, -(2**64), 0]


def popen_wait_outcome(timeout: Any) -> str:
    """What ``Popen.wait(timeout)`` does here for a child that exits after 0.2 s."""
    proc = subprocess.Popen(["sleep", "0.2"])
    try:
        return f"returned {proc.wait(timeout)}"
    except subprocess.TimeoutExpired:
        return "TimeoutExpired"
    except Exception as exc:
        return type(exc).__name__
    finally:
        proc.wait()


@pytest.mark.parametrize("timeout", HOSTILE_TIMEOUTS, ids=repr)
def test_child_process_wait_timeouts_match_popen(fs: Any, timeout: Any) -> None:
    """``transport.get_extra_info('subprocess').wait(timeout)`` answers as Popen.wait:
    an infinite or huge timeout waits for the exit; a negative one polls once; NaN as
    the running Python's Popen (waits before 3.15, ValueError from 3.15)."""
    expected = popen_wait_outcome(timeout)
    if isinstance(timeout, float) and math.isnan(timeout):
        assert expected == ("returned 0" if NAN_WAITS else "ValueError")

    async def main() -> str:
        proc = await fastspawn.create_subprocess_exec("sleep", "0.2")
        popen_like = proc._transport.get_extra_info("subprocess")  # type: ignore[attr-defined]
        try:
            return f"returned {no_panic(popen_like.wait, timeout)}"
        except subprocess.TimeoutExpired:
            return "TimeoutExpired"
        except Exception as exc:
            return type(exc).__name__
        finally:
            await proc.wait()

    assert fs.run(main()) == expected


@pytest.mark.parametrize("timeout", HOSTILE_TIMEOUTS, ids=repr)
def test_core_wait_takes_any_timeout(timeout: Any) -> None:
    """``_core.Child.wait``: no limit for a timeout too large for a deadline, one poll for
    a negative one, ValueError for NaN (the caller decides what NaN means)."""
    child = spawn_core("sleep", "0.1")
    try:
        if isinstance(timeout, float) and math.isnan(timeout):
            with pytest.raises(ValueError, match="NaN"):
                no_panic(child.wait, timeout)
        elif timeout > 0:
            start = time.monotonic()
            assert no_panic(child.wait, timeout) == 0
            assert time.monotonic() - start < 30
        else:
            assert no_panic(child.wait, timeout) is None
    finally:
        child.send_signal(9)
        child.wait()


# -- Every function and method, driven by hypothesis ----------------------------------

# Numbers at the edges of every integer type the core converts to, and floats.
EDGE_INTS = [0, 1, -1, 2, 3, 4096, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**62, 2**63 - 1, 2**63, 2**64 - 1, 2**64]
EDGE_INTS += [-n for n in EDGE_INTS]
hostile = st.one_of(
    st.sampled_from(EDGE_INTS),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.booleans(),
    st.binary(max_size=8),
    st.text(max_size=4),
    st.lists(st.integers(min_value=-(2**40), max_value=2**40), max_size=3),
    st.builds(object),
    st.builds(slice, st.sampled_from([*EDGE_INTS, None]), st.sampled_from([*EDGE_INTS, None])),
)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


def survives(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``'s result, or None after an ordinary exception; fails the test
    on anything else (see ``no_panic``)."""
    try:
        result = no_panic(function, *args)
    except Exception:
        return None
    if asyncio.iscoroutine(result):
        result.close()  # next_line's already-finished awaitable (3.12+), never awaited here
    return result


def is_open(fd: Any) -> bool:
    if not isinstance(fd, int) or not -(2**31) <= fd < 2**31:
        return False
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def new_pipe(data: bytes = b"") -> tuple[_core.ReadPipe, int]:
    """A core ReadPipe holding ``data``, and the writing end (the caller closes it)."""
    r, w = os.pipe()
    if data:
        os.write(w, data)
    return _core.ReadPipe(r), w


BUFFER_METHODS = [
    "find", "startswith", "__getitem__", "__delitem__", "take", "take_bytes", "next_line", "take_lines",
    "extend", "clear", "__eq__", "__len__", "__bytes__", "read_from",
]  # fmt: skip


@SETTINGS
@given(content=st.binary(max_size=64), calls=st.lists(st.tuples(st.sampled_from(BUFFER_METHODS), hostile, hostile)))
def test_stream_buffer_survives_anything(content: bytes, calls: list[tuple[str, Any, Any]]) -> None:
    buffer = _core.StreamBuffer()
    buffer.extend(content + b"\nline\n")
    view = None
    for name, a, b in calls:
        if name == "read_from":
            pipe, w = new_pipe(b"abc\n")
            try:
                survives(buffer.read_from, pipe, a)
                survives(buffer.read_from, pipe, b)
                pipe.close()
                survives(buffer.read_from, pipe, 10)  # a closed pipe
            finally:
                os.close(w)
            continue
        method = getattr(buffer, name)
        for args in ((), (a,), (a, b)):
            survives(method, *args)
        if view is None and a is None:
            # An exported view: every resize must now refuse, not move the bytes.
            view = memoryview(buffer)  # type: ignore[arg-type]
    if view is not None:
        view.release()


EDGES = [*EDGE_INTS, math.inf, -math.inf, math.nan, 1e300, None, "1", b"\n"]


def test_every_buffer_method_at_every_edge() -> None:
    """Hypothesis samples; this sweeps every edge value through every argument."""
    for name in BUFFER_METHODS:
        for a in EDGES:
            for b in (*EDGES, 1) if name in ("find", "startswith", "take_lines") else (1,):
                buffer = _core.StreamBuffer()
                buffer.extend(b"ab\ncd\n")
                if name == "read_from":
                    pipe, w = new_pipe(b"abc\n")
                    try:
                        survives(buffer.read_from, pipe, a)
                    finally:
                        os.close(w)
                        pipe.close()
                    continue
                method = getattr(buffer, name)
                survives(method, a, b)
                survives(method, a)
        builder = _core.BytesBuilder()
        pipe, w = new_pipe(b"xyz")
        try:
            for a in EDGES:
                survives(builder.read_from, pipe, a)
                survives(pipe.read, a)
                survives(pipe.read_at_most, a)
        finally:
            os.close(w)
            pipe.close()


@SETTINGS
@given(limit=hostile, max_bytes=hostile, lines=st.lists(st.binary(max_size=10), max_size=5))
def test_line_iter_survives_anything(limit: Any, max_bytes: Any, lines: list[bytes]) -> None:
    buffer = _core.StreamBuffer()
    buffer.extend(b"\n".join(lines) + b"\n")
    survives(buffer.take_lines, limit, max_bytes)
    survives(buffer.next_line, limit)

    async def slow() -> bytes:
        raise StopAsyncIteration

    iterator = survives(_core.LineIter, buffer, limit, slow, lambda: None)
    if iterator is not None:
        survives(iterator.__anext__)
    survives(_core.LineIter, limit, limit, limit, limit)


@SETTINGS
@given(calls=st.lists(st.tuples(st.sampled_from(["read_from", "extend", "extend_from", "finish", "__len__"]), hostile)))
def test_bytes_builder_survives_anything(calls: list[tuple[str, Any]]) -> None:
    builder = _core.BytesBuilder()
    for name, a in calls:
        if name == "read_from":
            pipe, w = new_pipe(b"xyz")
            try:
                survives(builder.read_from, pipe, a)
            finally:
                os.close(w)
                pipe.close()
            survives(builder.read_from, pipe, 1)
        elif name == "extend_from":
            buffer = _core.StreamBuffer()
            buffer.extend(b"abc")
            survives(builder.extend_from, buffer)
            survives(builder.extend_from, a)
        else:
            survives(getattr(builder, name), *((a,) if name == "extend" else ()))


@SETTINGS
@given(fd=hostile, calls=st.lists(st.tuples(st.sampled_from(["read", "read_at_most", "write", "flush"]), hostile)))
def test_pipes_survive_anything(fd: Any, calls: list[tuple[str, Any]]) -> None:
    # The constructors take ownership of a valid descriptor: only ever give them one that
    # is not open (or one of our own, below), never one of the test runner's.
    if not is_open(fd):
        survives(_core.ReadPipe, fd)
        survives(_core.WritePipe, fd)
    r, w = os.pipe()
    reader, writer = _core.ReadPipe(r), _core.WritePipe(w)
    for closed in (False, True):
        for name, a in calls:
            pipe = writer if name in ("write", "flush") else reader
            survives(getattr(pipe, name), *((a,) if name != "flush" else ()))
        for pipe in (reader, writer):
            survives(pipe.fileno)
            pipe.closed  # noqa: B018
        survives(writer.discard)
        if not closed:
            reader.close()
            writer.close()


@SETTINGS
@given(calls=st.lists(st.tuples(st.sampled_from(["wait", "send_signal", "try_wait", "close_exit_fd"]), hostile)))
def test_child_survives_anything(calls: list[tuple[str, Any]]) -> None:
    child = spawn_core("sleep", "0.05")
    try:
        for name, a in calls:
            if name == "wait" and not (isinstance(a, (int, float)) and a <= 1):
                a = 0.01  # keep it short: long timeouts are covered above
            survives(getattr(child, name), *(() if name in ("try_wait", "close_exit_fd") else (a,)))
            survives(repr, child)
            child.pid, child.returncode, child.exit_fd  # noqa: B018
    finally:
        survives(child.send_signal, 9)
        survives(child.wait, None)


# Pids that cannot name a process of anyone's (<= 0, or beyond any pid_max).
not_a_process = st.one_of(
    st.integers(max_value=0),
    st.integers(min_value=2**22 + 1),
    st.sampled_from([n for n in EDGE_INTS if not 0 < n <= 2**22]),
)


@SETTINGS
@given(pid=st.one_of(not_a_process, hostile.filter(lambda v: not isinstance(v, int))))
def test_watch_survives_anything(pid: Any) -> None:
    # watch(0) and watch(-1) used to reach kill(0 | -1, SIGKILL) on their error path.
    child = survives(_core.watch, pid)
    if child is not None:
        assert no_panic(child.send_signal, 0) is False


STDIO = st.one_of(st.sampled_from([None, -1, -2, -3]), hostile.filter(lambda v: not is_open(v)))


@SETTINGS
@given(
    program=st.one_of(st.sampled_from([b"/bin/true", b"true", b"/no/such/program", b"", b"tr\0ue"]), hostile),
    argv=st.one_of(st.just([b"true"]), st.lists(st.binary(max_size=4), max_size=3), hostile),
    env=st.one_of(st.none(), st.just([b"A=1", b"PATH=/bin"]), hostile),
    exec_path=st.one_of(st.none(), st.sampled_from([b"/bin", b"", b":", b"/b\0in"]), hostile),
    cwd=st.one_of(st.none(), st.sampled_from([b"/", b"/no/such/dir", b"\0"]), hostile),
    stdio=st.tuples(STDIO, STDIO, STDIO),
    flags=st.tuples(hostile, hostile, hostile),
    pass_fds=st.one_of(st.just([]), st.lists(hostile.filter(lambda v: not is_open(v)), max_size=2), hostile),
    pgroup_pipesize=st.tuples(st.one_of(st.none(), hostile), st.one_of(st.none(), hostile)),
    credentials=st.tuples(*[st.one_of(st.none(), hostile)] * 4),
    setup=st.tuples(
        st.one_of(st.none(), st.lists(st.tuples(hostile, hostile, hostile), max_size=2), hostile),
        st.one_of(st.none(), hostile),
        hostile,
    ),
)
def test_spawn_survives_anything(
    program: Any,
    argv: Any,
    env: Any,
    exec_path: Any,
    cwd: Any,
    stdio: tuple[Any, Any, Any],
    flags: tuple[Any, Any, Any],
    pass_fds: Any,
    pgroup_pipesize: tuple[Any, Any],
    credentials: tuple[Any, Any, Any, Any],
    setup: tuple[Any, Any, Any],
) -> None:
    close_fds, new_session, restore_signals = flags
    pgroup, pipe_size = pgroup_pipesize
    umask, groups, gid, uid = credentials
    if isinstance(groups, int):
        groups = [groups]
    if uid is not None and isinstance(uid, int) and uid != 0 and 0 < uid < 2**32 - 1:
        # A child running as another user cannot be killed by the cleanup below on
        # every system; keep it root (the values at the edges still get through).
        uid = None
    spawn_request = request(
        program=program,
        argv=argv,
        env=env,
        exec_path=exec_path,
        cwd=cwd,
        stdin=stdio[0],
        stdout=stdio[1],
        stderr=stdio[2],
        close_fds=close_fds,
        pass_fds=pass_fds,
        start_new_session=new_session,
        process_group=pgroup,
        restore_signals=restore_signals,
        pipe_size=pipe_size,
        program_name="program",
        cwd_name="cwd",
        umask=umask,
        groups=groups,
        gid=gid,
        uid=uid,
        rlimits=setup[0],
        pdeathsig=setup[1],
        subreaper=setup[2],
    )
    result = survives(_core.spawn, spawn_request)
    if result is not None:
        child, *pipes = result
        for pipe in pipes:
            if pipe is not None:
                pipe.close()
        no_panic(child.send_signal, 9)
        no_panic(child.wait, None)


@SETTINGS
@given(spawn_request=hostile)
def test_spawn_survives_anything_as_the_request(spawn_request: Any) -> None:
    survives(_core.spawn, spawn_request)


def test_features() -> None:
    assert no_panic(_core.features) in {(a, b, c) for a in (True, False) for b in (True, False) for c in (True, False)}


@pytest.mark.parametrize("who", ["self", "parent", "init"])
def test_watch_of_a_process_that_is_not_our_child_never_signals_it(who: str) -> None:
    """A pid that is no child of ours is a lost child: no status (ChildProcessError), no
    signal (send_signal answers False). It used to be signalled through its pidfd (or,
    without pidfds, by kill)."""
    pid = {"self": os.getpid(), "parent": os.getppid(), "init": 1}[who]
    child = no_panic(_core.watch, pid)
    assert no_panic(child.send_signal, 0) is False
    if who == "self":
        assert no_panic(child.send_signal, signal.SIGKILL) is False  # and we are alive
    with pytest.raises(ChildProcessError):
        child.try_wait()
    assert child.returncode is None
    del child  # nothing for the reaper either
