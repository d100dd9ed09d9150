"""``fastspawn._versions.CHANGES`` against the running interpreter: for every entry that
can be probed, stock ``subprocess``/``os``/``asyncio`` behave as the entry says they do on
this version. (Run on every supported Python by ``make test``, so each entry is checked on
both sides of its version boundary.)"""

from __future__ import annotations

import asyncio
import fcntl
import math
import os
import pathlib
import subprocess
import warnings
from typing import Callable

import pytest

from fastspawn._versions import CHANGES


def _stdout_stdout_checked_first() -> bool:
    try:
        subprocess.Popen(["true"], stdout=subprocess.STDOUT, pipesize=1.5)  # type: ignore[arg-type]
    except ValueError as exc:
        return str(exc) == "STDOUT can only be used for stderr"
    except TypeError:
        return False
    raise AssertionError("Popen accepted both")


def _fcntl_warns_out_of_range() -> bool:
    r, w = os.pipe()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 2**40)
            except OSError:
                pass
        return any(issubclass(c.category, DeprecationWarning) for c in caught)
    finally:
        os.close(r)
        os.close(w)


def _posix_spawn_path_nul_message() -> bool:
    with pytest.raises(ValueError) as info:
        os.posix_spawn("a\0b", ["a"], {})
    return str(info.value) == "posix_spawn: embedded null character in path"


def _posix_spawn_env_or_none() -> bool:
    with pytest.raises(TypeError) as info:
        os.posix_spawn("/bin/true", ["true"], 5)  # type: ignore[arg-type]
    return str(info.value).endswith("or None")


def _fork_exec_c_int_clinic() -> bool:
    with pytest.raises(OverflowError) as info:
        subprocess.Popen(["true"], umask=2**40)
    return str(info.value) == "Python int too large to convert to C int"


def _popen_accepts(**kwargs: object) -> bool:
    try:
        proc = subprocess.Popen(["true"], **kwargs)  # type: ignore[call-overload]
    except (TypeError, OverflowError):
        return False
    proc.wait()
    return True


def _wait_nan_waits() -> bool:
    proc = subprocess.Popen(["sleep", "0.1"])
    try:
        return proc.wait(timeout=math.nan) == 0
    except ValueError:
        proc.wait()
        return False


def _communicate_feeds_without_input() -> bool:
    async def main() -> bool:
        proc = await asyncio.create_subprocess_exec("cat", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            await asyncio.wait_for(proc.communicate(), 2)
            return True  # cat saw EOF on its stdin: communicate() closed it
        except TimeoutError:
            proc.kill()
            await proc.communicate()
            return False

    return asyncio.run(main())


PROBES: dict[str, Callable[[], bool]] = {
    "stdout_stdout_checked_first": _stdout_stdout_checked_first,
    "fcntl_warns_out_of_range": _fcntl_warns_out_of_range,
    "posix_spawn_path_nul_message": _posix_spawn_path_nul_message,
    "posix_spawn_env_or_none": _posix_spawn_env_or_none,
    "fork_exec_c_int_clinic": _fork_exec_c_int_clinic,
    "fork_exec_flags_any_object": lambda: _popen_accepts(restore_signals=None),
    "process_group_c_long": lambda: _popen_accepts(process_group=2**40),
    "wait_nan_waits": _wait_nan_waits,
    "communicate_feeds_without_input": _communicate_feeds_without_input,
}
# Entries no cheap probe can see; the tests that compare fastspawn with stock there.
COVERED_ELSEWHERE = {
    "mapping_keys_non_iterable_reworded": "tests/test_errors.py (env mappings whose keys() misbehave)",
    "pidfd_watcher_lost_status_wording": "tests/test_lost_status.py (the warning, compared with stock's)",
}


def test_every_entry_is_probed_or_covered() -> None:
    assert set(PROBES) | set(COVERED_ELSEWHERE) == set(CHANGES)
    assert not set(PROBES) & set(COVERED_ELSEWHERE)


@pytest.mark.parametrize("name", sorted(PROBES))
def test_the_table_says_what_this_python_does(name: str) -> None:
    assert PROBES[name]() is CHANGES[name].here, CHANGES[name]


def test_change_applies_within_its_versions() -> None:
    change = CHANGES["process_group_c_long"]
    assert [change.applies((3, minor)) for minor in (11, 12, 13)] == [False, True, False]


def _spawn_warning(call: Callable[[], object]) -> warnings.WarningMessage:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    assert len(caught) == 1, [str(c.message) for c in caught]
    return caught[0]


@pytest.mark.parametrize("direct", [False, True], ids=["asyncio.create_subprocess_exec", "fastspawn directly"])
def test_warnings_point_at_the_callers_line(direct: bool) -> None:
    # Popen's own "pass_fds overriding close_fds." points into subprocess.py; fastspawn's
    # points at the user's line, at every call depth (stacklevel counted, not fixed).
    import fastspawn

    r, w = os.pipe()
    create = fastspawn.create_subprocess_exec if direct else asyncio.create_subprocess_exec

    async def main() -> int:
        proc = await create("true", pass_fds=(w,), close_fds=False)  # the line warned about
        return await proc.wait()

    try:
        warning = _spawn_warning(lambda: fastspawn.run(main()))
    finally:
        os.close(r)
        os.close(w)
    assert str(warning.message) == "pass_fds overriding close_fds."
    assert warning.filename == __file__
    source = pathlib.Path(__file__).read_text().splitlines()[warning.lineno - 1]
    assert "the line warned about" in source
