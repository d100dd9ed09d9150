"""Nothing reachable from Python aborts the interpreter or panics in the Rust core.

The core is driven directly (``fastspawn._core``) with hostile values: huge, negative,
NaN, infinite, wrong types, closed objects. Only ordinary exceptions (``Exception``
subclasses) may come back. PyO3 turns a Rust panic into ``PanicException``, which
derives from ``BaseException``: ``no_panic`` catches it and fails the test explicitly,
and an abort (allocation failure, a panic in a ``panic = "abort"`` build) kills the
test process, which fails the run.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from typing import Any, Callable

import pytest

import fastspawn
from fastspawn import _core


def no_panic(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``, letting ordinary exceptions through; fails the test on any
    other BaseException (a Rust panic arrives as PanicException, which is one)."""
    try:
        return function(*args)
    except Exception:
        raise
    except BaseException as exc:
        name = getattr(function, "__qualname__", function)
        pytest.fail(f"{name}{args!r} raised {type(exc).__module__}.{type(exc).__name__}: {exc}")


def spawn_core(*argv: str) -> _core.Child:
    program = argv[0].encode()
    args = [a.encode() for a in argv]
    no_options = (None, None, None, None, None, True, [], False, None, True, None)
    child, *_ = _core.spawn(program, args, *no_options, argv[0], None)
    return child


# -- Child.wait(timeout) and ChildProcess.wait(timeout): Popen.wait's answers ----------

# Popen.wait(timeout=nan): before 3.15 the deadline arithmetic never expires, so it waits
# for the exit; 3.15 waits on a pidfd with poll(), which rejects NaN.
NAN_WAITS = sys.version_info < (3, 15)
HOSTILE_TIMEOUTS = [math.inf, 1e300, 2**64, 1e19, math.nan, -1.0, -math.inf, -(2**64), 0]


def popen_wait_outcome(timeout: Any) -> str:
    """What ``Popen.wait(timeout)`` does here for a child that exits after 0.2 s."""
    proc = subprocess.Popen(["sleep", "0.2"])
    try:
        return f"returned {proc.wait(timeout)}"
    except subprocess.TimeoutExpired:
        return "TimeoutExpired"
    except Exception as exc:
        return type(exc).__name__
    finally:
        proc.wait()


@pytest.mark.parametrize("timeout", HOSTILE_TIMEOUTS, ids=repr)
def test_child_process_wait_timeouts_match_popen(fs: Any, timeout: Any) -> None:
    """``transport.get_extra_info('subprocess').wait(timeout)`` answers as Popen.wait:
    an infinite or huge timeout waits for the exit; a negative one polls once; NaN as
    the running Python's Popen (waits before 3.15, ValueError from 3.15)."""
    expected = popen_wait_outcome(timeout)
    if isinstance(timeout, float) and math.isnan(timeout):
        assert expected == ("returned 0" if NAN_WAITS else "ValueError")

    async def main() -> str:
        proc = await fastspawn.create_subprocess_exec("sleep", "0.2")
        popen_like = proc._transport.get_extra_info("subprocess")  # type: ignore[attr-defined]
        try:
            return f"returned {no_panic(popen_like.wait, timeout)}"
        except subprocess.TimeoutExpired:
            return "TimeoutExpired"
        except Exception as exc:
            return type(exc).__name__
        finally:
            await proc.wait()

    assert fs.run(main()) == expected


@pytest.mark.parametrize("timeout", HOSTILE_TIMEOUTS, ids=repr)
def test_core_wait_takes_any_timeout(timeout: Any) -> None:
    """``_core.Child.wait``: no limit for a timeout too large for a deadline, one poll for
    a negative one, ValueError for NaN (the caller decides what NaN means)."""
    child = spawn_core("sleep", "0.1")
    try:
        if isinstance(timeout, float) and math.isnan(timeout):
            with pytest.raises(ValueError, match="NaN"):
                no_panic(child.wait, timeout)
        elif timeout > 0:
            start = time.monotonic()
            assert no_panic(child.wait, timeout) == 0
            assert time.monotonic() - start < 30
        else:
            assert no_panic(child.wait, timeout) is None
    finally:
        child.send_signal(9)
        child.wait()
