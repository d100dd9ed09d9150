"""The fence: every use of private asyncio/CPython internals lives in this package.

Nothing outside ``fastspawn._private`` touches a private name of asyncio, ``subprocess``
or the interpreter (``tests/test_fence.py`` checks it). Such names change between
releases without notice (3.15's ``StreamReader`` began calling
``self._buffer.take_bytes()``), so each use here is verified per CPython minor version:

* **Speed layer** (``streams.py`` and ``Process``'s short ``communicate()``): a
  ``StreamReader`` subclass whose buffer lives in Rust, driving asyncio's own reader
  methods through ``_buffer``, ``_wait_for_data``, ``_waiter``, ``_wakeup_waiter``,
  ``_maybe_resume_transport``, ``_paused``, ``_exception``, ``_limit``, and the stock
  protocol's ``_limit``/``_loop``/``_pipe_fds`` and ``Process._read_stream``/``_transport``.
  Used only on the versions in ``VERIFIED`` below; on any other version (a new release,
  an alpha) fastspawn still spawns natively but hands out asyncio's own
  ``StreamReader``, protocol and ``communicate()``. ``FASTSPAWN_STOCK_STREAMS=1`` forces
  that fallback (``make test`` runs the whole suite once so).
* **The task registry** (``tasks.py``): ``asyncio.tasks._all_tasks`` (3.11) or
  ``_scheduled_tasks`` and ``_eager_tasks`` (3.12, 3.13), read instead of
  ``asyncio.all_tasks`` for the spawner's "other tasks?" check; its own table of
  versions, and ``all_tasks`` itself on any other.
* **Hooks** (``hooks.py``), needed to spawn at all and present unchanged since 3.4:
  ``_UnixSelectorEventLoop._make_subprocess_transport`` (the one hook under
  ``loop.subprocess_exec``), the policy's ``_watcher`` (3.11-3.13), ``Popen._child_created``
  and ``format_helpers._format_callback_source``. Each is looked up defensively: when
  one is missing, the feature that needs it steps aside instead of failing.
"""

from __future__ import annotations

import os
import sys
from types import MappingProxyType
from typing import Mapping

from .._load import CORE_LOADED

__all__ = ["FAST_STREAMS", "PYTHON_VERIFIED", "VERIFIED", "fast_streams_allowed"]

# The CPython minor versions whose private internals, as used by the speed layer, were
# checked against their source and by CPython's own test_asyncio.test_streams and
# test_subprocess run with fastspawn installed (tests/test_stdlib_conformance.py).
# Add a version only after both suites pass on it.
VERIFIED: Mapping[tuple[int, int], str] = MappingProxyType(
    {
        (3, 11): "3.11.7: StreamReader buffers in a bytearray (len, find, startswith, slices, del, clear)",
        (3, 12): "3.12.1: as 3.11; SEND no longer uses am_send (the ready awaitable is a coroutine)",
        (3, 13): "3.13.0: as 3.12",
        (3, 14): "3.14.x: start_tls hands the reader's _buffer to the SSL protocol (gh-142352): buffer protocol",
        (3, 15): "3.15.x: StreamReader takes data with _buffer.take_bytes(n) (the new bytearray.take_bytes)",
    }
)

# Set (to anything but "" or "0") to run with asyncio's own StreamReader, protocol and
# communicate() on a verified version too.
STOCK_STREAMS_ENV = "FASTSPAWN_STOCK_STREAMS"


def fast_streams_allowed(version: tuple[int, int], environ: Mapping[str, str]) -> bool:
    """Whether the speed layer may be used on CPython ``version`` with ``environ``."""
    forced_stock = environ.get(STOCK_STREAMS_ENV, "") not in ("", "0")
    return version in VERIFIED and not forced_stock and sys.implementation.name == "cpython"


PYTHON_VERIFIED = sys.version_info[:2] in VERIFIED
# Decided once, at import: a process never mixes the two kinds of reader. Never without
# the core (the pure-Python fallback): the fast reader's buffer is in Rust.
FAST_STREAMS = CORE_LOADED and fast_streams_allowed(sys.version_info[:2], os.environ)
