"""``features()``: what fastspawn does natively on this system and interpreter."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from ._load import CORE_ERROR, CORE_LOADED
from ._private import FAST_STREAMS, PYTHON_VERIFIED

if TYPE_CHECKING or CORE_LOADED:
    from . import _core

__all__ = ["Features", "features"]


@dataclass(frozen=True)
class Features:
    """What this system and interpreter let fastspawn do."""

    #: The Rust core spawns children (False: asyncio's own spawner is used throughout).
    native_spawn: bool
    #: Exits are watched through pidfds (False: the core's one fallback reaper thread).
    pidfd: bool
    #: ``cwd`` is honoured by ``posix_spawn`` itself (glibc >= 2.29; else delegated).
    native_cwd: bool
    #: ``close_fds`` is honoured by ``posix_spawn`` itself (glibc >= 2.34; else delegated).
    native_close_fds: bool
    #: fastspawn's ``StreamReader``, protocol and short ``communicate()`` are in use (False:
    #: asyncio's own, on a Python not in the verified table or with FASTSPAWN_STOCK_STREAMS=1).
    fast_streams: bool
    #: This CPython minor version is in ``fastspawn._private.VERIFIED``.
    python_verified: bool
    #: The running interpreter's ``major.minor``.
    python: str
    #: Why the compiled core could not be imported (the ``ImportError``'s text), None when
    #: it was: without it (the pure-Python wheel of macOS, Windows, musl, other CPUs)
    #: every field above but the last two is False and fastspawn is asyncio's own spawner.
    core_error: Optional[str] = None


def features() -> Features:
    """What fastspawn does natively here (a record; the fields are documented on ``Features``)."""
    if not CORE_LOADED:
        cwd = close_fds = pidfd = False
    else:
        cwd, close_fds, pidfd = _core.features()
    return Features(
        native_spawn=CORE_LOADED,
        pidfd=pidfd,
        native_cwd=cwd,
        native_close_fds=close_fds,
        fast_streams=FAST_STREAMS,
        python_verified=PYTHON_VERIFIED,
        python=f"{sys.version_info[0]}.{sys.version_info[1]}",
        core_error=CORE_ERROR,
    )
