"""Spawning where ``/proc`` is not mounted (containers and sandboxes hide it).

The scenario runs in a child with a private mount namespace whose ``/proc`` is an
empty tmpfs (``unshare -m``), so the rest of the machine keeps its ``/proc``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

SCRIPT = r"""
import asyncio, os, sys
import fastspawn

assert not os.path.exists("/proc/self/fd"), "/proc is still there"
# An inheritable descriptor below the one passed: close_fds must still close it.
low_r, low_w = os.pipe()
os.set_inheritable(low_w, True)
r, w = os.pipe()
assert w > low_w
script = f"echo passed >&{w}; {{ true >&{low_w}; }} 2>/dev/null && echo leaked || echo closed"

async def main(create, options):
    proc = await create("sh", "-c", script, pass_fds=(w,), stdout=asyncio.subprocess.PIPE, **options)
    out, _ = await proc.communicate()
    return proc.returncode, out, os.read(r, 100)

# posix_spawn, and the clone path (a umask).
for options in ({}, {"umask": 0o22}):
    for name, create in (("asyncio", asyncio.create_subprocess_exec), ("fastspawn", fastspawn.create_subprocess_exec)):
        try:
            print(name, asyncio.run(main(create, options)))
        except Exception as exc:
            print(name, type(exc).__name__, exc)
"""

EXPECTED = "asyncio (0, b'closed\\n', b'passed\\n')\nfastspawn (0, b'closed\\n', b'passed\\n')\n" * 2


def test_pass_fds_without_proc() -> None:
    """``pass_fds`` spawns as stock does; it used to raise FileNotFoundError (the core
    listed the open descriptors from /proc/self/fd)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("needs unshare(1)")
    # Root gets a mount namespace directly; others need a user namespace too (-r).
    flags = "-m" if os.geteuid() == 0 else "-rm"
    command = [unshare, flags, "sh", "-c", 'mount -t tmpfs none /proc && exec "$0" -c "$1"', sys.executable, SCRIPT]
    probe = subprocess.run([unshare, flags, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a mount namespace here: {probe.stderr.decode().strip()}")
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, EXPECTED), result.stderr[-3000:]
