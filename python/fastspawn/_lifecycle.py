"""The child's whole life under control: what ``fastspawn.Process`` adds to asyncio's
``Process``.

* ``async with proc:`` (or ``async with proc.ensure_ended(grace=...)``) and
  ``await proc.aclose()``: end the child and every descendant it can reach (SIGTERM, a
  grace period, SIGKILL), reap it, close the pipes; shielded from cancellation.
* ``send_signal_tree``/``terminate_tree``/``kill_tree``: the child and its descendants
  (``_tree``).
* ``communicate(input=None, timeout=None)``: ``subprocess.TimeoutExpired`` with the output
  so far, and nothing lost to a timeout or a cancellation (``_communicate``).
* ``wait(timeout=None)``: ``subprocess.TimeoutExpired`` after ``timeout``, the child left
  running, as ``Popen.wait``.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from types import TracebackType
from typing import Any, Generic, Optional, Self, TypeVar

from . import _core
from ._child import ChildProcess, remove_empty_leaf
from ._communicate import Communication, Input, Output, one_stream
from ._defaults import DEFAULT_GRACE
from ._private import FAST_STREAMS
from ._private.hooks import read_stream
from ._tree import ProcessTree

__all__ = ["LifecycleProcess"]

# After SIGKILL, how long ending waits for the child and its descendants to be gone (a
# process in uninterruptible sleep dies only when it leaves it); past it, the core reaps
# the child in the background.
KILL_WAIT = 5.0


class LifecycleProcess(asyncio.subprocess.Process):
    """``asyncio.subprocess.Process`` with an async context manager, tree signals and a
    ``communicate()`` that takes a timeout."""

    grace: float = DEFAULT_GRACE
    """Seconds between SIGTERM and SIGKILL when ``async with proc:`` ends the process
    (``DEFAULT_GRACE``, 5 s); set it on the instance, or use ``ensure_ended(grace=...)``."""

    def __init__(self, transport: asyncio.SubprocessTransport, protocol: Any, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(transport, protocol, loop)
        self._fs_transport = transport
        self._fs_tree: Optional[ProcessTree] = None
        self._fs_comm: Optional[Communication] = None
        self._fs_ending: Optional[asyncio.Future[Optional[int]]] = None
        self._fs_hurry = asyncio.Event()
        child = transport.get_extra_info("subprocess")
        # A child leading its own process group leaves a zombie once it exits, until this
        # process is closed (aclose, async with) or dropped: the group id stays its own,
        # so the tree signals can still reach what it left in the group.
        self._fs_core: Optional[_core.Child] = child.core if isinstance(child, ChildProcess) else None
        if self._fs_core is not None:
            self._fs_core.hold()

    @property
    def cgroup(self) -> Optional[_core.CGroup]:
        """The child's leaf cgroup v2 (spawned with ``cgroup=``), or None: every
        descendant is in it, and tree signals reach it there. Removed once the tree has
        ended (``aclose``, ``async with``, ``run_process``), or when the transport is
        closed with the leaf empty (asyncio's ``Process`` closes it itself once the child
        exited and its pipes closed); left, with its processes, if the process is dropped
        or its transport closed while the leaf is populated."""
        return getattr(self._fs_transport.get_extra_info("subprocess"), "cgroup", None)

    @property
    def _fs_args(self) -> Any:
        return getattr(self._fs_transport.get_extra_info("subprocess"), "args", None)

    # -- wait -----------------------------------------------------------------------------

    async def wait(self, timeout: Optional[float] = None) -> int:
        """As asyncio's, plus ``timeout`` (seconds): on expiry ``subprocess.TimeoutExpired``
        and the child keeps running, as with ``Popen.wait``."""
        if timeout is None:
            return await super().wait()
        try:
            async with asyncio.timeout(timeout) as scope:
                return await super().wait()
        except TimeoutError:
            if not scope.expired():
                raise
            raise subprocess.TimeoutExpired(self._fs_args, timeout) from None

    # -- communicate ----------------------------------------------------------------------

    async def communicate(self, input: Input = None, timeout: Optional[float] = None) -> tuple[bytes, bytes]:
        """As asyncio's, plus ``timeout`` (seconds): on expiry ``subprocess.TimeoutExpired``
        is raised with ``output``/``stderr`` holding everything read so far, and the child
        keeps running. A later call continues where a timed-out or cancelled one stopped
        and returns all the output; input is sent once, on the first call, so passing
        ``input`` again then raises ``ValueError``."""
        comm = self._fs_comm
        if comm is not None:
            if input:
                raise ValueError("Cannot send input after starting communication")
        elif timeout is None and FAST_STREAMS and (fd := one_stream(self, input)):
            return await self._communicate_one(fd)  # type: ignore[return-value]
        else:
            comm = self._fs_comm = Communication(self, input)
        output = await comm.run(timeout, self._fs_args)
        self._fs_comm = None
        return output  # type: ignore[return-value]

    async def _communicate_one(self, fd: int) -> Output:
        # The one stream straight from asyncio's own reader coroutine (fastspawn's reader
        # puts its data back if cancelled), then the wait, without asyncio's three tasks.
        output = await read_stream(self, fd)
        try:
            await self.wait()
        except BaseException:
            # Cancelled after the output was read: the next call returns it.
            self._fs_comm = Communication.finished(self, fd, output)
            raise
        return (output, None) if fd == 1 else (None, output)

    # -- the tree ---------------------------------------------------------------------------

    def _tree(self) -> ProcessTree:
        tree = self._fs_tree
        if tree is None:
            core = self._fs_core
            if core is not None:
                # The core's view: unreaped until the core reaped it (the transport learns
                # of the exit a callback later), or while it keeps the zombie.
                tree = ProcessTree(self.pid, lambda: core.unreaped, core.send_signal, core.kill_group, core.cgroup)
            else:
                tree = ProcessTree(self.pid, lambda: self.returncode is None, self._signal_quietly)
            self._fs_tree = tree
        return tree

    def _signal_quietly(self, sig: int) -> None:
        try:
            self.send_signal(sig)
        except ProcessLookupError:
            pass

    def send_signal_tree(self, sig: int) -> frozenset[int]:
        """Sends ``sig`` to the child and to every descendant fastspawn can reach; returns
        the pids signalled. Never signals a process that is not a descendant (pidfds), and
        never raises for processes already gone.

        Reached: the child (until it is reaped); its process group while the child leads
        one and is unreaped (``process_group=0``/``start_new_session=True``): every member,
        orphans included; and, where pidfds and /proc are available, every process whose
        parent chain leads to the child (``setsid`` does not hide it) or to a descendant
        pinned earlier. Not reached: a double-forked daemon outside the group (reparented
        to init). For SIGTERM and SIGKILL the tree is frozen (SIGSTOP) while it is walked,
        so a fork cannot escape, and SIGCONT follows SIGTERM. Descendants signalled stay
        pinned until they exit, so a later ``kill_tree()`` reaches them even after the child
        itself was reaped. With ``cgroup=``, every process in the child's leaf cgroup too
        (SIGKILL by ``cgroup.kill``): daemons, and anything left after the child was
        reaped."""
        return self._tree().signal(sig)

    def terminate_tree(self) -> frozenset[int]:
        """``send_signal_tree(signal.SIGTERM)``."""
        return self.send_signal_tree(signal.SIGTERM)

    def kill_tree(self) -> frozenset[int]:
        """``send_signal_tree(signal.SIGKILL)``."""
        return self.send_signal_tree(signal.SIGKILL)

    # -- ending -----------------------------------------------------------------------------

    async def aclose(self, grace: Optional[float] = None) -> Optional[int]:
        """Ends the child and every descendant fastspawn can reach: SIGTERM, up to
        ``grace`` seconds (default ``self.grace``) for all of them to exit, SIGKILL to
        whatever is left; then reaps the child and closes the pipes (unread output is
        discarded). ``grace=0`` sends SIGKILL at once. Returns the returncode.

        If the child already exited, only descendants pinned earlier (by a tree signal)
        are still reachable, and with ``cgroup=`` everything in the leaf cgroup, which is
        removed once empty. The work is shielded: cancelling the caller during the grace
        period sends SIGKILL at once, waits for the exit (bounded), then re-raises the
        cancellation; further cancellations meanwhile change nothing."""
        grace = self.grace if grace is None else grace
        ending = self._fs_ending
        if ending is None and not self._running() and not self._tree().reachable():
            # Exited, nothing pinned, no group kept, the leaf cgroup (if any) empty: only the
            # pipes to close, the zombie to reap and the leaf to remove (no task, nothing
            # to shield).
            self._close()
            return await self.wait()
        if ending is None or ending.done():
            # One ending at a time: a second aclose() joins the one under way.
            self._fs_hurry = asyncio.Event()
            ending = self._fs_ending = asyncio.ensure_future(self._end(grace, self._fs_hurry))
        try:
            return await asyncio.shield(ending)
        except asyncio.CancelledError:
            if ending.cancelled():
                raise
            self._fs_hurry.set()
            while not ending.done():
                try:
                    await asyncio.shield(ending)
                except asyncio.CancelledError:
                    pass
                except Exception:
                    break  # reported below, with the cancellation
            if not ending.cancelled():
                ending.exception()
            raise

    def ensure_ended(self, grace: Optional[float] = None) -> _Ended[Self]:
        """``async with proc.ensure_ended(grace=2.0):``: as ``async with proc:`` with another
        grace period; the block's target is the process."""
        return _Ended(self, grace)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.aclose()

    def _close(self) -> None:
        """Closes the transport, reaps a zombie kept for the child's group and removes
        the leaf cgroup if it is empty (one still populated is left). The transport may
        have closed itself before (the stream protocol closes it once the child exited
        and the pipes closed), while descendants ran on."""
        self._fs_transport.close()
        if self._fs_core is not None:
            self._fs_core.release()
            remove_empty_leaf(self._fs_core)

    def _running(self) -> bool:
        child = self._fs_transport.get_extra_info("subprocess")
        return getattr(child, "returncode", self.returncode) is None

    async def _end(self, grace: float, hurry: asyncio.Event) -> Optional[int]:
        tree = self._tree()
        try:
            if self._running() or tree.reachable():
                ended = False
                if grace > 0:
                    tree.signal(signal.SIGTERM)
                    if self.stdin is not None:
                        self.stdin.close()
                    ended = await self._ended(tree, grace, hurry)
                if not ended:
                    tree.signal(signal.SIGKILL)
                    await self._ended(tree, KILL_WAIT, None)
        finally:
            tree.close()
            # Closes the pipes (and would kill a child still running: one that outlived
            # KILL_WAIT is then reaped by the core in the background).
            self._close()
        if not self._running():
            await self.wait()
        return self.returncode

    async def _ended(self, tree: ProcessTree, timeout: float, hurry: Optional[asyncio.Event]) -> bool:
        """Waits up to ``timeout`` for the child and every pinned descendant to exit and the
        leaf cgroup to empty, or for ``hurry``; whether they all exited."""
        waits = [asyncio.ensure_future(self.wait()), asyncio.ensure_future(tree.wait_ended(None))]
        watch: list[asyncio.Future[Any]] = list(waits)
        if hurry is not None:
            watch.append(asyncio.ensure_future(hurry.wait()))
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while not all(w.done() for w in waits):
                if hurry is not None and hurry.is_set():
                    break
                left = deadline - loop.time()
                if left <= 0:
                    break
                await asyncio.wait(watch, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            return all(w.done() for w in waits)
        finally:
            for w in watch:
                w.cancel()
            await asyncio.wait(watch)


_P = TypeVar("_P", bound=LifecycleProcess)


class _Ended(Generic[_P]):
    """The async context manager of ``Process.ensure_ended``."""

    def __init__(self, proc: _P, grace: Optional[float]) -> None:
        self._proc = proc
        self._grace = grace

    async def __aenter__(self) -> _P:
        return self._proc

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self._proc.aclose(self._grace)
