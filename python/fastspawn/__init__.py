"""fastspawn: asyncio subprocesses spawned by a Rust core.

Use the functions here directly (same signatures as asyncio's), or call ``install()``
once so that ``asyncio.create_subprocess_exec`` and everything built on it use
fastspawn.
"""

from __future__ import annotations

from ._core import __version__
from ._features import Features, features
from ._install import EventLoop, install, is_installed, new_event_loop, run, uninstall
from ._options import DELEGATED_OPTIONS, NATIVE_OPTIONS
from ._process import Process
from ._spawn import create_subprocess_exec, create_subprocess_shell, subprocess_exec, subprocess_shell
from ._streams import StreamReader, SubprocessStreamProtocol, iter_lines
from ._transport import SubprocessTransport

__all__ = [
    "DELEGATED_OPTIONS",
    "NATIVE_OPTIONS",
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
    "subprocess_exec",
    "subprocess_shell",
    "uninstall",
]
