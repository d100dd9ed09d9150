"""``asyncio.SubprocessTransport`` over a child started by the Rust core.

Semantics follow asyncio's ``BaseSubprocessTransport`` so the standard
``SubprocessStreamProtocol``, ``StreamReader`` and ``Process`` work on top unchanged:

* ``connection_made`` comes before any ``pipe_data_received``;
* ``process_exited`` is called once the child exits; ``connection_lost`` only after
  the child exited *and* every pipe closed;
* ``close()`` on a running child kills it; every child is reaped.

Two deliberate differences from asyncio 3.12/3.13:

* ``Process.wait()`` returns when the process exits, not when its pipes also close, so
  a grandchild holding stdout open cannot make it hang (cpython#119710; asyncio 3.9/3.10,
  uvloop and trio behave this way too; recent 3.11 releases wait for the pipes as well).
* Signals go through a pidfd, so ``send_signal`` after the child exited is a no-op that
  can never reach a process that recycled the pid (cpython#127049).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import warnings
from typing import Any, Callable, Optional, Union

from . import _core
from ._child import ChildProcess, remove_empty_leaf
from ._pipes import ReadPipeTransport, WritePipeTransport
from ._private import streams as _fast
from ._private.hooks import describe_callback
from ._versions import CHANGES
from ._watcher import watcher_for

__all__ = ["SubprocessTransport"]

# asyncio's own logger, so fastspawn's messages are configured with asyncio's.
logger = logging.getLogger("asyncio")

# asyncio's warning for a child whose exit status someone else collected (SIGCHLD
# ignored, a waitpid(-1) elsewhere). 3.12+ watch children through pidfds where they work
# (PidfdChildWatcher) and word it differently from the thread-per-child watcher that 3.11,
# and later versions without pidfds, use (asyncio/unix_events.py).
_LOST_STATUS_WARNING = (
    "child process pid %d exit status already read:  will report returncode 255"
    if CHANGES["pidfd_watcher_lost_status_wording"].here and _core.features()[2]
    else "Unknown child process pid %d, will report returncode 255"
)


class _PipeProtocol(asyncio.Protocol):
    """Forwards one pipe's events to the subprocess transport, as asyncio's
    ``ReadSubprocessPipeProto``/``WriteSubprocessPipeProto`` do."""

    def __init__(self, proc: SubprocessTransport, fd: int) -> None:
        self.proc: Optional[SubprocessTransport] = proc
        self.fd = fd
        self.pipe: Union[ReadPipeTransport, WritePipeTransport, None] = None
        self.disconnected = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} fd={self.fd} pipe={self.pipe!r}>"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, (ReadPipeTransport, WritePipeTransport))
        self.pipe = transport

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.disconnected = True
        if self.proc is not None:
            self.proc._pipe_connection_lost(self.fd, exc)
        self.proc = None

    def pause_writing(self) -> None:
        if self.proc is not None and self.proc._protocol is not None:
            self.proc._protocol.pause_writing()

    def resume_writing(self) -> None:
        if self.proc is not None and self.proc._protocol is not None:
            self.proc._protocol.resume_writing()

    def data_received(self, data: bytes) -> None:
        if self.proc is not None and self.proc._protocol is not None:
            self.proc._protocol.pipe_data_received(self.fd, data)


class SubprocessTransport(asyncio.SubprocessTransport):
    """A running child and its pipes, as asyncio's subprocess transport."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol: asyncio.SubprocessProtocol,
        child: _core.Child,
        stdin: Optional[_core.WritePipe],
        stdout: Optional[_core.ReadPipe],
        stderr: Optional[_core.ReadPipe],
        args: Any,
        extra: Optional[dict[str, Any]] = None,
    ) -> None:
        # What asyncio calls _proc (a Popen there): None once the transport is finished.
        self._proc: Optional[ChildProcess] = ChildProcess(child, args)
        super().__init__({**(extra or {}), "subprocess": self._proc})
        self._loop: Optional[asyncio.AbstractEventLoop] = loop
        self._protocol: Optional[asyncio.SubprocessProtocol] = protocol
        self._child = child
        self._pid = child.pid
        self._returncode: Optional[int] = None
        self._closed = False
        self._finished = False
        self._exit_fd: Optional[int] = None
        self._exit_waiters: Optional[list[asyncio.Future[int]]] = []
        self._pipes: dict[int, _PipeProtocol] = {}
        self._watcher = watcher = watcher_for(loop)
        if stdin is not None:
            proto = _PipeProtocol(self, 0)
            writer = WritePipeTransport(loop, stdin, proto, watcher)
            proto.connection_made(writer)
            self._pipes[0] = proto
        for fd, pipe in ((1, stdout), (2, stderr)):
            if pipe is not None:
                proto = _PipeProtocol(self, fd)
                reader = ReadPipeTransport(loop, pipe, proto, watcher)
                proto.connection_made(reader)
                self._pipes[fd] = proto

    def connect(self) -> None:
        """Calls ``protocol.connection_made`` and starts watching exit and pipes.

        Nothing is read before the protocol is connected, so no data can overtake
        ``connection_made``. The exit is watched even if the protocol closed the
        transport meanwhile: the child must still be reaped and ``wait()`` answered."""
        loop, protocol, child = self._loop, self._protocol, self._child
        assert loop is not None and protocol is not None
        try:
            protocol.connection_made(self)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            # asyncio calls connection_made from the loop (call_soon), so an exception in
            # it goes to the loop's exception handler and the spawn stands (e.g. a
            # StreamReader refusing limit="x": the process runs, its output is dropped).
            handle = asyncio.Handle(protocol.connection_made, (self,), loop)
            message = f"Exception in callback {describe_callback(protocol.connection_made, (self,))}"
            loop.call_exception_handler({"message": message, "exception": exc, "handle": handle})
        exit_fd = child.exit_fd
        assert exit_fd is not None
        self._exit_fd = exit_fd
        self._watcher.add_reader(exit_fd, self._exit_ready)
        if self._closed:
            return
        if type(protocol) is _fast.SubprocessStreamProtocol:
            # fastspawn's own protocol only hands pipe data to its readers: let the pipes
            # read straight into them.
            for fd, reader in ((1, protocol.stdout), (2, protocol.stderr)):
                if type(reader) is _fast.StreamReader:
                    pipe = self.get_pipe_transport(fd)
                    if isinstance(pipe, ReadPipeTransport):
                        pipe.attach_sink(reader)
        for proto in self._pipes.values():
            pipe = proto.pipe
            assert pipe is not None
            pipe.start()

    def __repr__(self) -> str:
        info = [type(self).__name__]
        if self._closed:
            info.append("closed")
        info.append(f"pid={self._pid}")
        if self._returncode is not None:
            info.append(f"returncode={self._returncode}")
        else:
            info.append("running")
        for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
            proto = self._pipes.get(fd)
            if proto is not None:
                info.append(f"{name}={proto.pipe!r}")
        return "<{}>".format(" ".join(info))

    # -- asyncio.SubprocessTransport API ---------------------------------------------

    def get_pid(self) -> int:
        return self._pid

    def get_returncode(self) -> Optional[int]:
        return self._returncode

    def get_pipe_transport(self, fd: int) -> Union[ReadPipeTransport, WritePipeTransport, None]:
        proto = self._pipes.get(fd)
        return None if proto is None else proto.pipe

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.SubprocessProtocol)
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._protocol is not None
        return self._protocol

    def is_closing(self) -> bool:
        return self._closed

    def _check_proc(self) -> ChildProcess:
        # asyncio raises ProcessLookupError once the transport is finished.
        if self._proc is None:
            raise ProcessLookupError()
        return self._proc

    def send_signal(self, signal: int) -> None:
        self._check_proc().send_signal(signal)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for proto in self._pipes.values():
            if proto.pipe is not None:
                proto.pipe.close()
        proc = self._proc
        # poll(): the child may have exited before the exit watcher told us.
        if proc is not None and self._returncode is None and proc.poll() is None:
            loop = self._loop
            if loop is not None and not loop.is_closed() and loop.get_debug():
                logger.warning("Close running child process: kill %r", self)
            proc.kill()
        remove_empty_leaf(self._child)
        loop = self._loop
        if loop is None or loop.is_closed():
            # Nobody will watch the exit fd on the loop any more. The fd stays open while
            # the child is unreaped: ChildProcess.wait() blocks on it (closed, the core
            # could only answer "not yet", and wait() raised TimeoutExpired without a
            # timeout); the core's reaper takes the child over once the handle is dropped.
            self._forget_child(keep_exit_fd=self._child.returncode is None)

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if not self._closed:
            # Process.wait() returns on exit, so a program may finish with the pipes of an
            # exited child still open (asyncio 3.12+ would have waited for them). Only a
            # still-running child is worth the warning.
            if self._returncode is None:
                _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self.close()

    # -- used by asyncio.subprocess.Process ------------------------------------------

    async def _wait(self) -> int:
        """Waits for the process to exit and returns its returncode."""
        if self._returncode is not None:
            return self._returncode
        assert self._loop is not None and self._exit_waiters is not None
        waiter: asyncio.Future[int] = self._loop.create_future()
        self._exit_waiters.append(waiter)
        return await waiter

    # -- internals ---------------------------------------------------------------------

    def _forget_child(self, keep_exit_fd: bool = False) -> None:
        """Stops watching the exit fd and closes it (unless ``keep_exit_fd``); an
        unreaped child is then reaped by the core's reaper once the handle is dropped."""
        if self._exit_fd is not None:
            self._watcher.remove_reader(self._exit_fd)
        self._exit_fd = None
        if not keep_exit_fd:
            self._child.close_exit_fd()

    def _exit_ready(self) -> None:
        if self._returncode is not None:
            return
        try:
            returncode = self._child.try_wait()
        except ChildProcessError:
            # Something else collected its status; asyncio reports 255.
            logger.warning(_LOST_STATUS_WARNING, self._pid)
            returncode = 255
        if returncode is None:
            return
        self._forget_child()
        if self._closed:
            remove_empty_leaf(self._child)
        self._process_exited(returncode)

    def _process_exited(self, returncode: int) -> None:
        loop, protocol = self._loop, self._protocol
        assert loop is not None and protocol is not None
        if loop.get_debug():
            logger.info("%r exited with return code %r", self, returncode)
        self._returncode = returncode
        for proto in self._pipes.values():
            if proto.pipe is not None:
                proto.pipe.quiet_on_collect = True
        loop.call_soon(protocol.process_exited)
        self._try_finish()
        # Process.wait() resolves on exit, not on exit + pipe EOF (see module doc). As in
        # asyncio 3.9/3.10, after _try_finish: with no pipes left, connection_lost runs first.
        waiters, self._exit_waiters = self._exit_waiters, []
        for waiter in waiters or ():
            if not waiter.cancelled():
                waiter.set_result(returncode)

    def _pipe_connection_lost(self, fd: int, exc: Optional[Exception]) -> None:
        if self._protocol is not None:
            self._protocol.pipe_connection_lost(fd, exc)
        self._try_finish()

    def _try_finish(self) -> None:
        if self._finished or self._returncode is None:
            return
        if all(p.disconnected for p in self._pipes.values()):
            self._finished = True
            assert self._loop is not None
            self._loop.call_soon(self._call_connection_lost, None)

    def _call_connection_lost(self, exc: Optional[Exception]) -> None:
        try:
            if self._protocol is not None:
                self._protocol.connection_lost(exc)
        finally:
            waiters, self._exit_waiters = self._exit_waiters, None
            for waiter in waiters or ():
                if not waiter.cancelled():
                    waiter.set_result(self._returncode)  # type: ignore[arg-type]
            self._loop = None
            self._proc = None
            self._protocol = None
