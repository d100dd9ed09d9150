"""fastspawn: asyncio subprocesses spawned by a Rust core.

Use the functions here directly (same signatures as asyncio's), or call ``install()``
once so that ``asyncio.create_subprocess_exec`` and everything built on it use
fastspawn.

Beyond asyncio: ``async with proc:`` ends the child and its descendants,
``proc.kill_tree()``/``terminate_tree()``/``send_signal_tree()``,
``proc.communicate(timeout=...)`` keeps the output of a timeout, ``run_process()`` is
``subprocess.run`` for asyncio, and ``iter_lines()`` never fails on a long line.
"""

from __future__ import annotations

from ._core import __version__
from ._features import Features, features
from ._install import EventLoop, install, is_installed, new_event_loop, run, uninstall
from ._options import DELEGATED_OPTIONS, NATIVE_OPTIONS
from ._process import Process
from ._run import CompletedProcess, run_process
from ._spawn import create_subprocess_exec, create_subprocess_shell, subprocess_exec, subprocess_shell
from ._streams import StreamReader, SubprocessStreamProtocol, iter_lines
from ._transport import SubprocessTransport

__all__ = [
    "DELEGATED_OPTIONS",
    "NATIVE_OPTIONS",
    "CompletedProcess",
    "EventLoop",
    "Features",
    "Process",
    "StreamReader",
    "SubprocessStreamProtocol",
    "SubprocessTransport",
    "__version__",
    "create_subprocess_exec",
    "create_subprocess_shell",
    "features",
    "install",
    "is_installed",
    "iter_lines",
    "new_event_loop",
    "run",
    "run_process",
    "subprocess_exec",
    "subprocess_shell",
    "uninstall",
]
