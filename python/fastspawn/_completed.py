"""What ``run_process`` takes, returns and raises, whoever spawned the child: shared by the
native ``run_process`` (``_run``) and the portable one of the pure-Python fallback
(``_fallback``), so both return the same ``CompletedProcess`` and reject the same
arguments."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from typing import Any, Optional, Union

from ._communicate import Communication, Input

__all__ = ["DRAIN_AFTER_KILL", "Command", "CompletedProcess", "dropped", "prepare", "tag", "timeout_expired"]

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
            tag(error, self.dropped_stdout, self.dropped_stderr)
            raise error


def tag(error: subprocess.SubprocessError, dropped_stdout: int, dropped_stderr: int) -> None:
    # The exceptions are the stdlib's own, so `except subprocess.TimeoutExpired` works;
    # the counts ride along as attributes.
    error.dropped_stdout = dropped_stdout  # type: ignore[attr-defined]
    error.dropped_stderr = dropped_stderr  # type: ignore[attr-defined]


def dropped(comm: Communication) -> tuple[int, int]:
    out, err = comm.sinks.get(1), comm.sinks.get(2)
    return (0 if out is None else out.dropped, 0 if err is None else err.dropped)


def prepare(
    spawn_options: dict[str, Any], input: Input, capture_output: bool, max_output: Optional[int], keep_output: str
) -> bool:
    """Adds to ``spawn_options`` the pipes ``input`` and ``capture_output`` need, after
    ``subprocess.run``'s checks (and ``max_output``'s and ``keep_output``'s); whether the
    last bytes are kept (``keep_output="tail"``)."""
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
    if keep_output not in ("head", "tail"):
        raise ValueError(f"keep_output must be 'head' or 'tail', not {keep_output!r}")
    return keep_output == "tail"


def timeout_expired(cmd: Command, timeout: Optional[float], comm: Communication) -> subprocess.TimeoutExpired:
    """The ``TimeoutExpired`` of ``run_process``: the output collected, the counts dropped."""
    stdout, stderr = comm.output()
    expired = subprocess.TimeoutExpired(cmd, timeout or 0.0, output=stdout, stderr=stderr)
    tag(expired, *dropped(comm))
    return expired
