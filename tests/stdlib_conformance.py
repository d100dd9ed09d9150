"""Runs the interpreter's own asyncio tests and prints their counts.

    python tests/stdlib_conformance.py [--fastspawn] [--streams]

By default the suite is ``test.test_asyncio.test_subprocess``; with ``--fastspawn``,
``fastspawn.install()`` is applied first, so every subprocess the suite starts on a stock
loop goes through fastspawn (and reads through fastspawn's StreamReader).

With ``--streams`` the suite is ``test.test_asyncio.test_streams``; with ``--fastspawn``
too, ``asyncio.StreamReader`` is replaced by ``fastspawn.StreamReader`` first, so
asyncio's own StreamReader tests run against fastspawn's. The last line is JSON:
``{"python": "3.12.1", "impl": "fastspawn", "run": N, "failures": [...], "errors": [...],
"skipped": N}``. ``tests/test_stdlib_conformance.py`` runs this for every installed
interpreter and compares fastspawn against stock.
"""

from __future__ import annotations

import json
import platform
import sys
import unittest


def main() -> int:
    use_fastspawn = "--fastspawn" in sys.argv
    streams = "--streams" in sys.argv
    routes = {"native": 0, "delegated_popen": 0, "stock_asyncio": 0, "stock_fast_watcher": 0}
    if use_fastspawn and streams:
        import asyncio
        import asyncio.streams

        from fastspawn._private.streams import StreamReader

        asyncio.StreamReader = StreamReader  # type: ignore[misc]
        asyncio.streams.StreamReader = StreamReader  # type: ignore[misc]
    elif use_fastspawn:
        import asyncio

        import fastspawn
        from fastspawn import _install, _options, _spawn

        fastspawn.install()
        assert fastspawn.is_installed()
        # Count which path each spawn took, so the report says how much of the suite
        # really ran through the Rust core.
        plan, stock = _options.plan_native, _install._saved

        def counting_plan(*a, **k):  # type: ignore[no-untyped-def]
            native = plan(*a, **k)
            routes["native" if native is not None else "delegated_popen"] += 1
            return native

        async def counting_stock(*a, **k):  # type: ignore[no-untyped-def]
            # Spawns under a FastChildWatcher (it reaps every child with waitpid(-1), so
            # fastspawn steps aside) are counted apart from the other delegations.
            watcher = getattr(asyncio.get_event_loop_policy(), "_watcher", None)
            fast = type(watcher).__name__ == "FastChildWatcher"
            routes["stock_fast_watcher" if fast else "stock_asyncio"] += 1
            return await stock(*a, **k)

        _spawn.plan_native = counting_plan
        _install._saved = counting_stock
    if streams:
        from test.test_asyncio import test_streams as module
    else:
        from test.test_asyncio import test_subprocess as module

    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    stream = sys.stderr
    result = unittest.TextTestRunner(stream=stream, verbosity=1).run(suite)
    if use_fastspawn and not streams:
        import fastspawn

        # The suite must not have swapped our hook out from under us.
        assert fastspawn.is_installed()
    print(
        json.dumps(
            {
                "python": platform.python_version(),
                "impl": "fastspawn" if use_fastspawn else "asyncio",
                "suite": "test_streams" if streams else "test_subprocess",
                "run": result.testsRun,
                "failures": [t.id() for t, _ in result.failures],
                "errors": [t.id() for t, _ in result.errors],
                "skipped": len(result.skipped),
                "unexpected_successes": len(result.unexpectedSuccesses),
                "routes": routes,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
