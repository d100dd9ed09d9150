"""fastspawn: asyncio subprocesses spawned by a Rust core.

Use the functions here directly (same signatures as asyncio's), or call ``install()``
once so that ``asyncio.create_subprocess_exec`` and everything built on it use
fastspawn.

Beyond asyncio: ``async with proc:`` ends the child and its descendants,
``proc.kill_tree()``/``terminate_tree()``/``send_signal_tree()``,
``proc.communicate(timeout=...)`` keeps the output of a timeout, ``run_process()`` is
``subprocess.run`` for asyncio, and ``iter_lines()`` never fails on a long line.

Where the Rust core cannot exist (macOS, Windows, musl, other CPUs: the pure-Python
wheel), fastspawn still imports and works as asyncio's own spawner: ``install()`` is a
no-op and ``features().native_spawn`` is False (``_fallback``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._completed import CompletedProcess
from ._features import Features, features
from ._load import CORE_LOADED
from ._streams import StreamReader, SubprocessStreamProtocol, iter_lines

if TYPE_CHECKING or CORE_LOADED:
    from ._core import __version__
    from ._install import EventLoop, install, is_installed, new_event_loop, run, uninstall
    from ._options import DELEGATED_OPTIONS, NATIVE_OPTIONS
    from ._process import Process
    from ._run import run_process
    from ._spawn import create_subprocess_exec, create_subprocess_shell, subprocess_exec, subprocess_shell
    from ._transport import SubprocessTransport
else:
    # No compiled core (the pure-Python wheel: macOS, Windows, musl, other CPUs): the same
    # names, over asyncio's own spawner (_fallback says what differs).
    from ._fallback import (
        DELEGATED_OPTIONS,
        NATIVE_OPTIONS,
        EventLoop,
        Process,
        SubprocessTransport,
        __version__,
        create_subprocess_exec,
        create_subprocess_shell,
        install,
        is_installed,
        new_event_loop,
        run,
        run_process,
        subprocess_exec,
        subprocess_shell,
        uninstall,
    )

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
