"""A pytest plugin for other projects' test suites (``tools/other-suites.sh``):
``fastspawn.install()`` before any test is collected, and a session that spawned nothing
through fastspawn's transport fails (so a suite that silently bypassed it cannot pass)."""

from __future__ import annotations

from typing import Any

import pytest

import fastspawn
from fastspawn import _transport

fastspawn.install()
assert fastspawn.is_installed()

spawned = 0
_init = _transport.SubprocessTransport.__init__


def _counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
    global spawned
    spawned += 1
    _init(self, *args, **kwargs)


_transport.SubprocessTransport.__init__ = _counting_init  # type: ignore[method-assign]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.write_line(f"fastspawn: {spawned} children spawned through fastspawn's transport")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if spawned == 0 and exitstatus == 0:
        session.exitstatus = 1
