"""One test body, two implementations: stock asyncio and fastspawn.

The ``impl`` fixture gives a loop factory; tests call the standard
``asyncio.create_subprocess_*`` API, which on a fastspawn loop spawns through the Rust
core. Every loop gets an exception handler that fails the test if asyncio ever reports
an error (the "hidden" errors: exceptions in callbacks, unclosed transports, ...).
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Coroutine, Iterator
from typing import Any, Callable, TypeVar

import pytest

import fastspawn

T = TypeVar("T")

# fastspawn's own StreamReader and short communicate() are in use (not with
# FASTSPAWN_STOCK_STREAMS=1, nor on a Python outside fastspawn._private.VERIFIED).
FAST_STREAMS = fastspawn.features().fast_streams


class Impl:
    def __init__(self, name: str, factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
        self.name = name
        self.factory = factory

    def __repr__(self) -> str:
        return self.name

    @property
    def is_fastspawn(self) -> bool:
        return self.name == "fastspawn"

    def run(self, coro: Coroutine[Any, Any, T], *, timeout: float = 60) -> T:
        """Runs ``coro`` on a fresh loop; fails on any error the loop reports."""
        loop = self.factory()
        reported: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        try:
            asyncio.set_event_loop(loop)
            result = loop.run_until_complete(asyncio.wait_for(coro, timeout))
            # Let pending connection_lost callbacks run, as asyncio.run would.
            loop.run_until_complete(asyncio.sleep(0))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
        gc.collect()
        assert not reported, f"the loop reported errors: {reported}"
        return result


IMPLS = {
    "asyncio": Impl("asyncio", asyncio.new_event_loop),
    "fastspawn": Impl("fastspawn", fastspawn.new_event_loop),
}


@pytest.fixture(params=list(IMPLS))
def impl(request: pytest.FixtureRequest) -> Impl:
    return IMPLS[request.param]


@pytest.fixture
def fs() -> Impl:
    """fastspawn only: for behaviour where fastspawn deliberately differs."""
    return IMPLS["fastspawn"]


PY = sys.executable


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Prints the stdlib conformance counts when that test ran."""
    module = sys.modules.get("test_stdlib_conformance")
    if module is None or not module.RESULTS:
        return
    terminalreporter.section("CPython test_asyncio suites: stock asyncio vs fastspawn")
    for line in module.summary_lines():
        terminalreporter.write_line(line)


@pytest.fixture
def installed() -> Iterator[None]:
    """``fastspawn.install()`` for the test, undone after it."""
    assert not fastspawn.is_installed()
    fastspawn.install()
    try:
        yield
    finally:
        fastspawn.uninstall()
    assert not fastspawn.is_installed()
