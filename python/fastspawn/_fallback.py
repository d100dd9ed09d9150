"""fastspawn without its core: asyncio's own spawner under fastspawn's names.

Where the compiled core cannot exist (the pure-Python ``py3-none-any`` wheel that pip
installs on macOS, Windows, musl or another CPU; ``_load``), ``fastspawn`` exports these
in place of the native implementations, so code written for fastspawn runs unchanged,
with asyncio's speed and semantics (``features().native_spawn`` is False and
``features().core_error`` says why):

* ``install()``/``uninstall()`` do nothing and ``is_installed()`` is False;
* ``create_subprocess_*``, ``Process``, ``StreamReader``, ``SubprocessStreamProtocol``,
  ``SubprocessTransport`` and ``EventLoop`` (the platform's default loop class: the
  proactor on Windows) are asyncio's own, so ``async with proc``, the tree signals and
  ``communicate(timeout=)`` do not exist; ``subprocess_*``, ``new_event_loop`` and ``run``
  are thin wrappers over asyncio;
* ``iter_lines`` is the same function (it needs only public ``StreamReader`` API);
* ``run_process`` takes the same arguments and returns and raises the same things, but
  it ends only the child, never its descendants: on a timeout, terminate, up to
  ``grace`` seconds, kill (with the output written until then); on an error or a
  cancellation, kill at once;
* ``NATIVE_OPTIONS`` is empty and ``DELEGATED_OPTIONS`` names every ``Popen`` keyword
  asyncio passes on: all of them go to ``subprocess.Popen``.
"""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from types import MappingProxyType
from typing import Any, Callable, Coroutine, Optional, TypeVar

from ._communicate import Communication, Input
from ._completed import DRAIN_AFTER_KILL, Command, CompletedProcess, dropped, prepare, timeout_expired
from ._defaults import DEFAULT_GRACE, DEFAULT_LIMIT

__all__ = [
    "DELEGATED_OPTIONS",
    "NATIVE_OPTIONS",
    "EventLoop",
    "Process",
    "SubprocessTransport",
    "__version__",
    "create_subprocess_exec",
    "create_subprocess_shell",
    "install",
    "is_installed",
    "new_event_loop",
    "run",
    "run_process",
    "subprocess_exec",
    "subprocess_shell",
    "uninstall",
]

_P = TypeVar("_P", bound=asyncio.SubprocessProtocol)
_T = TypeVar("_T")

try:
    __version__ = metadata.version("fastspawn")
except metadata.PackageNotFoundError:  # sources on sys.path, not installed
    __version__ = "0+unknown"


Process = asyncio.subprocess.Process
SubprocessTransport = asyncio.SubprocessTransport
create_subprocess_exec = asyncio.create_subprocess_exec
create_subprocess_shell = asyncio.create_subprocess_shell

EventLoop: type[asyncio.AbstractEventLoop]
if sys.platform == "win32":
    # asyncio's default there, and the only Windows loop that runs subprocesses.
    EventLoop = asyncio.ProactorEventLoop
else:
    EventLoop = asyncio.SelectorEventLoop

# Nothing is spawned natively: every Popen keyword that asyncio passes on goes to
# subprocess.Popen (with Popen's default). The rest asyncio takes itself or refuses.
NATIVE_OPTIONS: Mapping[str, Any] = MappingProxyType({})
_ASYNCIO_OWN = {"args", "bufsize", "stdin", "stdout", "stderr", "shell", "universal_newlines"}
_ASYNCIO_OWN |= {"text", "encoding", "errors"}
DELEGATED_OPTIONS: Mapping[str, Any] = MappingProxyType(
    {
        name: parameter.default
        for name, parameter in inspect.signature(subprocess.Popen).parameters.items()
        if name not in _ASYNCIO_OWN
    }
)


def install() -> None:
    """A no-op: without the core asyncio already spawns everything itself."""


def uninstall() -> None:
    """A no-op, as ``install()``."""


def is_installed() -> bool:
    """False: ``install()`` is a no-op here."""
    return False


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new :class:`EventLoop` (the platform's default asyncio loop)."""
    return EventLoop()


def run(main: Coroutine[Any, Any, _T], *, debug: Optional[bool] = None) -> _T:
    """``asyncio.run`` on an :class:`EventLoop`."""
    with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)


async def subprocess_exec(
    protocol_factory: Callable[[], _P], program: Any, *args: Any, **kwargs: Any
) -> tuple[asyncio.SubprocessTransport, _P]:
    """``loop.subprocess_exec`` on the running loop."""
    return await asyncio.get_running_loop().subprocess_exec(protocol_factory, program, *args, **kwargs)


async def subprocess_shell(
    protocol_factory: Callable[[], _P], cmd: str | bytes, **kwargs: Any
) -> tuple[asyncio.SubprocessTransport, _P]:
    """``loop.subprocess_shell`` on the running loop."""
    return await asyncio.get_running_loop().subprocess_shell(protocol_factory, cmd, **kwargs)


async def _spawn(cmd: Command, options: dict[str, Any]) -> tuple[asyncio.SubprocessTransport, Process]:
    """``asyncio.create_subprocess_exec``/``_shell``, done as they do it, keeping the
    transport: the one public handle that closes pipes a descendant may still hold."""
    loop = asyncio.get_running_loop()
    limit = options.pop("limit", DEFAULT_LIMIT)
    for name in ("stdin", "stdout", "stderr"):
        options.setdefault(name, None)  # create_subprocess_*'s defaults (not loop's PIPE)

    def protocol() -> asyncio.subprocess.SubprocessStreamProtocol:
        return asyncio.subprocess.SubprocessStreamProtocol(limit=limit, loop=loop)

    if isinstance(cmd, (str, bytes)):
        transport, stream_protocol = await loop.subprocess_shell(protocol, cmd, **options)
    else:
        transport, stream_protocol = await loop.subprocess_exec(protocol, *cmd, **options)
    return transport, Process(transport, stream_protocol, loop)


def _signal(send: Callable[[], None]) -> None:
    try:
        send()
    except ProcessLookupError:  # already reaped, or the transport already closed
        pass


async def _end_collecting(proc: Process, comm: Communication, grace: float) -> None:
    """After a timeout: terminate the child, reading on for ``grace`` seconds; kill it if
    it is still there, reading on a little longer; the output stays in ``comm``."""
    if grace > 0:
        _signal(proc.terminate)
        try:
            await comm.run(grace, None)
            return
        except subprocess.TimeoutExpired:
            pass
    _signal(proc.kill)
    try:
        await comm.run(DRAIN_AFTER_KILL, None)
    except subprocess.TimeoutExpired:
        pass


async def _close(proc: Process, transport: asyncio.SubprocessTransport) -> None:
    """Kills the child if it still runs, closes its pipes, and waits for its exit; the
    wait is shielded (a killed child exits at once), so a cancellation leaves none
    running or unreaped."""
    if proc.returncode is None:
        _signal(proc.kill)
    transport.close()
    await asyncio.shield(proc.wait())


async def run_process(
    cmd: Command,
    *,
    input: Input = None,
    capture_output: bool = True,
    timeout: Optional[float] = None,
    check: bool = False,
    max_output: Optional[int] = None,
    keep_output: str = "head",
    grace: float = DEFAULT_GRACE,
    **spawn_options: Any,
) -> CompletedProcess:
    """Runs ``cmd`` to the end: ``subprocess.run`` for asyncio, over asyncio's own
    processes (the portable fallback of fastspawn's ``run_process``).

    The same arguments, result and exceptions as the native one, with one difference:
    only the child is ended, never its descendants. After ``timeout`` seconds it is
    terminated, given ``grace`` seconds, then killed, and ``subprocess.TimeoutExpired``
    carries the output written until then; an error or a cancellation kills it at once.
    ``max_output`` caps the bytes kept per stream, the first ones or with
    ``keep_output="tail"`` the last ones (the rest counted in
    ``dropped_stdout``/``dropped_stderr``); ``check`` raises
    ``subprocess.CalledProcessError`` on a non-zero exit; ``spawn_options`` go to
    ``asyncio.create_subprocess_*``."""
    tail = prepare(spawn_options, input, capture_output, max_output, keep_output)
    transport, proc = await _spawn(cmd, spawn_options)
    try:
        comm = Communication(proc, input, max_output, tail)
        try:
            stdout, stderr = await comm.run(timeout, cmd)
        except subprocess.TimeoutExpired:
            await _end_collecting(proc, comm, grace)
            raise timeout_expired(cmd, timeout, comm) from None
    finally:
        await _close(proc, transport)
    returncode = proc.returncode
    assert returncode is not None
    result = CompletedProcess(cmd, returncode, stdout, stderr, *dropped(comm))
    if check:
        result.check_returncode()
    return result
