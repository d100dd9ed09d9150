"""fastspawn's Rust core (``rust/py/``): spawning, exit watching, signals and
non-blocking pipes. Plain values cross this boundary; OS errors arrive as
``OSError(errno, strerror[, filename])`` so the subclass and ``errno`` are right."""

import sys
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Optional, SupportsIndex, final

from fastspawn._options import NativeSpawn

__all__ = [
    "BytesBuilder",
    "CGroup",
    "Child",
    "LineIter",
    "ReadPipe",
    "StreamBuffer",
    "WritePipe",
    "__version__",
    "features",
    "spawn",
    "watch",
]
if sys.version_info < (3, 12):
    __all__ += ["Ready"]

__version__: str

@final
class Child:
    """A child process. Dropped unreaped, it is reaped by the core's reaper thread.

    Where pidfds work, the pidfd is its identity: the exit status is read and signals
    are sent through it. A child whose status something else collected (SIGCHLD
    ignored, a ``waitpid(-1)`` elsewhere) is *lost*: it ran, but its status is gone."""

    @property
    def pid(self) -> int: ...
    @property
    def cgroup(self) -> Optional[CGroup]:
        """The leaf cgroup the child was spawned into (``cgroup=``), or None."""
    @property
    def returncode(self) -> Optional[int]:
        """The exit code, ``-signal`` if a signal ended it, or None while it runs (and
        for a lost child). Set for a held zombie too."""
    @property
    def exit_fd(self) -> Optional[int]:
        """The descriptor that becomes readable when the child exits (a pidfd, the
        fallback reaper's pipe, or for a child lost at spawn one that is readable at
        once); None after :meth:`close_exit_fd`."""
    def try_wait(self) -> Optional[int]:
        """Reaps the child if it exited and returns the returncode; None if it runs.

        Raises ChildProcessError (every time) if its status was collected by something
        else: asyncio then reports returncode 255."""
    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        """Blocks (without the GIL) until exit or ``timeout`` seconds; like try_wait.

        A timeout of 0 or less polls once; one too large for a deadline (inf, 1e300)
        means none; NaN raises ValueError."""
    def send_signal(self, signal: int) -> bool:
        """Sends ``signal`` through the pidfd; False (and nothing sent) if the child is
        already gone or lost. Never reaches a process that recycled the pid."""
    def hold(self) -> bool:
        """If the child leads its own process group, keeps its zombie once it exits (its
        returncode is read all the same) until :meth:`release` or the handle is dropped,
        so the group id stays its own. Only with a pidfd; whether the exit will be held."""
    def release(self) -> None:
        """Reaps a held zombie; nothing otherwise."""
    @property
    def unreaped(self) -> bool:
        """Whether the pid is still the child's: running, or an unreaped or held zombie."""
    def kill_group(self, signal: int) -> bool:
        """``killpg(pid, signal)`` if the child leads its process group and is unreaped
        (or held); whether it was sent. Checked and sent under the fallback reaper's
        lock where there is no pidfd."""
    def close_exit_fd(self) -> None:
        """Gives up :attr:`exit_fd`; call after the loop stopped watching it. The
        descriptor is closed once the child is reaped (a pidfd stays its identity
        until then)."""

@final
class CGroup:
    """A child's leaf cgroup v2 (``fastspawn-<pid>-<n>`` in the ``cgroup=`` directory),
    which the child joined before exec: every descendant is in it, double-forked
    daemons and descendants of a child already reaped included, unless one moved
    itself elsewhere. The core holds the leaf's directory by descriptor; dropped, the
    leaf is removed if it is empty, and left (with its processes) otherwise."""

    @property
    def path(self) -> str:
        """The leaf's path (the ``cgroup=`` directory joined with the leaf's name)."""
    @property
    def removed(self) -> bool:
        """Whether :meth:`remove` removed it (its descriptors are then closed)."""
    def pids(self) -> list[int]:
        """The processes in it now, from ``cgroup.procs`` (none once removed)."""
    def populated(self) -> bool:
        """``populated`` of ``cgroup.events``: whether any process is in it (exited
        processes, zombies included, are not); False once removed."""
    def kill(self) -> list[int]:
        """SIGKILL to every process in it, by ``cgroup.kill`` (Linux 5.14+; the kernel
        reaches forks in progress too), or where that is missing as :meth:`signal` does;
        returns the pids listed just before. Releases the GIL."""
    def signal(self, signal: int, skip: list[int] = ...) -> list[int]:
        """``signal`` to every process in it but the pids in ``skip``: the leaf is frozen
        (``cgroup.freeze``, up to 0.5 s for ``frozen 1``), each process listed is pinned
        with a pidfd and signalled, then the leaf is thawed, and after SIGTERM each gets
        SIGCONT. Returns the pids signalled. Releases the GIL."""
    def remove(self) -> bool:
        """``rmdir`` of the leaf if it is empty; whether it is gone (False while a
        process is in it)."""

@final
class ReadPipe:
    """The parent's non-blocking end of a child's stdout or stderr."""

    def __new__(cls, fd: int) -> ReadPipe:
        """Takes ownership of ``fd`` (the caller must not close it) and makes it
        non-blocking."""
    def fileno(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def read(self, max: int) -> Optional[bytes]:
        """At most ``max`` bytes; ``b""`` at EOF; None when nothing is there yet."""
    def read_at_most(self, max: int) -> Optional[bytes]:
        """Like ``read``, read straight into a new bytes object of ``max`` bytes (copied
        to the size read only when fewer arrived; no ``FIONREAD``); ``max`` must be
        positive."""
    def close(self) -> None: ...

@final
class WritePipe:
    """The parent's non-blocking end of a child's stdin, with its own write buffer."""

    def __new__(cls, fd: int) -> WritePipe:
        """Takes ownership of ``fd`` (the caller must not close it) and makes it
        non-blocking."""
    def fileno(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    @property
    def buffered(self) -> int:
        """Bytes accepted but not yet written into the pipe."""
    def write(self, data: bytes) -> int:
        """Writes what the pipe takes now and buffers the rest; returns the bytes
        buffered. Raises BrokenPipeError once the reader is gone."""
    def flush(self) -> int:
        """Writes buffered bytes the pipe takes now; returns the bytes still buffered."""
    def discard(self) -> None:
        """Drops the buffer unwritten."""
    def close(self) -> None: ...

@final
class StreamBuffer:
    """The buffer of ``fastspawn.StreamReader``: a byte queue answering the ``bytearray``
    operations asyncio's StreamReader methods use, plus fast paths. It exports a
    read-only buffer (``memoryview``); while one is exported, operations that would move
    or shrink the bytes raise ``BufferError``, as ``bytearray``'s do."""

    blocked: bool
    """Set by the reader once it has an exception: ``LineIter`` then takes no line
    itself and every line goes through ``slow()``."""
    paused: bool
    """Whether the reader has paused its transport (``LineIter`` calls ``resume()``
    once the bytes left are within the limit)."""

    def __new__(cls) -> StreamBuffer: ...
    def __len__(self) -> int: ...
    def __bytes__(self) -> bytes: ...
    if sys.version_info >= (3, 12):
        def __buffer__(self, flags: int, /) -> memoryview: ...
        def __release_buffer__(self, buffer: memoryview, /) -> None: ...
    def __eq__(self, other: object, /) -> bool: ...
    def extend(self, data: Any) -> None:
        """As ``bytearray.extend``: a bytes-like object or an iterable of ints."""
    def clear(self) -> None: ...
    def find(self, sub: Any, start: int = 0) -> int:
        """As ``bytearray.find``: position of ``sub`` (bytes-like or int) or -1."""
    def startswith(self, prefix: Any, start: int = 0) -> bool: ...
    def __getitem__(self, key: SupportsIndex | slice, /) -> Any:
        """A slice as ``bytes``, or one byte as ``int``."""
    def __delitem__(self, key: slice, /) -> None:
        """Deletes from the front (``del buf[:n]``); other slices raise ValueError."""
    def take(self, n: int) -> bytes:
        """Removes and returns the first ``n`` bytes (fewer if fewer are buffered)."""
    def take_bytes(self, n: Optional[SupportsIndex] = None, /) -> bytes:
        """As 3.15's ``bytearray.take_bytes``: removes and returns the first ``n`` bytes
        (all for None; a negative ``n`` counts from the end); IndexError outside the
        size, BufferError while a buffer is exported."""
    def read_from(self, pipe: ReadPipe, max: int) -> Optional[int]:
        """Reads from ``pipe`` straight into the buffer: the count read, 0 at EOF, None
        when nothing was there."""
    def next_line(self, limit: int) -> Optional[Awaitable[bytes]]:
        """Takes a buffered line of at most ``limit + 1`` bytes, as an already-finished
        awaitable (a ``Ready`` before 3.12, a native coroutine from 3.12); None if there
        is none."""
    def take_lines(self, limit: int, max_bytes: int) -> list[bytes]:
        """Takes every whole buffered line (at least one, then up to about
        ``max_bytes``), stopping before one longer than ``limit + 1`` bytes."""

@final
class LineIter:
    """``async for`` over a fastspawn StreamReader: unless ``buffer.blocked``, a buffered
    line of at most ``limit + 1`` bytes is taken and returned without entering Python
    code (calling ``resume()`` first if ``buffer.paused`` and at most ``limit`` bytes
    are left); otherwise ``slow()`` runs (the reader's ``readline``, raising
    ``StopAsyncIteration`` at EOF)."""

    def __new__(
        cls,
        buffer: StreamBuffer,
        limit: int,
        slow: Callable[[], Awaitable[bytes]],
        resume: Callable[[], object],
    ) -> LineIter: ...
    def __aiter__(self) -> LineIter: ...
    def __anext__(self) -> Any: ...

if sys.version_info < (3, 12):
    @final
    class Ready:
        """An awaitable whose result is already known: ``await`` returns it at once
        (what ``next_line`` returns on 3.11, the only version that has it)."""

        def __await__(self) -> Generator[Any, None, Any]: ...
        def __iter__(self) -> Ready: ...
        def __next__(self) -> None: ...

@final
class BytesBuilder:
    """Collects one ``bytes`` object of unknown size (about N bytes of memory for N bytes
    collected, not the 2N of a join). Past 64 KiB the bytes grow in an anonymous mapping
    aligned as CPython's allocator aligns a large ``bytes`` object's data, and ``finish``
    moves its whole pages onto the result (``mremap``) instead of copying them; where it
    cannot (another allocator, another alignment), it copies a step at a time, releasing
    what it has copied."""

    def __new__(cls) -> BytesBuilder: ...
    def __len__(self) -> int: ...
    def extend(self, data: bytes) -> None: ...
    def read_from(self, pipe: ReadPipe, max: int) -> Optional[int]:
        """Reads from ``pipe`` straight into the bytes being built: the count read, 0 at
        EOF, None when nothing was there."""
    def extend_from(self, buffer: StreamBuffer) -> None:
        """Moves everything out of ``buffer`` into this builder."""
    def finish(self) -> bytes:
        """The bytes collected; the builder is left empty."""

def spawn(
    request: NativeSpawn,
) -> Optional[tuple[Child, Optional[WritePipe], Optional[ReadPipe], Optional[ReadPipe]]]:
    """Starts the child ``request`` describes, never copying this process's address space;
    None, before anything is created, when it cannot be started natively here (this libc
    lacks the posix_spawn extension ``cwd`` or ``close_fds`` needs, and nothing sends it
    to the clone path): the caller then spawns another way.

    ``request`` is read by attribute name (any object with ``NativeSpawn``'s fields,
    documented there); a missing field or one of the wrong type raises TypeError.
    ``program`` is a path or a bare name looked up in ``exec_path`` (the C environment
    is never read: no ``getenv`` races an ``os.environ`` change in another thread). The
    child starts with posix_spawn, or with ``clone(CLONE_VM|CLONE_VFORK)`` and steps of
    the core's own when ``umask``, ``groups``, ``gid``, ``uid``, ``process_group``,
    ``rlimits``, ``pdeathsig``, ``subreaper`` or ``cgroup`` is set (with ``cgroup`` a fresh
    leaf is made in that directory first, the child joins it before anything else, and
    it is ``Child.cgroup``; on any failure it is removed again). A child with ``pdeathsig`` is
    started by one core thread that lives as long as the process (the kernel sends the
    signal when the creating *thread* ends), the caller waiting for it.

    Errors are ``OSError`` subclasses named after ``program_name`` (exec failures) or
    ``cwd_name`` (cwd failures), as ``subprocess`` names them; ValueError for an
    embedded NUL byte; a failed ``rlimits``/``pdeathsig``/``subreaper`` step raises what
    the same call raises in Python (``resource.setrlimit``'s ValueError for EINVAL and
    EPERM, else OSError) with a note naming the step; a ``cgroup`` that cannot be used
    raises the failing call's OSError named after ``cgroup_name`` (``ENOTSUP`` for a
    directory not on a cgroup v2 filesystem), from the parent before the spawn, or from
    the child's joining step with a note; nothing is leaked on any error."""

def watch(pid: int) -> Child:
    """Watches ``pid``, an unreaped child this process started some other way.

    A pid that is not (or no longer) an unreaped child of ours gives a lost child, never
    signalled; ``pid <= 0`` raises OSError(EINVAL)."""

def features() -> tuple[bool, bool, bool]:
    """``(cwd, close_fds, pidfd)``: whether this system lets the core honour ``cwd``
    and ``close_fds`` natively, and whether exits are watched through pidfds."""
