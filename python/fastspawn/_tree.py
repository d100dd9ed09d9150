"""A child and its descendants: finding them and signalling them without ever reaching a
process that is not one (no Rust needed; see README "Beyond asyncio" for the guarantees).

Three mechanisms, used together by :class:`ProcessTree`:

* **The child**, through the core's pidfd (``ChildProcess.send_signal``): never a recycled
  pid.
* **Its process group**, with ``os.killpg``, when the child leads one (``process_group=0``
  or ``start_new_session=True``): every process still in the group, orphans reparented
  to init included, but not those that moved to a new session or group (``setsid``).
  Only while the child is unreaped: until then its pid, hence the group id, cannot be
  reused (POSIX), and fastspawn reaps only on the event loop's thread, in
  ``SubprocessTransport``'s exit callback, so a check and a ``killpg`` in the same
  synchronous call cannot be separated by the reaping. (Without pidfds, the core's
  fallback reaper thread reaps, and a few instructions separate the check from the
  ``killpg``; closing that window needs the check and the ``killpg`` under the reaper's
  lock, in Rust.)
* **A walk over /proc**: every process whose parent chain leads to the child (or to a
  process already pinned, or that is in the child's group while that group is valid)
  is pinned with ``os.pidfd_open``; the pin is kept only if, read again *after* pinning,
  the process still has the start time and the parent seen in the scan and both it and
  that parent are still unreaped (their pidfds still signal): a pid reused between the
  scan and the pin fails the check. Signals then go through ``signal.pidfd_send_signal``.
  It reaches descendants that called ``setsid``; it cannot reach a double-forked daemon,
  which is reparented to init (or to the nearest subreaper) as soon as its parent exits.

With ``cgroup=``, a fourth: **the child's leaf cgroup** (``_core.CGroup``), which every
descendant joined at its fork, however it daemonised, and stays in after the child was
reaped. After the three above, SIGKILL goes to it with ``cgroup.kill`` and any other signal
to each member not reached yet, the leaf frozen meanwhile; waiting for the tree to end
(``wait_ended``) waits for the leaf to be empty too.

Pins are kept (one descriptor each) until the process exits, so a ``kill_tree()`` after a
``terminate_tree()`` still reaches a grandchild that ignored SIGTERM after the child itself
exited and was reaped.

For SIGTERM and SIGKILL the tree is frozen first (SIGSTOP to the child, the group and every
process pinned, each pinned process confirmed stopped, then the tree scanned again) so a
fork during the walk cannot escape; SIGCONT follows SIGTERM, as systemd does, so a stopped
process can act on it. Other signals are sent to what the walk finds, then to what a
second walk finds.
"""

from __future__ import annotations

import asyncio
import errno
import os
import select
import signal
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Callable, NamedTuple, Optional

if TYPE_CHECKING:
    from ._core import CGroup

__all__ = ["ProcessTree", "pidfds_usable"]

# Where procfs is mounted (tests point it elsewhere to see what happens without it).
PROC = "/proc"
# Scans of /proc per signal at most: a tree that keeps forking faster than it can be
# frozen is signalled as far as it was found.
MAX_ROUNDS = 32
# How long to wait for SIGSTOP to take effect on every pinned process (a process in
# uninterruptible sleep stops only when it leaves it).
STOP_TIMEOUT = 0.2
# Signals that end the tree: frozen first.
FREEZE_FOR = frozenset({signal.SIGTERM, signal.SIGKILL})
# Waiting for a leaf cgroup to empty: cgroup.events polled from this interval, doubling up
# to the next (asyncio has no POLLPRI readiness to wait on).
EMPTY_POLL_FIRST = 0.001
EMPTY_POLL_MAX = 0.05

_pidfd_state: Optional[bool] = None


def pidfds_usable() -> bool:
    """Whether ``os.pidfd_open`` works here (Linux >= 5.3, not refused by seccomp);
    decided once."""
    global _pidfd_state
    if _pidfd_state is None:
        try:
            fd = os.pidfd_open(os.getpid())
        except (AttributeError, OSError):
            _pidfd_state = False
        else:
            os.close(fd)
            _pidfd_state = hasattr(signal, "pidfd_send_signal")
    return _pidfd_state


class Stat(NamedTuple):
    """The fields of ``/proc/<pid>/stat`` the walk uses."""

    state: str
    ppid: int
    pgrp: int
    starttime: int


def read_stat(pid: int) -> Optional[Stat]:
    """``/proc/<pid>/stat`` of ``pid``, or None if it is gone (or /proc is missing)."""
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name, in parentheses, may itself contain spaces and parentheses.
    fields = data[data.rindex(b")") + 2 :].split()
    return Stat(fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[19]))


def scan() -> dict[int, Stat]:
    """Every process in /proc (empty without /proc)."""
    found: dict[int, Stat] = {}
    try:
        entries = os.listdir(PROC)
    except OSError:
        return found
    for entry in entries:
        if entry.isdigit():
            stat = read_stat(int(entry))
            if stat is not None:
                found[int(entry)] = stat
    return found


def _send(pidfd: int, sig: int) -> bool:
    """``sig`` through ``pidfd``: False if the process was reaped (nothing sent)."""
    try:
        signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        # Another user's process (a setuid descendant): it exists, but is not ours to signal.
        return True
    return True


def _exited(pidfd: int) -> bool:
    """Whether the process of ``pidfd`` has exited (a pidfd polls readable on exit)."""
    readable, _, _ = select.select([pidfd], [], [], 0)
    return bool(readable)


class _Pin(NamedTuple):
    fd: int
    starttime: int


class ProcessTree:
    """The descendants of one child that were found, and how to reach them all.

    ``pid`` is the child's; ``unreaped()`` says whether the core has not reaped it yet (its
    pid is then still its own: running, or a zombie not reaped or kept); ``signal_child(sig)``
    signals it through the core's pidfd (a no-op once it exited); ``signal_group(sig)``
    ``killpg``s the group the child leads while its pid is its own, and says whether it
    did (by default checked here; the core checks it under its reaper's lock); ``cgroup``,
    the child's leaf cgroup, if it has one."""

    def __init__(
        self,
        pid: int,
        unreaped: Callable[[], bool],
        signal_child: Callable[[int], object],
        signal_group: Optional[Callable[[int], bool]] = None,
        cgroup: Optional[CGroup] = None,
    ) -> None:
        self.pid = pid
        self._unreaped = unreaped
        self._signal_child = signal_child
        self._signal_group = signal_group or self._killpg
        self.cgroup = cgroup
        self._pins: dict[int, _Pin] = {}

    def __repr__(self) -> str:
        return f"<ProcessTree pid={self.pid} pinned={sorted(self._pins)}>"

    @property
    def pinned(self) -> frozenset[int]:
        """The descendants pinned so far that have not exited."""
        self._prune()
        return frozenset(self._pins)

    def populated(self) -> bool:
        """Whether the child's leaf cgroup has a process in it (False without one)."""
        cgroup = self.cgroup
        if cgroup is None or cgroup.removed:
            return False
        try:
            return cgroup.populated()
        except FileNotFoundError:
            return False  # removed behind our back: nothing of ours is in it

    def close(self) -> None:
        """Lets go of every pin (closes the pidfds)."""
        pins, self._pins = self._pins, {}
        for pin in pins.values():
            os.close(pin.fd)

    def _prune(self) -> None:
        for pid, pin in list(self._pins.items()):
            if _exited(pin.fd):
                del self._pins[pid]
                os.close(pin.fd)

    def _killpg(self, sig: int) -> bool:
        pgid = self._group()
        if pgid is None:
            return False
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return False
        return True

    def reachable(self) -> bool:
        """Whether anything besides a running child can still be signalled: a pinned
        descendant, the group the child leads while its pid is its own (a zombie kept for
        it, see ``Child.hold``), or a process in the leaf cgroup."""
        return bool(self.pinned) or self._group() is not None or self.populated()

    def _group(self) -> Optional[int]:
        """The child's process group id while the child leads one and is unreaped."""
        if not self._unreaped():
            return None
        try:
            pgid = os.getpgid(self.pid)
        except OSError:
            return None
        return pgid if pgid == self.pid else None

    # -- finding ----------------------------------------------------------------------

    def _parent_valid(self, stat: Stat, pgid: Optional[int]) -> bool:
        """Whether ``stat`` (read after pinning) shows a process of the tree: its parent is
        the unreaped child or a pinned process still unreaped, or it is in the child's
        group while the child is unreaped."""
        if stat.ppid == self.pid or (pgid is not None and stat.pgrp == pgid):
            return self._unreaped()
        parent = self._pins.get(stat.ppid)
        # Still signalable means not reaped, so its pid is not reused: it is the parent.
        return parent is not None and _send(parent.fd, 0)

    def _pin(self, pid: int, seen: Stat, pgid: Optional[int]) -> bool:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return False
        now = read_stat(pid)
        # The pid could have been reused between the scan and pidfd_open: the process
        # pinned must have the start time seen, still be in the tree, and still be
        # unreaped after that read (so the read was of the process pinned).
        if now is None or now.starttime != seen.starttime or not self._parent_valid(now, pgid) or not _send(fd, 0):
            os.close(fd)
            return False
        self._pins[pid] = _Pin(fd, now.starttime)
        return True

    def _pin_new(self, pgid: Optional[int], stop: bool) -> list[int]:
        """One scan: pins every process of the tree not pinned yet (SIGSTOP to each if
        ``stop``); returns their pids."""
        roots = [self.pid, *self._pins] if self._unreaped() else list(self._pins)
        if not roots:
            return []  # the child was reaped and nothing is pinned: nothing to walk from
        snapshot = scan()
        children: dict[int, list[int]] = {}
        for pid, stat in snapshot.items():
            children.setdefault(stat.ppid, []).append(pid)
        todo = [child for root in roots for child in children.get(root, ())]
        if pgid is not None:
            todo += [pid for pid, stat in snapshot.items() if stat.pgrp == pgid]
        new: list[int] = []
        while todo:
            pid = todo.pop()
            if pid == self.pid or pid in self._pins or pid == os.getpid():
                continue
            if not self._pin(pid, snapshot[pid], pgid):
                continue
            new.append(pid)
            if stop:
                _send(self._pins[pid].fd, signal.SIGSTOP)
            todo += children.get(pid, ())
        return new

    def _wait_stopped(self) -> None:
        """Until every process pinned (and the child) is stopped or gone, or STOP_TIMEOUT."""
        deadline = time.monotonic() + STOP_TIMEOUT
        pending = set(self._pins)
        if self._unreaped():
            pending.add(self.pid)
        while pending:
            for pid in list(pending):
                stat = read_stat(pid)
                if stat is None or stat.state in "TtZXx":
                    pending.discard(pid)
            if not pending or time.monotonic() > deadline:
                return
            time.sleep(0.0002)

    def _discover(self, pgid: Optional[int], stop: bool) -> None:
        """Pins the tree, scanning /proc until a scan finds nothing new; with ``stop``,
        that last scan is made once everything pinned is stopped, so a fork that completed
        before a SIGSTOP took effect is found too."""
        if not pidfds_usable():
            return
        for round in range(MAX_ROUNDS):
            try:
                new = self._pin_new(pgid, stop)
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    return  # out of descriptors: signal what was pinned
                raise
            if stop:
                self._wait_stopped()
            if not new and (round > 0 or not stop):
                return

    # -- signalling ---------------------------------------------------------------------

    def _each(self, sig: int, pgid: Optional[int]) -> Iterator[int]:
        """Sends ``sig`` once to the child, its group (while valid) and every pin; yields
        the pids it reached."""
        grouped = False
        if self._unreaped():
            # The child leads the group: killpg reaches it and every member at once.
            grouped = pgid is not None and self._signal_group(sig)
            if not grouped:
                self._signal_child(sig)
            yield self.pid
        for pid, pin in list(self._pins.items()):
            if grouped:
                stat = read_stat(pid)
                if stat is not None and stat.pgrp == pgid:
                    yield pid  # reached by killpg
                    continue
            if _send(pin.fd, sig):
                yield pid

    def signal(self, sig: int) -> frozenset[int]:
        """Sends ``sig`` to the child and every descendant it can reach; returns the pids
        signalled (group members reached only by ``killpg`` are among them when /proc
        showed them). With a leaf cgroup, then to every process in it not reached yet
        (SIGKILL: to all, by ``cgroup.kill``)."""
        reached = self._signal_walked(sig)
        cgroup = self.cgroup
        if cgroup is None or cgroup.removed:
            return reached
        try:
            if sig == signal.SIGKILL:
                more = cgroup.kill()
            else:
                # Not to those reached above: a second SIGTERM can mean "hurry" to a program.
                more = cgroup.signal(sig, sorted(reached))
        except FileNotFoundError:
            return reached  # removed behind our back
        return reached | frozenset(more)

    def _signal_walked(self, sig: int) -> frozenset[int]:
        """``signal`` through the child's pidfd, its group and the walk over /proc."""
        self._prune()
        if sig in FREEZE_FOR and pidfds_usable():
            return self._signal_frozen(sig)
        pgid = self._group()
        self._discover(pgid, stop=False)
        reached = set(self._each(sig, pgid))
        # Children forked since: one more walk, and the signal to what it found.
        before = set(self._pins)
        self._discover(self._group(), stop=False)
        for pid in set(self._pins) - before:
            if _send(self._pins[pid].fd, sig):
                reached.add(pid)
        return frozenset(reached)

    def _signal_frozen(self, sig: int) -> frozenset[int]:
        pgid = self._group()
        delivered = False
        try:
            for _ in self._each(signal.SIGSTOP, pgid):
                pass
            self._discover(pgid, stop=True)
            reached = frozenset(self._each(sig, pgid))
            delivered = True
        finally:
            if sig != signal.SIGKILL or not delivered:
                # Never leave a process stopped; after SIGTERM, SIGCONT lets it act on it.
                for _ in self._each(signal.SIGCONT, self._group()):
                    pass
        return reached

    # -- waiting ------------------------------------------------------------------------

    async def wait_ended(self, timeout: Optional[float]) -> bool:
        """Waits until every pinned descendant has exited and the leaf cgroup (if any) is
        empty, at most ``timeout`` seconds; whether they did. The leaf is polled (a few
        milliseconds apart) on the loop, never blocking it."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        if not await self.wait_pinned(timeout):
            return False
        delay = EMPTY_POLL_FIRST
        while self.populated():
            if deadline is None:
                await asyncio.sleep(delay)
            elif (left := deadline - loop.time()) <= 0:
                return False
            else:
                await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, EMPTY_POLL_MAX)
        return True

    async def wait_pinned(self, timeout: Optional[float]) -> bool:
        """Waits until every pinned descendant has exited, at most ``timeout`` seconds;
        whether they all did."""
        self._prune()
        if not self._pins:
            return True
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        left = {pin.fd for pin in self._pins.values()}
        watching: set[int] = set()

        def exited(fd: int) -> None:
            loop.remove_reader(fd)
            watching.discard(fd)
            left.discard(fd)
            if not left and not done.done():
                done.set_result(None)

        try:
            for fd in list(left):
                loop.add_reader(fd, exited, fd)
                watching.add(fd)
            await asyncio.wait([done], timeout=timeout)
        finally:
            for fd in watching:
                loop.remove_reader(fd)
        self._prune()
        return not self._pins
