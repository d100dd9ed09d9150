"""From ``subprocess.Popen`` keyword arguments to a native spawn, or a reason not to.

asyncio forwards every extra keyword of ``loop.subprocess_exec`` to ``Popen``. The ones
the core can express with posix_spawn are converted here exactly as ``subprocess``
converts them (same types accepted, same errors). A spawn that asks for anything else is
*delegated*: it runs through ``subprocess.Popen`` itself, so it behaves exactly as the
standard library does — an option is never silently ignored.
"""

from __future__ import annotations

import asyncio
import inspect
import operator
import os
import resource
import signal
import subprocess
import sys
import warnings
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple, Optional

from ._private.hooks import popen_posix_spawn_switches
from ._versions import CHANGES

__all__ = ["DELEGATED_OPTIONS", "NATIVE_OPTIONS", "NativeSpawn", "plan_native"]

# fastspawn's own keywords, no Popen equivalent: what the child sets up for itself
# between clone and exec, in place of a preexec_fn (see _child_setup). Never passed to
# Popen: a spawn that goes through it refuses them (see popen_kwargs).
CHILD_SETUP_OPTIONS: Mapping[str, Any] = MappingProxyType(
    {"rlimits": None, "pdeathsig": None, "subreaper": False, "cgroup": None}
)

# Popen keywords honoured by the core, with the value that means "not asked for"
# (read-only: what fastspawn does is not for callers to change).
NATIVE_OPTIONS: Mapping[str, Any] = MappingProxyType(
    {
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
        "pipesize": -1,
        "process_group": None,
        **CHILD_SETUP_OPTIONS,
    }
)

# Popen keywords that posix_spawn cannot express; any value but the default delegates.
DELEGATED_OPTIONS: Mapping[str, Any] = MappingProxyType(
    {
        "preexec_fn": None,  # arbitrary Python code between fork and exec
        "startupinfo": None,  # Windows only: Popen raises
        "creationflags": 0,  # Windows only: Popen raises
    }
)

# Popen 3.13+ refuses stdout=STDOUT before it looks at any other keyword. Earlier versions
# (and every version for stdin=STDOUT) take -2 for a descriptor, which the child's dup2
# finds invalid (the core reports the same EBADF at the same point).
_STDOUT_CHECKED_FIRST = CHANGES["stdout_stdout_checked_first"].here
# fcntl() warns (DeprecationWarning) for an int argument outside C's int/unsigned int
# range, which it keeps cutting to 32 bits, from 3.15 on.
_FCNTL_WARNS_OUT_OF_RANGE = CHANGES["fcntl_warns_out_of_range"].here

# Captured at import: when code later replaces subprocess.Popen (a test's mock.patch, a
# monkeypatching library), spawns go through the replacement, as asyncio's would.
_ORIGINAL_POPEN = subprocess.Popen


class NativeSpawn(NamedTuple):
    """One native spawn: the request ``_core.spawn`` reads, field by field, by name."""

    #: The program to exec: a path, or a bare name looked up in ``PATH``.
    program: bytes
    #: The arguments, ``argv[0]`` included.
    argv: list[bytes]
    #: ``b"NAME=value"`` entries; None inherits this process's environment.
    env: Optional[list[bytes]]
    #: The directories a bare ``program`` is looked up in, as Popen reads them
    #: (``os.get_exec_path(env)``, joined with ``os.pathsep``); None for a path.
    exec_path: Optional[bytes]
    #: The directory to change to in the child; None stays.
    cwd: Optional[bytes]
    #: None (inherit), -1 (a new pipe), -2 (for stderr: as stdout), -3 (/dev/null) or
    #: an open descriptor; likewise ``stdout`` and ``stderr``.
    stdin: Optional[int]
    stdout: Optional[int]
    stderr: Optional[int]
    #: Close every descriptor but 0-2 and ``pass_fds`` in the child.
    close_fds: bool
    #: Descriptors the child keeps (sorted, unique).
    pass_fds: list[int]
    #: ``setsid()`` in the child.
    start_new_session: bool
    #: The process group to join (0: a new one); None stays.
    process_group: Optional[int]
    #: Reset SIGPIPE and SIGXFSZ to their defaults in the child.
    restore_signals: bool
    #: ``F_SETPIPE_SZ`` for every pipe created (0 to 2**32-1); None leaves the default.
    pipe_size: Optional[int]
    #: The ``filename`` of the OSError an exec failure raises (the executable as given).
    program_name: object
    #: The ``filename`` of the OSError a cwd failure raises (cwd as given).
    cwd_name: object
    #: The child's umask; None keeps this process's.
    umask: Optional[int]
    #: Supplementary groups (setgroups); None keeps this process's.
    groups: Optional[list[int]]
    #: ``setregid(gid, gid)``; None keeps it.
    gid: Optional[int]
    #: ``setreuid(uid, uid)``; None keeps it.
    uid: Optional[int]
    #: ``(resource, soft, hard)`` for ``setrlimit`` in the child (before the ids
    #: change), in order; soft and hard as ``rlim_t`` (RLIM_INFINITY: 2**64-1).
    rlimits: Optional[list[tuple[int, int, int]]]
    #: The signal the child gets when this process dies (PR_SET_PDEATHSIG); None: none.
    pdeathsig: Optional[int]
    #: Make the child a subreaper (PR_SET_CHILD_SUBREAPER): orphaned descendants stay
    #: in its subtree.
    subreaper: bool
    #: A cgroup v2 directory (fs-encoded): the core makes a fresh leaf in it
    #: (``fastspawn-<pid>-<n>``), which the child joins before exec; None: none.
    cgroup: Optional[bytes] = None
    #: The ``filename`` of the OSError a failure to make or join the leaf raises (the
    #: directory as given).
    cgroup_name: object = None


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


# What os.fsencode encodes a str with (it reads them once too, when os is imported).
_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()


def _fs_converted(value: Any) -> bytes:
    """``value`` as ``PyUnicode_FSConverter`` converts an argument for exec: encoded,
    then refused if it holds a NUL byte, before the next argument is looked at."""
    # A str, the common case, encoded as os.fsencode would, without its Python frame.
    encoded = value.encode(_FS_ENCODING, _FS_ERRORS) if type(value) is str else os.fsencode(value)
    if b"\0" in encoded:
        raise ValueError("embedded null byte")
    return encoded


# Popen's os.posix_spawn path (``_posix_spawn``) hands executable, args and env, as given,
# to os.posix_spawn, whose C conversions differ from those of the fork_exec path: the
# program is a path_t, and env is read as a mapping (len, keys(), values()), refusing an
# empty name or one with "=" after its first byte, but not a leading "=".
# A str program with a NUL byte: PyUnicode_FSConverter's message before 3.13, path_t's since.
_POSIX_SPAWN_STR_PATH_NUL = (
    "posix_spawn: embedded null character in path"
    if CHANGES["posix_spawn_path_nul_message"].here
    else "embedded null byte"
)
_NOT_A_MAPPING = "posix_spawn: environment must be a mapping object" + (
    " or None" if CHANGES["posix_spawn_env_or_none"].here else ""
)
# PyMapping_Keys/Values on a method returning a non-iterable: reworded in 3.15.
_NON_ITERABLE_REWORDED = CHANGES["mapping_keys_non_iterable_reworded"].here


_INTERNAL_FOLDERS = tuple(
    os.path.dirname(module.__file__) + os.sep for module in (asyncio, sys.modules[__package__]) if module.__file__
)


def warn_at_caller(message: str, category: type[Warning]) -> None:
    """Warns at the first frame outside fastspawn and asyncio: the line of the user's code
    that asked for the spawn, at whatever call depth (``Popen``'s own warnings point into
    ``subprocess.py``, which says less)."""
    frame = inspect.currentframe()
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_INTERNAL_FOLDERS):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


def _fully_qualified_name(tp: type) -> str:
    """The type's name as C error messages give it with ``%T`` (3.13+)."""
    if tp.__module__ in ("builtins", "__main__"):
        return tp.__qualname__
    return f"{tp.__module__}.{tp.__qualname__}"


def _posix_spawn_path(executable: Any) -> bytes:
    """os.posix_spawn's ``path`` argument (the program has a slash, so it is a str,
    bytes or PathLike)."""
    path = os.fspath(executable)
    encoded = os.fsencode(path)
    if b"\0" in encoded:
        raise ValueError(
            _POSIX_SPAWN_STR_PATH_NUL if isinstance(path, str) else "posix_spawn: embedded null character in path"
        )
    return encoded


def _mapping_method_list(mapping: Any, name: str) -> list[Any]:
    """``PyMapping_Keys``/``PyMapping_Values``: a dict's own, else the method's output as
    a list."""
    if type(mapping) is dict:
        return list(mapping.keys() if name == "keys" else mapping.values())
    output = getattr(mapping, name)()
    if type(output) is list:
        return output
    try:
        iterator = iter(output)
    except TypeError:
        if _NON_ITERABLE_REWORDED:
            kind, got = _fully_qualified_name(type(mapping)), _fully_qualified_name(type(output))
            raise TypeError(f"{kind}.{name}() must return an iterable, not {got}") from None
        kind, got = _tp_name(type(mapping)), _tp_name(type(output))
        raise TypeError(f"{kind}.{name}() returned a non-iterable (type {got})") from None
    return list(iterator)


def _posix_spawn_env_list(env: Any) -> list[bytes]:
    """os.posix_spawn's ``parse_envlist``, with its errors in its order."""
    count = len(env)
    keys = _mapping_method_list(env, "keys")
    values = _mapping_method_list(env, "values")
    env_list = []
    for position in range(count):
        # Indexed as PyList_GetItem does: IndexError where keys() or values() fell short.
        key, value = keys[position], values[position]
        key_bytes = _fs_converted(key)
        value_bytes = _fs_converted(value)
        if not key_bytes or b"=" in key_bytes[1:]:
            raise ValueError("illegal environment variable name")
        env_list.append(key_bytes + b"=" + value_bytes)
    return env_list


def _posix_spawn_conversions(
    executable: Any, args: list[Any], env: Any
) -> tuple[bytes, list[bytes], Optional[list[bytes]]]:
    """``(program, argv, env_list)`` as os.posix_spawn converts them, in its order."""
    program = _posix_spawn_path(executable)
    # PyMapping_Check: its type has __getitem__.
    if env is not None and not hasattr(type(env), "__getitem__"):
        raise TypeError(_NOT_A_MAPPING)
    argv = [_fs_converted(a) for a in args]
    if not argv[0]:
        raise ValueError("posix_spawn: argv first element cannot be empty")
    return program, argv, None if env is None else _posix_spawn_env_list(env)


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
    """The keyword arguments of one spawn after ``Popen.__init__``'s checks; what
    ``_execute_child`` and ``fork_exec`` check later is still raw (see ``_ForkExec``)."""

    executable: Any
    env: Any
    cwd: Any
    close_fds: bool
    pass_fds: Any
    start_new_session: Any
    process_group: Any
    restore_signals: Any
    pipe_size: Optional[int]
    umask: Any
    groups: Optional[list[int]]
    gid: Optional[int]
    uid: Optional[int]


class _ForkExec(NamedTuple):
    """The options ``_execute_child``/``fork_exec`` convert, converted."""

    fds_to_keep: list[int]
    start_new_session: bool
    process_group: Optional[int]
    restore_signals: bool
    umask: Optional[int]


# The C types _posixsubprocess converts to (Linux, LP64: 32-bit int and uid_t/gid_t,
# 64-bit long).
_INT_MAX = 2**31 - 1
_LONG_MAX = 2**63 - 1
_ID_MAX = 2**32 - 1


def _tp_name(tp: type) -> str:
    """The type's name as C error messages give it (``tp_name``): qualified by its module
    for a static type, as its class statement named it for a heap type."""
    if tp.__flags__ & (1 << 9) or tp.__module__ == "builtins":  # Py_TPFLAGS_HEAPTYPE
        return tp.__name__
    return f"{tp.__module__}.{tp.__qualname__}"


def _c_int(value: Any) -> int:
    """``value`` as ``_posixsubprocess.fork_exec`` takes a C ``int`` argument (``umask``,
    ``process_group``), with the errors this Python's version of it raises."""
    number = operator.index(value)
    if CHANGES["fork_exec_c_int_clinic"].here:
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
    if CHANGES["process_group_c_long"].here:
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
    # Popen's first check among these.
    pipesize = options.get("pipesize", -1)
    if pipesize is None:
        pipesize = -1
    if not isinstance(pipesize, int):
        raise TypeError("pipesize must be an integer")
    if pipesize > 0 and not -_INT_MAX - 1 <= pipesize <= 2 * _INT_MAX + 1 and _FCNTL_WARNS_OUT_OF_RANGE:
        # Popen hands it to fcntl(), which from 3.15 warns when it must cut the value.
        warn_at_caller("integer value out of range", DeprecationWarning)
    close_fds = bool(options["close_fds"])
    pass_fds = options["pass_fds"]
    if pass_fds and not close_fds:
        warn_at_caller("pass_fds overriding close_fds.", RuntimeWarning)
        close_fds = True
    groups, gid, uid = _credentials(options["user"], options["group"], options["extra_groups"])
    return _Options(
        executable=options["executable"],
        env=options["env"],
        cwd=options["cwd"],
        close_fds=close_fds,
        pass_fds=pass_fds,
        start_new_session=options["start_new_session"],
        process_group=options.get("process_group"),
        restore_signals=options["restore_signals"],
        # Popen hands it to fcntl(), which passes on the low 32 bits of its int value (the
        # kernel reads an unsigned int); operator.index: an int subclass's own & is not used.
        pipe_size=operator.index(pipesize) & 0xFFFFFFFF if pipesize > 0 else None,
        umask=options["umask"],
        groups=groups,
        gid=gid,
        uid=uid,
    )


def _low_fd(stdio: tuple[Any, Any, Any]) -> bool:
    """Whether Popen's p2cread/c2pwrite/errwrite include 0-2: PIPE and DEVNULL become new
    descriptors (> 2); stderr=STDOUT without a stdout pipe becomes the parent's stdout."""
    _, stdout, stderr = stdio
    return any(isinstance(v, int) and 0 <= v <= 2 for v in stdio) or (stderr == subprocess.STDOUT and stdout is None)


def _takes_posix_spawn_shortcut(options: _Options, executable: Any, stdio: tuple[Any, Any, Any]) -> bool:
    """Whether ``Popen._execute_child`` would call ``os.posix_spawn`` rather than
    ``fork_exec`` (its condition, evaluated in its order, so its errors come too); that
    path converts none of ``fork_exec``'s C ints."""
    if options is _NO_OPTIONS and not _NO_OPTIONS_MAY_SHORTCUT and type(executable) in (str, bytes):
        # The defaults rule that path out whatever the executable, and os.path.dirname
        # can neither fail nor run code for a str or bytes: no need to ask it.
        return False
    return bool(
        _USE_POSIX_SPAWN
        and os.path.dirname(executable)
        and (not options.close_fds or _HAVE_POSIX_SPAWN_CLOSEFROM)
        and not options.pass_fds
        and options.cwd is None
        and not _low_fd(stdio)
        and not options.start_new_session
        and (-1 if options.process_group is None else options.process_group) == -1
        and options.gid is None
        and options.groups is None
        and options.uid is None
        and options.umask < 0
    )


def _fork_exec_options(options: _Options, shortcut: bool) -> _ForkExec:
    """The options ``fork_exec`` converts, with its errors in its order (before the
    ``args``/``cwd`` conversions and the credential range checks); none on Popen's
    ``os.posix_spawn`` path, which only takes ``restore_signals``' truth value."""
    if shortcut:
        return _ForkExec([], False, None, bool(options.restore_signals), None)
    restore_signals = options.restore_signals
    start_new_session = options.start_new_session
    if not CHANGES["fork_exec_flags_any_object"].here:
        # C ints before 3.12, any object (a truth value) since.
        restore_signals = _c_int(restore_signals)
        start_new_session = _c_int(start_new_session)
    fds = sorted({int(fd) for fd in options.pass_fds}) if options.pass_fds else []
    process_group = _process_group(options.process_group)
    umask = _c_int(options.umask)
    if fds and (fds[0] < 0 or fds[-1] > _INT_MAX):
        raise ValueError("bad value(s) in fds_to_keep")
    return _ForkExec(fds, bool(start_new_session), process_group, bool(restore_signals), umask if umask >= 0 else None)


# No keywords at all is the common case: converted once.
_NO_OPTIONS = _convert_options({})
assert _NO_OPTIONS is not None
_NO_FORK_EXEC = _fork_exec_options(_NO_OPTIONS, shortcut=False)
_USE_POSIX_SPAWN, _HAVE_POSIX_SPAWN_CLOSEFROM = popen_posix_spawn_switches()
# Whether, without keywords, Popen may take its os.posix_spawn path at all (the executable
# and the stdio decide the rest): the option half of _takes_posix_spawn_shortcut.
_NO_OPTIONS_MAY_SHORTCUT = bool(
    _USE_POSIX_SPAWN
    and (not _NO_OPTIONS.close_fds or _HAVE_POSIX_SPAWN_CLOSEFROM)
    and not _NO_OPTIONS.pass_fds
    and _NO_OPTIONS.cwd is None
    and not _NO_OPTIONS.start_new_session
    and _NO_OPTIONS.process_group is None
    and _NO_OPTIONS.gid is None
    and _NO_OPTIONS.groups is None
    and _NO_OPTIONS.uid is None
    and _NO_OPTIONS.umask < 0
)


def plan_native(
    args: Any, shell: bool, stdin: Any, stdout: Any, stderr: Any, kwargs: dict[str, Any]
) -> Optional[NativeSpawn]:
    """The native spawn for these ``Popen`` arguments, or ``None`` to delegate (the core
    may still answer that it cannot start it natively: see ``_spawn.spawn_transport``)."""
    if subprocess.Popen is not _ORIGINAL_POPEN:
        return None
    if _STDOUT_CHECKED_FIRST and stdout is subprocess.STDOUT:
        raise ValueError("STDOUT can only be used for stderr")
    options = _convert_options(kwargs) if kwargs else _NO_OPTIONS
    if options is None:
        return None

    # Popen's normalisation of args (subprocess._execute_child). A plain tuple or list, the
    # common case, skips the os.PathLike check (an ABC's isinstance), which it fails.
    if type(args) is tuple or type(args) is list:
        args = list(args)
    elif isinstance(args, (str, bytes)):
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

    # Popen takes the descriptors of stdin/stdout/stderr after the credentials (3.11+).
    stdio = (_stdio(stdin), _stdio(stdout), _stdio(stderr))
    env = options.env
    cwd = options.cwd
    # PEP 578: the event Popen raises before every spawn, with its values (args as
    # normalised above, cwd and env as given), before anything is converted or created,
    # so a hook that raises stops the spawn with nothing to clean up.
    sys.audit("subprocess.Popen", executable, args, cwd, env)
    # In Popen's order: the choice of path, then that path's conversions. Without options
    # it matters too: os.posix_spawn words some errors differently and reads env itself.
    if _takes_posix_spawn_shortcut(options, executable, stdio):
        fork_exec = _fork_exec_options(options, shortcut=True)
        program, argv, env_list = _posix_spawn_conversions(executable, args, env)
    else:
        # The environment list, fork_exec's conversions, then its executable and
        # arguments, each refused for a NUL byte before the next is converted.
        env_list = None if env is None else _env_list(env)
        fork_exec = _NO_FORK_EXEC if options is _NO_OPTIONS else _fork_exec_options(options, shortcut=False)
        program = _fs_converted(executable)
        argv = [_fs_converted(a) for a in args]
    cwd_bytes = None if cwd is None else os.fsencode(cwd)
    if options.groups is not None or options.gid is not None or options.uid is not None:
        # fork_exec converts the arguments, cwd and environment (refusing NUL bytes)
        # before the ids; the core would find NUL bytes only at the spawn.
        if any(b"\0" in item for item in (program, cwd_bytes or b"", *argv, *(env_list or ()))):
            raise ValueError("embedded null byte")
        _check_id_ranges(options.groups, options.gid, options.uid)
    rlimits, pdeathsig, subreaper, cgroup = _child_setup(kwargs)
    cgroup_name = kwargs.get("cgroup") if cgroup is not None else None
    # Whether this system can start it natively is the core's answer (_core.spawn
    # returns None, and _spawn delegates).
    return NativeSpawn(
        program=program,
        argv=argv,
        env=env_list,
        # os.path.dirname(program) is not empty exactly when program has a slash.
        exec_path=None if b"/" in program else os.fsencode(os.pathsep.join(os.get_exec_path(env))),
        cwd=cwd_bytes,
        stdin=stdio[0],
        stdout=stdio[1],
        stderr=stdio[2],
        close_fds=options.close_fds,
        pass_fds=fork_exec.fds_to_keep,
        start_new_session=fork_exec.start_new_session,
        process_group=fork_exec.process_group,
        restore_signals=fork_exec.restore_signals,
        pipe_size=options.pipe_size,
        program_name=executable,
        cwd_name=cwd,
        umask=fork_exec.umask,
        groups=options.groups,
        gid=options.gid,
        uid=options.uid,
        rlimits=rlimits,
        pdeathsig=pdeathsig,
        subreaper=subreaper,
        cgroup=cgroup,
        cgroup_name=cgroup_name,
    )


def popen_delegated(
    args: Any, shell: bool, stdin: Any, stdout: Any, stderr: Any, kwargs: dict[str, Any]
) -> subprocess.Popen[bytes]:
    """Spawns through the standard library, for options the core cannot honour."""
    kwargs = popen_kwargs(kwargs, _delegation_reason(kwargs))
    return subprocess.Popen(
        args, shell=shell, stdin=stdin, stdout=stdout, stderr=stderr, universal_newlines=False, bufsize=0, **kwargs
    )


# -- fastspawn's child setup (CHILD_SETUP_OPTIONS) -----------------------------------

# resource.prlimit on a pid that cannot exist (pids stay below pid_max, at most 2**22)
# converts and checks its arguments exactly as resource.setrlimit does, on every Python
# version, then fails with ESRCH, changing nothing.
_NO_SUCH_PID = 2**22
_RLIM_T = 2**64 - 1


def _rlimits(value: Any) -> Optional[list[tuple[int, int, int]]]:
    """``rlimits={resource: (soft, hard), ...}`` as the core takes it, refused with the
    errors ``resource.setrlimit`` gives for each entry (those it can tell before the
    spawn; the child reports the rest, such as a hard limit it may not raise)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"rlimits must be a mapping of resource to (soft, hard), not {type(value).__name__}")
    limits = []
    for resource_id, pair in value.items():
        pair = tuple(pair)
        try:
            resource.prlimit(_NO_SUCH_PID, resource_id, pair)
        except ProcessLookupError:
            pass
        # setrlimit converts each to a C long long and then to rlim_t (-1: RLIM_INFINITY).
        soft, hard = (operator.index(v) & _RLIM_T for v in pair)
        if soft > hard:
            raise ValueError("current limit exceeds maximum limit")  # setrlimit's EINVAL
        limits.append((operator.index(resource_id), soft, hard))
    return limits or None


def _pdeathsig(value: Any) -> Optional[int]:
    """``pdeathsig=signal.SIGKILL``: a signal number, checked as ``signal.signal`` does."""
    if value is None:
        return None
    number = operator.index(value)
    if not 0 < number < signal.NSIG:
        raise ValueError("signal number out of range")
    return number


def _cgroup(value: Any) -> Optional[bytes]:
    """``cgroup=``: a str, bytes or PathLike directory, converted as ``os.mkdir`` converts
    a path (TypeError for another type, ValueError for a NUL byte)."""
    return None if value is None else _fs_converted(os.fspath(value))


def _child_setup(
    kwargs: dict[str, Any],
) -> tuple[Optional[list[tuple[int, int, int]]], Optional[int], bool, Optional[bytes]]:
    """``(rlimits, pdeathsig, subreaper, cgroup)`` from these keywords, checked."""
    if not kwargs:
        return None, None, False, None
    rlimits = _rlimits(kwargs.get("rlimits"))
    pdeathsig = _pdeathsig(kwargs.get("pdeathsig"))
    return rlimits, pdeathsig, bool(kwargs.get("subreaper", False)), _cgroup(kwargs.get("cgroup"))


def _asked_for(name: str, value: Any) -> bool:
    return not (value is None or value is False or (name == "rlimits" and isinstance(value, Mapping) and not value))


def _delegation_reason(kwargs: dict[str, Any]) -> str:
    if subprocess.Popen is not _ORIGINAL_POPEN:
        return "subprocess.Popen is replaced"
    names = [
        f"{name}="
        for name, value in kwargs.items()
        if name not in NATIVE_OPTIONS and (name not in DELEGATED_OPTIONS or value != DELEGATED_OPTIONS[name])
    ]
    return f"because of {', '.join(names)}" if names else "the core cannot start it here"


def popen_kwargs(kwargs: dict[str, Any], reason: str) -> dict[str, Any]:
    """``kwargs`` for a spawn that Popen (or asyncio's own spawner) makes, for ``reason``:
    the child-setup keywords dropped, or TypeError if one asks for something, which
    nothing there can honour."""
    setup = [name for name in CHILD_SETUP_OPTIONS if name in kwargs]
    if not setup:
        return kwargs
    asked = [f"{name}=" for name in setup if _asked_for(name, kwargs[name])]
    if asked:
        raise TypeError(
            f"{', '.join(asked)} cannot be honoured: this spawn goes through subprocess.Popen ({reason}), "
            "which has no such option; fastspawn sets it up only when it spawns the child itself"
        )
    return {name: value for name, value in kwargs.items() if name not in CHILD_SETUP_OPTIONS}
