"""Behaviour that differs by CPython version, as data.

fastspawn gives the errors, warnings and results of the running Python's own
``subprocess``/``asyncio``, and those changed between releases. Each such difference is one
entry here, naming the versions it holds for and the CPython change behind it; the code
asks ``CHANGES[...].here`` (or the module-level names below) instead of testing
``sys.version_info`` itself, and ``tests/test_versions.py`` checks every entry that can be
probed against the running interpreter's stock behaviour.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, Optional

__all__ = ["CHANGES", "Change"]


@dataclass(frozen=True)
class Change:
    """A behaviour of CPython's, from ``since`` (inclusive) until ``until`` (exclusive)."""

    since: tuple[int, int]
    until: Optional[tuple[int, int]]
    #: What changed, in words.
    what: str
    #: The CPython change behind it (an issue, a commit, the module that differs).
    cpython: str

    def applies(self, version: tuple[int, int]) -> bool:
        return self.since <= version and (self.until is None or version < self.until)

    @property
    def here(self) -> bool:
        """Whether it holds on the running interpreter."""
        return self.applies((sys.version_info[0], sys.version_info[1]))


CHANGES: Mapping[str, Change] = MappingProxyType(
    {
        "stdout_stdout_checked_first": Change(
            (3, 13),
            None,
            "Popen refuses stdout=STDOUT ('STDOUT can only be used for stderr') before any other keyword; "
            "earlier it takes -2 as a descriptor, which the child's dup2 finds invalid (EBADF)",
            "subprocess.Popen._get_handles, 3.13 (gh-85936)",
        ),
        "fcntl_warns_out_of_range": Change(
            (3, 15),
            None,
            "fcntl() warns (DeprecationWarning 'integer value out of range') for an int argument it cuts "
            "to 32 bits, e.g. an out-of-range pipesize",
            "fcntlmodule.c, 3.15",
        ),
        "posix_spawn_path_nul_message": Change(
            (3, 13),
            None,
            "os.posix_spawn's program is a path_t: a NUL byte in a str program reads "
            "'posix_spawn: embedded null character in path' (before: 'embedded null byte')",
            "posixmodule.c os_posix_spawn, 3.13",
        ),
        "posix_spawn_env_or_none": Change(
            (3, 13),
            None,
            "os.posix_spawn's non-mapping env error ends in 'must be a mapping object or None'",
            "posixmodule.c, 3.13",
        ),
        "mapping_keys_non_iterable_reworded": Change(
            (3, 15),
            None,
            "PyMapping_Keys/Values on a method returning a non-iterable: the TypeError is worded anew",
            "Objects/abstract.c, 3.15",
        ),
        "fork_exec_c_int_clinic": Change(
            (3, 12),
            None,
            "fork_exec's C int arguments go through Argument Clinic: 'Python int too large to convert to "
            "C int' (before: a C long first, then 'signed integer is greater than maximum')",
            "_posixsubprocess.c converted to Argument Clinic, 3.12",
        ),
        "fork_exec_flags_any_object": Change(
            (3, 12),
            None,
            "fork_exec takes restore_signals and start_new_session as truth values of any object (before: C ints)",
            "_posixsubprocess.c Argument Clinic conversion, 3.12",
        ),
        "process_group_c_long": Change(
            (3, 12),
            (3, 13),
            "fork_exec reads process_group as a C long and keeps the low 32 bits (pid_t)",
            "_posixsubprocess.c, 3.12 only",
        ),
        "wait_nan_waits": Change(
            (3, 11),
            (3, 15),
            "Popen.wait(timeout=nan) never expires (its deadline arithmetic), so it waits for the exit; "
            "3.15 waits on a pidfd with poll(), which refuses NaN (ValueError)",
            "gh-83069 (event-driven Popen.wait, 3.15)",
        ),
        "communicate_feeds_without_input": Change(
            (3, 12),
            None,
            "asyncio's communicate() drains and closes a stdin pipe even without input (3.11 leaves it open)",
            "asyncio/subprocess.py Process.communicate, 3.12",
        ),
        "pidfd_watcher_lost_status_wording": Change(
            (3, 12),
            None,
            "with pidfds, asyncio's PidfdChildWatcher words a lost exit status 'child process pid %d exit "
            "status already read:  will report returncode 255' (the threaded watcher: 'Unknown child "
            "process pid %d, will report returncode 255')",
            "asyncio/unix_events.py, pidfd watcher by default from 3.12",
        ),
    }
)
