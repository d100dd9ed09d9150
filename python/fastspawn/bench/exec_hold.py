"""A deliberately slow exec, for the loop-stall workload: what a security scanner that vets every
exec (fanotify's ``FAN_OPEN_EXEC_PERM``, as endpoint-security agents use) or a cold network
filesystem does to a spawn.

:func:`held_exec` copies ``/bin/true`` to a private path and starts a watcher process that holds
every exec of that copy for ``hold`` seconds before allowing it. With ``vfork``/``posix_spawn`` (and
with ``fork`` + an exec-status pipe, as libuv does) the spawning thread is suspended until the child
has exec'd, so a spawn from the event loop's thread freezes the whole loop for that long.

The watcher is a separate process, so it holds no lock of the measured one (a thread of it would
need the GIL, which the spawning thread may hold). It needs ``CAP_SYS_ADMIN`` and a kernel with
fanotify permission events; without them :func:`held_exec` raises :class:`~.loops.CheckError` with
the reason.

    python -m fastspawn.bench.exec_hold PATH SECONDS   # the watcher itself
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from .loops import TRUE, CheckError

__all__ = ["held_exec"]

_FAN_CLOEXEC = 0x1
_FAN_CLASS_CONTENT = 0x4
_FAN_MARK_ADD = 0x1
_FAN_OPEN_EXEC_PERM = 0x40000
_FAN_ALLOW = 0x1
_AT_FDCWD = -100
# struct fanotify_event_metadata: event_len, vers, reserved, metadata_len, mask, fd, pid.
_EVENT = struct.Struct("IBBHQii")
# struct fanotify_response: fd, response.
_RESPONSE = struct.Struct("iI")


def _watch(path: str, hold: float) -> None:
    """Holds every exec of ``path`` for ``hold`` seconds, until killed."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]
    fan = libc.fanotify_init(_FAN_CLASS_CONTENT | _FAN_CLOEXEC, os.O_RDONLY)
    if fan < 0:
        sys.exit(f"fanotify_init: {os.strerror(ctypes.get_errno())}")
    if libc.fanotify_mark(fan, _FAN_MARK_ADD, _FAN_OPEN_EXEC_PERM, _AT_FDCWD, os.fsencode(path)) < 0:
        sys.exit(f"fanotify_mark: {os.strerror(ctypes.get_errno())}")
    print("ready", flush=True)
    while True:
        events = os.read(fan, 4096)
        offset = 0
        while offset < len(events):
            length, _, _, _, _, fd, _ = _EVENT.unpack_from(events, offset)
            time.sleep(hold)
            os.write(fan, _RESPONSE.pack(fd, _FAN_ALLOW))
            os.close(fd)
            offset += length


@contextlib.contextmanager
def held_exec(hold: float) -> Iterator[str]:
    """A path to a copy of ``/bin/true`` whose every exec takes ``hold`` seconds longer."""
    with tempfile.TemporaryDirectory(prefix="fastspawn-bench-") as folder:
        path = os.path.join(folder, "held-true")
        shutil.copy2(TRUE, path)
        watcher = subprocess.Popen(
            [sys.executable, "-m", __name__, path, repr(hold)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert watcher.stdout is not None and watcher.stderr is not None
            if watcher.stdout.readline().strip() != "ready":
                raise CheckError(f"cannot hold execs here: {watcher.stderr.read().strip() or 'watcher failed'}")
            yield path
        finally:
            watcher.kill()
            watcher.wait()
            for stream in (watcher.stdout, watcher.stderr):
                if stream is not None:
                    stream.close()


if __name__ == "__main__":
    _watch(sys.argv[1], float(sys.argv[2]))
