"""Creating subprocess transports, and the ``asyncio``-shaped functions on top."""

from __future__ import annotations

import asyncio
import os
import subprocess
from typing import IO, Any, Callable, Optional, TypeVar, Union

from . import _core
from ._defaults import DEFAULT_LIMIT
from ._options import plan_native, popen_delegated
from ._private import FAST_STREAMS
from ._private import streams as _fast
from ._private.hooks import forget_popen_child
from ._process import Process
from ._spawner import spawn_native
from ._transport import SubprocessTransport

__all__ = [
    "create_subprocess_exec",
    "create_subprocess_shell",
    "subprocess_exec",
    "subprocess_shell",
]

_P = TypeVar("_P", bound=asyncio.SubprocessProtocol)
_Stdio = Union[int, IO[Any], None]


def _adopt_pipe(f: Optional[IO[bytes]], kind: type[Any]) -> Any:
    """Moves a Popen pipe's descriptor into a core pipe object."""
    if f is None:
        return None
    fd = os.dup(f.fileno())  # close-on-exec, like every descriptor Python creates
    f.close()
    return kind(fd)


def _spawn_delegated(
    args: Any, shell: bool, stdin: Any, stdout: Any, stderr: Any, kwargs: dict[str, Any]
) -> tuple[_core.Child, Any, Any, Any]:
    proc = popen_delegated(args, shell, stdin, stdout, stderr, kwargs)
    try:
        child = _core.watch(proc.pid)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    # From here the core reaps the child; Popen must never waitpid() it (its __del__
    # would, and could reap a recycled pid later).
    forget_popen_child(proc)
    return (
        child,
        _adopt_pipe(proc.stdin, _core.WritePipe),
        _adopt_pipe(proc.stdout, _core.ReadPipe),
        _adopt_pipe(proc.stderr, _core.ReadPipe),
    )


async def spawn_transport(
    loop: asyncio.AbstractEventLoop,
    protocol: asyncio.SubprocessProtocol,
    args: Any,
    shell: bool,
    stdin: Any,
    stdout: Any,
    stderr: Any,
    extra: Optional[dict[str, Any]],
    kwargs: dict[str, Any],
) -> SubprocessTransport:
    """Spawns the child and connects ``protocol``. The one await is a native spawn on the
    spawner thread (``_spawner``), which cleans up after itself if cancelled; from the
    child's start to the transport's connection nothing awaits, so no cancellation can
    leave a half-built transport behind."""
    if FAST_STREAMS and type(protocol) is asyncio.subprocess.SubprocessStreamProtocol:
        # asyncio.create_subprocess_* made the stock protocol (install() routes it here):
        # give it fastspawn's StreamReaders. The subclass adds no state, only a different
        # connection_made, and nothing has been connected yet.
        protocol.__class__ = _fast.SubprocessStreamProtocol
    native = plan_native(args, shell, stdin, stdout, stderr, kwargs)
    # None from either: Popen spawns it (options the core cannot express, or cannot
    # honour on this system).
    spawned = None if native is None else await spawn_native(loop, native)
    if spawned is None:
        spawned = _spawn_delegated(args, shell, stdin, stdout, stderr, kwargs)
    child, pin, pout, perr = spawned
    transport = SubprocessTransport(loop, protocol, child, pin, pout, perr, args, extra)
    try:
        transport.connect()
    except BaseException:
        transport.close()
        raise
    return transport


def _check_rest(bufsize: int, text: Any, encoding: Any, errors: Any) -> None:
    # The same checks, in the same order, as BaseEventLoop.subprocess_exec/shell.
    if bufsize != 0:
        raise ValueError("bufsize must be 0")
    if text:
        raise ValueError("text must be False")
    if encoding is not None:
        raise ValueError("encoding must be None")
    if errors is not None:
        raise ValueError("errors must be None")


async def subprocess_exec(
    protocol_factory: Callable[[], _P],
    program: Any,
    *args: Any,
    stdin: _Stdio = subprocess.PIPE,
    stdout: _Stdio = subprocess.PIPE,
    stderr: _Stdio = subprocess.PIPE,
    universal_newlines: bool = False,
    shell: bool = False,
    bufsize: int = 0,
    encoding: Optional[str] = None,
    errors: Optional[str] = None,
    text: Optional[bool] = None,
    **kwargs: Any,
) -> tuple[SubprocessTransport, _P]:
    """``loop.subprocess_exec`` on the running loop, spawned by fastspawn."""
    if universal_newlines:
        raise ValueError("universal_newlines must be False")
    if shell:
        raise ValueError("shell must be False")
    _check_rest(bufsize, text, encoding, errors)
    loop = asyncio.get_running_loop()
    protocol = protocol_factory()
    transport = await spawn_transport(loop, protocol, (program, *args), False, stdin, stdout, stderr, None, kwargs)
    return transport, protocol


async def subprocess_shell(
    protocol_factory: Callable[[], _P],
    cmd: Union[str, bytes],
    *,
    stdin: _Stdio = subprocess.PIPE,
    stdout: _Stdio = subprocess.PIPE,
    stderr: _Stdio = subprocess.PIPE,
    universal_newlines: bool = False,
    shell: bool = True,
    bufsize: int = 0,
    encoding: Optional[str] = None,
    errors: Optional[str] = None,
    text: Optional[bool] = None,
    **kwargs: Any,
) -> tuple[SubprocessTransport, _P]:
    """``loop.subprocess_shell`` on the running loop, spawned by fastspawn."""
    if not isinstance(cmd, (bytes, str)):
        raise ValueError("cmd must be a string")
    if universal_newlines:
        raise ValueError("universal_newlines must be False")
    if not shell:
        raise ValueError("shell must be True")
    _check_rest(bufsize, text, encoding, errors)
    loop = asyncio.get_running_loop()
    protocol = protocol_factory()
    transport = await spawn_transport(loop, protocol, cmd, True, stdin, stdout, stderr, None, kwargs)
    return transport, protocol


def _stream_protocol(limit: int, loop: asyncio.AbstractEventLoop) -> asyncio.subprocess.SubprocessStreamProtocol:
    # fastspawn's protocol (its StreamReaders) where the speed layer is on, else asyncio's.
    protocol_class = _fast.SubprocessStreamProtocol if FAST_STREAMS else asyncio.subprocess.SubprocessStreamProtocol
    return protocol_class(limit=limit, loop=loop)


async def create_subprocess_exec(
    program: Any,
    *args: Any,
    stdin: _Stdio = None,
    stdout: _Stdio = None,
    stderr: _Stdio = None,
    limit: int = DEFAULT_LIMIT,
    **kwds: Any,
) -> Process:
    """``asyncio.create_subprocess_exec``, spawned by fastspawn on the running loop."""
    loop = asyncio.get_running_loop()
    transport, protocol = await subprocess_exec(
        lambda: _stream_protocol(limit, loop), program, *args, stdin=stdin, stdout=stdout, stderr=stderr, **kwds
    )
    return Process(transport, protocol, loop)


async def create_subprocess_shell(
    cmd: Union[str, bytes],
    stdin: _Stdio = None,
    stdout: _Stdio = None,
    stderr: _Stdio = None,
    limit: int = DEFAULT_LIMIT,
    **kwds: Any,
) -> Process:
    """``asyncio.create_subprocess_shell``, spawned by fastspawn on the running loop."""
    loop = asyncio.get_running_loop()
    transport, protocol = await subprocess_shell(
        lambda: _stream_protocol(limit, loop), cmd, stdin=stdin, stdout=stdout, stderr=stderr, **kwds
    )
    return Process(transport, protocol, loop)
