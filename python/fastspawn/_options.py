"""From ``subprocess.Popen`` keyword arguments to a native spawn, or a reason not to.

asyncio forwards every extra keyword of ``loop.subprocess_exec`` to ``Popen``. The ones
the core can express with posix_spawn are converted here exactly as ``subprocess``
converts them (same types accepted, same errors). A spawn that asks for anything else is
*delegated*: it runs through ``subprocess.Popen`` itself, so it behaves exactly as the
standard library does — an option is never silently ignored.
"""

from __future__ import annotations

import operator
import os
import subprocess
import sys
import warnings
from typing import Any, NamedTuple, Optional

from . import _core

__all__ = ["DELEGATED_OPTIONS", "NATIVE_OPTIONS", "NativeSpawn", "plan_native"]

# Popen keywords honoured by the core, with the value that means "not asked for".
NATIVE_OPTIONS: dict[str, Any] = {
    "executable": None,
    "close_fds": True,
    "pass_fds": (),
    "cwd": None,
    "env": None,
    "restore_signals": True,
    "start_new_session": False,
    # These four take the core's clone path: posix_spawn cannot express them.
    "user": None,
    "group": None,
    "extra_groups": None,
    "umask": -1,
}
if sys.version_info >= (3, 10):
    NATIVE_OPTIONS["pipesize"] = -1
if sys.version_info >= (3, 11):
    NATIVE_OPTIONS["process_group"] = None

# Popen keywords that posix_spawn cannot express; any value but the default delegates.
DELEGATED_OPTIONS: dict[str, Any] = {
    "preexec_fn": None,  # arbitrary Python code between fork and exec
    "startupinfo": None,  # Windows only: Popen raises
    "creationflags": 0,  # Windows only: Popen raises
}

_CAN_CHDIR, _CAN_CLOSE_FDS, _ = _core.features()

# Popen 3.13+ refuses stdout=STDOUT before it looks at any other keyword. Earlier versions
# (and every version for stdin=STDOUT) take -2 for a descriptor, which the child's dup2
# finds invalid (the core reports the same EBADF at the same point).
_STDOUT_CHECKED_FIRST = sys.version_info >= (3, 13)

# Captured at import: when code later replaces subprocess.Popen (a test's mock.patch, a
# monkeypatching library), spawns go through the replacement, as asyncio's would.
_ORIGINAL_POPEN = subprocess.Popen


class NativeSpawn(NamedTuple):
    """The arguments of ``_core.spawn``."""

    program: bytes
    argv: list[bytes]
    env: Optional[list[bytes]]
    cwd: Optional[bytes]
    stdin: Optional[int]
    stdout: Optional[int]
    stderr: Optional[int]
    close_fds: bool
    pass_fds: list[int]
    start_new_session: bool
    process_group: Optional[int]
    restore_signals: bool
    pipe_size: Optional[int]
    program_name: object
    cwd_name: object
    umask: Optional[int]
    groups: Optional[list[int]]
    gid: Optional[int]
    uid: Optional[int]


def _stdio(value: Any) -> Optional[int]:
    # Popen: None, PIPE, DEVNULL, STDOUT, an int fd, or anything with fileno().
    if value is None or isinstance(value, int):
        return value
    fileno: int = value.fileno()
    return fileno


def _env_list(env: Any) -> list[bytes]:
    # As subprocess._execute_child builds it, including its errors.
    env_list = []
    for k, v in env.items():
        k = os.fsencode(k)
        if b"=" in k:
            raise ValueError("illegal environment variable name")
        env_list.append(k + b"=" + os.fsencode(v))
    return env_list


def _credentials(user: Any, group: Any, extra_groups: Any) -> tuple[Optional[list[int]], Optional[int], Optional[int]]:
    """``(groups, gid, uid)`` exactly as ``subprocess.Popen.__init__`` works them out,
    with its errors, in its order."""
    gid: Optional[int] = None
    if group is not None:
        if isinstance(group, str):
            import grp

            gid = grp.getgrnam(group).gr_gid
        elif isinstance(group, int):
            gid = group
        else:
            raise TypeError(f"Group must be a string or an integer, not {type(group)}")
        if gid < 0:
            raise ValueError(f"Group ID cannot be negative, got {gid}")
    gids: Optional[list[int]] = None
    if extra_groups is not None:
        if isinstance(extra_groups, str):
            raise ValueError("Groups must be a list, not a string")
        gids = []
        for extra_group in extra_groups:
            if isinstance(extra_group, str):
                import grp

                gids.append(grp.getgrnam(extra_group).gr_gid)
            elif isinstance(extra_group, int):
                gids.append(extra_group)
            else:
                raise TypeError(f"Items in extra_groups must be a string or integer, not {type(extra_group)}")
        for gid_check in gids:
            if gid_check < 0:
                raise ValueError(f"Group ID cannot be negative, got {gid_check}")
    uid: Optional[int] = None
    if user is not None:
        if isinstance(user, str):
            import pwd

            uid = pwd.getpwnam(user).pw_uid
        elif isinstance(user, int):
            uid = user
        else:
            raise TypeError("User must be a string or an integer")
        if uid < 0:
            raise ValueError(f"User ID cannot be negative, got {uid}")
    return gids, gid, uid


class _Options(NamedTuple):
    """The keyword arguments of one spawn, converted as ``Popen`` converts them."""

    executable: Any
    env: Any
    cwd: Any
    close_fds: bool
    fds_to_keep: list[int]
    start_new_session: bool
    process_group: Optional[int]
    restore_signals: bool
    pipe_size: Optional[int]
    umask: Optional[int]
    groups: Optional[list[int]]
    gid: Optional[int]
    uid: Optional[int]


# The C types _posixsubprocess converts to (Linux, LP64: 32-bit int and uid_t/gid_t,
# 64-bit long).
_INT_MAX = 2**31 - 1
_LONG_MAX = 2**63 - 1
_ID_MAX = 2**32 - 1


def _c_int(value: Any) -> int:
    """``value`` as ``_posixsubprocess.fork_exec`` takes a C ``int`` argument (``umask``,
    ``process_group``), with the errors this Python's version of it raises."""
    if sys.version_info < (3, 10):
        if isinstance(value, float):
            raise TypeError("integer argument expected, got float")
        try:
            number = operator.index(value)
        except TypeError:
            raise TypeError(f"an integer is required (got type {type(value).__name__})") from None
    else:
        number = operator.index(value)
    if sys.version_info >= (3, 12):
        if not -_INT_MAX - 1 <= number <= _INT_MAX:
            raise OverflowError("Python int too large to convert to C int")
    elif not -_LONG_MAX - 1 <= number <= _LONG_MAX:
        raise OverflowError("Python int too large to convert to C long")
    elif not -_INT_MAX - 1 <= number <= _INT_MAX:
        raise OverflowError(f"signed integer is {'greater than maximum' if number > 0 else 'less than minimum'}")
    return number


def _process_group(value: Any) -> Optional[int]:
    """The process group to join (3.11+), as ``fork_exec`` takes it; None: stay."""
    if value is None:
        return None
    if sys.version_info[:2] == (3, 12):
        # 3.12 reads it as a C long and keeps the low 32 bits (pid_t).
        number = operator.index(value)
        if not -_LONG_MAX - 1 <= number <= _LONG_MAX:
            raise OverflowError("Python int too large to convert to C long")
        number = (number + _INT_MAX + 1) % 2**32 - _INT_MAX - 1
    else:
        number = _c_int(value)
    return number if number >= 0 else None


def _id_range_error(number: int, kind: str) -> Optional[OverflowError]:
    """The error ``_Py_Uid_Converter``/``_Py_Gid_Converter`` give a non-negative id
    (``kind``: "uid" or "gid") that does not fit, or None. CPython reports a value that
    fits a long but not an id as "less than minimum"."""
    if number > _LONG_MAX:
        return OverflowError(f"{kind} is greater than maximum")
    if number > _ID_MAX:
        return OverflowError(f"{kind} is less than minimum")
    return None


def _fds_to_keep(pass_fds: Any) -> list[int]:
    """``pass_fds`` as Popen hands it to fork_exec (ints, sorted, no duplicates), with
    fork_exec's check."""
    fds = sorted({int(fd) for fd in pass_fds}) if pass_fds else []
    if fds and (fds[0] < 0 or fds[-1] > _INT_MAX):
        raise ValueError("bad value(s) in fds_to_keep")
    return fds


def _check_id_ranges(groups: Optional[list[int]], gid: Optional[int], uid: Optional[int]) -> None:
    """fork_exec's range checks on the credentials ``_credentials`` accepted, in its order."""
    if groups is not None and any(_id_range_error(g, "gid") for g in groups):
        raise ValueError("invalid group id")
    for number, kind in ((gid, "gid"), (uid, "uid")):
        error = None if number is None else _id_range_error(number, kind)
        if error is not None:
            raise error


def _convert_options(kwargs: dict[str, Any]) -> Optional[_Options]:
    """The options for these ``Popen`` keywords, or ``None`` to delegate."""
    options = dict(NATIVE_OPTIONS)
    for name, value in kwargs.items():
        if name in NATIVE_OPTIONS:
            options[name] = value
        elif name not in DELEGATED_OPTIONS or value != DELEGATED_OPTIONS[name]:
            # A delegated option, or an unknown keyword (Popen raises TypeError for it).
            return None
    # Popen's first check among these; 3.9's Popen has no pipesize (a TypeError above).
    pipesize = options.get("pipesize", -1)
    if pipesize is None:
        pipesize = -1
    if not isinstance(pipesize, int):
        raise TypeError("pipesize must be an integer")
    close_fds = bool(options["close_fds"])
    pass_fds = options["pass_fds"]
    if pass_fds and not close_fds:
        warnings.warn("pass_fds overriding close_fds.", RuntimeWarning, stacklevel=5)
        close_fds = True
    groups, gid, uid = _credentials(options["user"], options["group"], options["extra_groups"])
    # What _posixsubprocess.fork_exec checks, in its order.
    restore_signals = options["restore_signals"]
    start_new_session = options["start_new_session"]
    if sys.version_info < (3, 12):
        # C ints before 3.12, any object (a truth value) since.
        restore_signals = _c_int(restore_signals)
        start_new_session = _c_int(start_new_session)
    process_group = _process_group(options.get("process_group"))
    umask = _c_int(options["umask"])
    fds_to_keep = _fds_to_keep(pass_fds)
    _check_id_ranges(groups, gid, uid)
    cwd = options["cwd"]
    clone_path = umask >= 0 or groups is not None or gid is not None or uid is not None
    if not clone_path and ((cwd is not None and not _CAN_CHDIR) or (close_fds and not _CAN_CLOSE_FDS)):
        # This libc lacks the posix_spawn extension the option needs (the clone path
        # does these itself).
        return None
    return _Options(
        executable=options["executable"],
        env=options["env"],
        cwd=cwd,
        close_fds=close_fds,
        fds_to_keep=fds_to_keep,
        start_new_session=bool(start_new_session),
        process_group=process_group,
        restore_signals=bool(restore_signals),
        # Popen hands it to fcntl(), which passes on the low 32 bits of its int value (the
        # kernel reads an unsigned int); operator.index: an int subclass's own & is not used.
        pipe_size=operator.index(pipesize) & 0xFFFFFFFF if pipesize > 0 else None,
        umask=umask if umask >= 0 else None,
        groups=groups,
        gid=gid,
        uid=uid,
    )


# No keywords at all is the common case: converted once.
_NO_OPTIONS = _convert_options({})


def plan_native(
    args: Any, shell: bool, stdin: Any, stdout: Any, stderr: Any, kwargs: dict[str, Any]
) -> Optional[NativeSpawn]:
    """The native spawn for these ``Popen`` arguments, or ``None`` to delegate."""
    if subprocess.Popen is not _ORIGINAL_POPEN:
        return None
    if _STDOUT_CHECKED_FIRST and stdout is subprocess.STDOUT:
        raise ValueError("STDOUT can only be used for stderr")
    options = _convert_options(kwargs) if kwargs else _NO_OPTIONS
    if options is None:
        return None

    # Popen's normalisation of args (subprocess._execute_child).
    if isinstance(args, (str, bytes)):
        args = [args]
    elif isinstance(args, os.PathLike):
        if shell:
            raise TypeError("path-like args is not allowed when shell is true")
        args = [args]
    else:
        args = list(args)
    executable = options.executable
    if shell:
        args = ["/bin/sh", "-c", *args]
        if executable:
            args[0] = executable
    if executable is None:
        executable = args[0]

    env = options.env
    cwd = options.cwd
    return NativeSpawn(
        os.fsencode(executable),
        [os.fsencode(a) for a in args],
        None if env is None else _env_list(env),
        None if cwd is None else os.fsencode(cwd),
        _stdio(stdin),
        _stdio(stdout),
        _stdio(stderr),
        options.close_fds,
        options.fds_to_keep,
        options.start_new_session,
        options.process_group,
        options.restore_signals,
        options.pipe_size,
        executable,
        cwd,
        options.umask,
        options.groups,
        options.gid,
        options.uid,
    )


def popen_delegated(
    args: Any, shell: bool, stdin: Any, stdout: Any, stderr: Any, kwargs: dict[str, Any]
) -> subprocess.Popen[bytes]:
    """Spawns through the standard library, for options the core cannot honour."""
    return subprocess.Popen(
        args, shell=shell, stdin=stdin, stdout=stdout, stderr=stderr, universal_newlines=False, bufsize=0, **kwargs
    )
