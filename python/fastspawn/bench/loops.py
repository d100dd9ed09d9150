"""The implementations compared, and the check that each really spawns with its own machinery.

The event-loop implementations run the very same code (``asyncio.create_subprocess_exec`` and the
stock ``Process``/``StreamReader`` on top); only the loop, and so the subprocess transport, differs.
The floor is not a loop: the workloads themselves do its work with ``os.posix_spawn``.

This module is the bottom of the bench: the workloads, the runner and the report stand on it.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Any, Callable, Coroutine, Optional, TypeVar

import fastspawn

__all__ = [
    "BASELINE",
    "FLOOR",
    "IMPLS",
    "INSTALL",
    "OPTIONAL",
    "SUBJECT",
    "TRUE",
    "CheckError",
    "available",
    "check",
    "check_exit",
    "check_spawner",
    "new_loop",
    "run_on",
    "uvloop_available",
    "versions",
]

_T = TypeVar("_T")

#: Every implementation, in the order of the tables' rows and the summary's columns.
IMPLS = ("asyncio", "uvloop", "rsloop", "fastspawn", "floor")
#: The reference every ratio is first taken against: a stock asyncio loop.
BASELINE = "asyncio"
#: The implementation the summary is about.
SUBJECT = "fastspawn"
#: Not a loop: ``os.posix_spawn``, ``os.waitpid`` and blocking reads.
FLOOR = "floor"
#: Third-party loops with their own subprocess code, compared when importable, and how to get them.
OPTIONAL = ("uvloop", "rsloop")
INSTALL = {
    "uvloop": "pip install 'fastspawn[bench]'",
    # rsloop's Linux wheels are manylinux_2_39 (they call __isoc23_strtol, GLIBC_2.38) and
    # its sdist needs a pinned nightly Rust, so it is not in the bench extra.
    "rsloop": "pip install rsloop; its Linux wheels need glibc 2.39+",
}

TRUE = "/bin/true"


class CheckError(AssertionError):
    """A workload produced a wrong result (bytes, lines or an exit code)."""


def check(ok: bool, reason: str) -> None:
    """Raises :class:`CheckError` with ``reason`` unless ``ok``."""
    if not ok:
        raise CheckError(reason)


def check_exit(code: Optional[int], what: str) -> None:
    """Raises :class:`CheckError` unless ``what`` exited with 0."""
    check(code == 0, f"{what} exited with {code}, expected 0")


def _import_error(impl: str) -> Optional[str]:
    """Why ``impl``'s module cannot be imported here, or None if it can."""
    try:
        importlib.import_module(impl)
    except ImportError as e:
        # A wheel built for a newer glibc fails here, not at install time: say which symbol.
        return f"{type(e).__name__}: {e}"
    return None


def available(impl: str) -> Optional[str]:
    """None if ``impl`` can run here, else the reason it cannot (an optional loop not importable)."""
    if impl not in IMPLS:
        raise ValueError(f"{impl!r} is not one of {', '.join(IMPLS)}")
    return _import_error(impl) if impl in OPTIONAL else None


def uvloop_available() -> bool:
    """Whether uvloop can be imported here."""
    return available("uvloop") is None


def versions() -> dict[str, str]:
    """The version of fastspawn and of each optional loop importable here."""
    out = {"fastspawn": fastspawn.__version__}
    for impl in OPTIONAL:
        if available(impl) is None:
            out[impl] = str(getattr(importlib.import_module(impl), "__version__", "?"))
    return out


def new_loop(impl: str) -> asyncio.AbstractEventLoop:
    """A new event loop of one of the event-loop implementations."""
    if impl == "asyncio":
        check(not fastspawn.is_installed(), "fastspawn.install() is in effect; the asyncio column must be stock")
        return asyncio.SelectorEventLoop()
    if impl in OPTIONAL:
        # uvloop and rsloop alike: a module-level new_event_loop() returning their own loop
        # (rsloop's is not even an asyncio.AbstractEventLoop subclass; it quacks like one).
        loop: asyncio.AbstractEventLoop = importlib.import_module(impl).new_event_loop()
        return loop
    if impl == "fastspawn":
        return fastspawn.new_event_loop()
    raise ValueError(f"{impl!r} is not an event-loop implementation")


def run_on(impl: str, main: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Runs ``main()`` to completion on a new loop of ``impl``, then closes the loop."""
    loop = new_loop(impl)
    try:
        return loop.run_until_complete(main())
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


def check_spawner(impl: str) -> None:
    """Spawns ``/bin/true`` once on ``impl``'s loop and checks that the subprocess transport is that
    implementation's own (e.g. that the uvloop column is not secretly measuring fastspawn)."""
    if impl == FLOOR:
        return

    async def main() -> str:
        proc = await asyncio.create_subprocess_exec(TRUE)
        check_exit(await proc.wait(), TRUE)
        return type(vars(proc)["_transport"]).__module__

    module = run_on(impl, main)
    check(module.split(".")[0] == impl, f"{impl} spawned through {module}, not through {impl}")
