"""``ChildProcess``: the ``subprocess.Popen``-shaped view of a core child.

asyncio exposes its ``Popen`` object as ``transport.get_extra_info('subprocess')`` and
code (the stdlib's own tests among it) calls ``poll()``, ``wait()``, ``kill()`` on it.
This object answers the same calls, backed by the core: ``poll``/``wait`` reap through
the core (never a second ``waitpid`` that could race it) and signals go through the
pidfd.
"""

from __future__ import annotations

import math
import signal
import subprocess
from typing import Any, Optional

from . import _core
from ._versions import CHANGES

__all__ = ["ChildProcess", "remove_empty_leaf"]

# Popen.wait(timeout=nan): before 3.15 its deadline arithmetic never expires, so it waits
# for the exit; 3.15 waits on a pidfd with poll(), which refuses NaN (ValueError, as the
# core does).
_NAN_TIMEOUT_WAITS = CHANGES["wait_nan_waits"].here


class ChildProcess:
    """The subset of ``subprocess.Popen`` that makes sense for an asyncio child."""

    # asyncio owns the pipes through its transports, so these stay None as in asyncio's
    # Popen after the transports took the pipes over.
    stdin: None = None
    stdout: None = None
    stderr: None = None

    def __init__(self, child: _core.Child, args: Any) -> None:
        #: The core's handle (fastspawn's tree signals use it; not part of Popen's API).
        self.core = child
        self._child = child
        self.args = args
        self.pid: int = child.pid

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: returncode: {self.returncode} args: {self.args!r}>"

    @property
    def returncode(self) -> Optional[int]:
        return self._child.returncode

    @property
    def cgroup(self) -> Optional[_core.CGroup]:
        """The leaf cgroup the child was spawned into (``cgroup=``), or None."""
        return self._child.cgroup

    def poll(self) -> Optional[int]:
        """The returncode if the child has exited (reaping it), else None."""
        try:
            return self._child.try_wait()
        except ChildProcessError:
            return 255

    def wait(self, timeout: Optional[float] = None) -> int:
        """Blocks until the child exits; ``subprocess.TimeoutExpired`` after ``timeout``."""
        if _NAN_TIMEOUT_WAITS and isinstance(timeout, float) and math.isnan(timeout):
            timeout = None
        try:
            code = self._child.wait(timeout)
        except ChildProcessError:
            return 255
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return code

    def send_signal(self, sig: int) -> None:
        # Popen.send_signal: nothing once the child is known to have exited.
        self._child.send_signal(sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def remove_empty_leaf(child: _core.Child) -> None:
    """Best effort: ``child``'s leaf cgroup (``cgroup=``) removed if it is empty; one with
    processes in it is left (tried again at the child's exit and when the process is
    closed)."""
    cgroup = child.cgroup
    if cgroup is not None and not cgroup.removed:
        try:
            cgroup.remove()
        except (OSError, RuntimeError):  # RuntimeError: in use by another thread
            pass
