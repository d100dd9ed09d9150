"""``run_process``: ``subprocess.run`` for asyncio, with the whole tree ended on a timeout,
a cancellation or an error, and a cap on the output kept."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Sequence
from typing import Any, Optional, Union

from ._communicate import Communication, Input
from ._lifecycle import DEFAULT_GRACE
from ._process import Process
from ._spawn import create_subprocess_exec, create_subprocess_shell

__all__ = ["CompletedProcess", "run_process"]

# After SIGKILL on a timeout, how long the pipes are read on for what the tree wrote
# before it died: EOF comes at once unless a process fastspawn could not reach (a
# double-forked daemon) holds a pipe open.
DRAIN_AFTER_KILL = 0.5

Command = Union[str, bytes, Sequence[Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]]]


class CompletedProcess(subprocess.CompletedProcess[bytes]):
    """``subprocess.CompletedProcess``, plus how many bytes of each stream ``max_output``
    kept out: ``dropped_stdout``, ``dropped_stderr`` (0 without a cap)."""

    def __init__(
        self,
        args: Any,
        returncode: int,
        stdout: Optional[bytes] = None,
        stderr: Optional[bytes] = None,
        dropped_stdout: int = 0,
        dropped_stderr: int = 0,
    ) -> None:
        super().__init__(args, returncode, stdout, stderr)
        self.dropped_stdout = dropped_stdout
        self.dropped_stderr = dropped_stderr

    def __repr__(self) -> str:
        text = super().__repr__()
        if self.dropped_stdout or self.dropped_stderr:
            text = f"{text[:-1]}, dropped_stdout={self.dropped_stdout}, dropped_stderr={self.dropped_stderr})"
        return text

    def check_returncode(self) -> None:
        """``subprocess.CalledProcessError`` (with ``dropped_stdout``/``dropped_stderr``)
        if the returncode is not 0."""
        if self.returncode:
            error = subprocess.CalledProcessError(self.returncode, self.args, self.stdout, self.stderr)
            _tag(error, self.dropped_stdout, self.dropped_stderr)
            raise error


def _tag(error: subprocess.SubprocessError, dropped_stdout: int, dropped_stderr: int) -> None:
    # The exceptions are the stdlib's own, so `except subprocess.TimeoutExpired` works;
    # the counts ride along as attributes.
    error.dropped_stdout = dropped_stdout  # type: ignore[attr-defined]
    error.dropped_stderr = dropped_stderr  # type: ignore[attr-defined]


def _dropped(comm: Communication) -> tuple[int, int]:
    out, err = comm.sinks.get(1), comm.sinks.get(2)
    return (0 if out is None else out.dropped, 0 if err is None else err.dropped)


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
            # The child exited and the pipes closed; descendants pinned may still run.
            if await proc._tree().wait_pinned(max(deadline - loop.time(), 0.0)):
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
    grace: float = DEFAULT_GRACE,
    **spawn_options: Any,
) -> CompletedProcess:
    """Runs ``cmd`` to the end: ``subprocess.run`` for asyncio (anyio's ``run_process``).

    ``cmd`` is a sequence (``create_subprocess_exec``) or a string (``_shell``).
    ``input`` is fed to stdin. With ``capture_output`` (the default) stdout and stderr are
    collected; otherwise they follow ``spawn_options`` (inherited by default).
    ``max_output`` caps the bytes kept per stream: the first ``max_output`` are kept, the
    rest counted in ``dropped_stdout``/``dropped_stderr`` (on the result and on the
    exceptions raised), and the pipes are read to the end regardless, so the child never
    blocks on a full pipe. After ``timeout`` seconds the child and every descendant
    fastspawn can reach are ended (SIGTERM, ``grace`` seconds, SIGKILL) and
    ``subprocess.TimeoutExpired`` is raised with the output written until then. With
    ``check``, a non-zero exit raises ``subprocess.CalledProcessError``. Cancellation, or
    any error, ends the tree the same way before it propagates (``Process.aclose``).
    ``spawn_options`` go to ``create_subprocess_*`` (``cwd``, ``env``, ``limit``,
    ``process_group=0``, ...)."""
    if input is not None:
        if spawn_options.get("stdin") is not None:
            raise ValueError("stdin and input arguments may not both be used.")
        spawn_options["stdin"] = subprocess.PIPE
    if capture_output:
        if spawn_options.get("stdout") is not None or spawn_options.get("stderr") is not None:
            raise ValueError("stdout and stderr arguments may not be used with capture_output.")
        spawn_options["stdout"] = spawn_options["stderr"] = subprocess.PIPE
    if max_output is not None and max_output < 0:
        raise ValueError("max_output must be None or >= 0")
    if isinstance(cmd, (str, bytes)):
        proc = await create_subprocess_shell(cmd, **spawn_options)
    else:
        proc = await create_subprocess_exec(*cmd, **spawn_options)
    async with proc.ensure_ended(grace):
        comm = Communication(proc, input, max_output)
        try:
            stdout, stderr = await comm.run(timeout, cmd)
        except subprocess.TimeoutExpired:
            await _end_collecting(proc, comm, grace)
            stdout, stderr = comm.output()
            expired = subprocess.TimeoutExpired(cmd, timeout or 0.0, output=stdout, stderr=stderr)
            _tag(expired, *_dropped(comm))
            raise expired from None
    returncode = proc.returncode
    assert returncode is not None
    result = CompletedProcess(cmd, returncode, stdout, stderr, *_dropped(comm))
    if check:
        result.check_returncode()
    return result
