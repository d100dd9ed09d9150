"""``run_process``: ``subprocess.run`` for asyncio, with the whole tree ended on a timeout,
a cancellation or an error, and a cap on the output kept."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any, Optional

from ._communicate import Communication, Input
from ._completed import DRAIN_AFTER_KILL, Command, CompletedProcess, dropped, prepare, timeout_expired
from ._defaults import DEFAULT_GRACE
from ._process import Process
from ._spawn import create_subprocess_exec, create_subprocess_shell

__all__ = ["CompletedProcess", "run_process"]


async def _end_collecting(proc: Process, comm: Communication, grace: float) -> None:
    """After a timeout: SIGTERM to the tree, reading on for ``grace`` seconds; SIGKILL to
    what is left, reading on a little longer; the output stays in ``comm``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    if grace > 0:
        proc.terminate_tree()
        try:
            await comm.run(grace, None)
        except subprocess.TimeoutExpired:
            pass
        else:
            # The child exited and the pipes closed; descendants pinned, or in the leaf
            # cgroup, may still run.
            if await proc._tree().wait_ended(max(deadline - loop.time(), 0.0)):
                return
    proc.kill_tree()
    try:
        await comm.run(DRAIN_AFTER_KILL, None)
    except subprocess.TimeoutExpired:
        pass


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
    """Runs ``cmd`` to the end: ``subprocess.run`` for asyncio (anyio's ``run_process``).

    ``cmd`` is a sequence (``create_subprocess_exec``) or a string (``_shell``).
    ``input`` is fed to stdin. With ``capture_output`` (the default) stdout and stderr are
    collected; otherwise they follow ``spawn_options`` (inherited by default).
    ``max_output`` caps the bytes kept per stream: the first ``max_output`` are kept (the
    last ones with ``keep_output="tail"``, where a failing tool's error message usually
    is), the rest counted in ``dropped_stdout``/``dropped_stderr`` (on the result and on
    the exceptions raised), and the pipes are read to the end regardless, so the child
    never blocks on a full pipe. After ``timeout`` seconds the child and every descendant
    fastspawn can reach are ended (SIGTERM, ``grace`` seconds, SIGKILL) and
    ``subprocess.TimeoutExpired`` is raised with the output written until then. With
    ``check``, a non-zero exit raises ``subprocess.CalledProcessError``. Cancellation, or
    any error, ends the tree the same way before it propagates (``Process.aclose``).
    ``spawn_options`` go to ``create_subprocess_*`` (``cwd``, ``env``, ``limit``,
    ``process_group=0``, ...)."""
    tail = prepare(spawn_options, input, capture_output, max_output, keep_output)
    if isinstance(cmd, (str, bytes)):
        proc = await create_subprocess_shell(cmd, **spawn_options)
    else:
        proc = await create_subprocess_exec(*cmd, **spawn_options)
    async with proc.ensure_ended(grace):
        comm = Communication(proc, input, max_output, tail)
        try:
            stdout, stderr = await comm.run(timeout, cmd)
        except subprocess.TimeoutExpired:
            await _end_collecting(proc, comm, grace)
            raise timeout_expired(cmd, timeout, comm) from None
    returncode = proc.returncode
    assert returncode is not None
    result = CompletedProcess(cmd, returncode, stdout, stderr, *dropped(comm))
    if check:
        result.check_returncode()
    return result
