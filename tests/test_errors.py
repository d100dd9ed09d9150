"""Bad input: fastspawn must raise what stock asyncio raises (type, errno, message,
filename), and leak nothing doing it."""

from __future__ import annotations

import asyncio
import pathlib
import sys
from asyncio.subprocess import PIPE
from typing import Any, Callable, Optional

import pytest
from procs import open_fds, zombie_children

from conftest import IMPLS, Impl

Call = Callable[[], Any]


def describe(exc: BaseException) -> tuple[Any, ...]:
    return (
        type(exc),
        getattr(exc, "errno", None),
        str(exc),
        getattr(exc, "filename", None),
    )


def outcome(impl_name: str, make: Callable[[], Any]) -> Optional[tuple[Any, ...]]:
    async def main() -> Optional[tuple[Any, ...]]:
        try:
            proc = await make()
        except BaseException as exc:
            return describe(exc)
        await proc.communicate()
        return None

    return IMPLS[impl_name].run(main())


def exec_(*args: Any, **kwargs: Any) -> Callable[[], Any]:
    return lambda: asyncio.create_subprocess_exec(*args, **kwargs)


def shell(cmd: Any, **kwargs: Any) -> Callable[[], Any]:
    return lambda: asyncio.create_subprocess_shell(cmd, **kwargs)


class KeysRaise(dict[str, str]):
    def keys(self) -> Any:
        raise RuntimeError("no keys")


class KeysNotIterable(dict[str, str]):
    def keys(self) -> Any:
        return 5


class ValuesShort(dict[str, str]):
    def values(self) -> Any:
        return []


class NoLen:
    def keys(self) -> list[str]:
        return ["A"]

    def __getitem__(self, key: str) -> str:
        return "1"


# Popen's os.posix_spawn path: a program path with a slash, nothing to close (close_fds=False;
# from 3.13 also the default) and no option fork_exec would need.
POSIX_SPAWN_PATH = {"close_fds": False}

CASES: dict[str, Callable[[], Any]] = {
    "missing program": exec_("definitely-not-a-program"),
    "missing absolute program": exec_("/nonexistent/prog"),
    "missing program, env PATH": exec_("ls", env={"PATH": "/nonexistent"}),
    "not executable": exec_("/etc/hostname"),
    "directory as program": exec_("/tmp"),
    "missing cwd": exec_("true", cwd="/nonexistent-dir"),
    "missing cwd (Path)": exec_("true", cwd=pathlib.Path("/nonexistent-dir")),
    "cwd is a file": exec_("true", cwd="/etc/hostname"),
    "NUL in program": exec_("tr\0ue"),
    "NUL in argument": exec_("echo", "a\0b"),
    "NUL in env value": exec_("true", env={"A": "b\0c"}),
    "NUL in env name": exec_("true", env={"A\0": "b"}),
    "= in env name": exec_("true", env={"A=B": "c"}),
    "NUL in cwd": exec_("true", cwd="/t\0mp"),
    "int argument": exec_("echo", 5),
    "None argument": exec_("echo", None),
    "int program": exec_(5),
    "int env value": exec_("true", env={"A": 1}),
    "int cwd": exec_("true", cwd=1.5),
    "bad stdout fd": exec_("true", stdout=12345),
    "stdout without fileno": exec_("true", stdout=object()),
    "universal_newlines": exec_("true", universal_newlines=True),
    "text": exec_("true", text=True),
    "encoding": exec_("true", encoding="utf-8"),
    "errors": exec_("true", errors="strict"),
    "bufsize": exec_("true", bufsize=1),
    "shell=True on exec": exec_("true", shell=True),
    "shell cmd not a string": shell(["echo", "hi"]),
    "shell=False on shell": shell("true", shell=False),
    "unknown keyword": exec_("true", no_such_option=1),
    "startupinfo": exec_("true", startupinfo=object()),
    "creationflags": exec_("true", creationflags=1),
    "negative pass_fds": exec_("true", pass_fds=(-1,)),
    "unknown user": exec_("true", user="no-such-user-xyz"),
    "negative user": exec_("true", user=-1),
    "float user": exec_("true", user=1.5),
    "unknown group": exec_("true", group="no-such-group-xyz"),
    "negative group": exec_("true", group=-2),
    "float group": exec_("true", group=1.5),
    "extra_groups string": exec_("true", extra_groups="abc"),
    "extra_groups float": exec_("true", extra_groups=[1.5]),
    "extra_groups negative": exec_("true", extra_groups=[-3]),
    "str umask": exec_("true", umask="022"),
    "float umask": exec_("true", umask=0.5),
    "None umask": exec_("true", umask=None),
    # A C int: Popen's own overflow errors (their wording changed in 3.12).
    # setpgid fails in the child: an OSError without a filename (3.9/3.10: no keyword).
    "process_group of another session": exec_("true", process_group=1),
    "process_group 0 of a new session": exec_("true", start_new_session=True, process_group=0),
    "process_group 2**40": exec_("true", process_group=2**40),
    "process_group float": exec_("true", process_group=1.5),
    "restore_signals None": exec_("true", restore_signals=None),
    "start_new_session str": exec_("true", start_new_session="x"),
    "pass_fds 2**31": exec_("true", pass_fds=(2**31,)),
    "user 2**32": exec_("true", user=2**32),
    "user 2**63": exec_("true", user=2**63),
    "group 2**40": exec_("true", group=2**40),
    "extra_groups 2**40": exec_("true", extra_groups=[2**40]),
    "bad group and bad user": exec_("true", group=2**40, user=2**40),
    # Popen's order changed in 3.11: the descriptors first before, the credentials first since.
    "stdout without fileno, negative user": exec_("true", stdout=object(), user=-1),
    "NUL in environment, huge uid": exec_("true", env={"A": "b\0"}, user=2**40),
    "illegal environment name, huge umask": exec_("true", env={"A=": "b"}, umask=2**40),
    "int in PATH, huge pass_fds": exec_("true", env={"PATH": 5}, pass_fds=(2**31,)),
    "NUL in argument, huge extra group": exec_("echo", "a\0b", extra_groups=[2**40]),
    "umask 2**31": exec_("true", umask=2**31),
    "umask 2**40": exec_("true", umask=2**40),
    "umask -2**40": exec_("true", umask=-(2**40)),
    "missing program, with umask": exec_("no-such-program-xyz", umask=0o22),
    "missing cwd, with umask": exec_("true", cwd="/nonexistent-dir", umask=0o22),
    "not executable, with user": exec_("/etc/hostname", user=0),
    # Popen checks pipesize's type whether or not a pipe is made (3.9: no such keyword).
    "float pipesize": exec_("true", stdout=asyncio.subprocess.PIPE, pipesize=1.5),
    "str pipesize, no pipe": exec_("true", pipesize="4096"),
    # -2 for stdin/stdout: a bad descriptor for the child (3.13+ refuses stdout=STDOUT first).
    "stdin=STDOUT": exec_("true", stdin=asyncio.subprocess.STDOUT),
    "stdout=STDOUT": exec_("true", stdout=asyncio.subprocess.STDOUT),
    "stdout=STDOUT, float pipesize": exec_("true", stdout=asyncio.subprocess.STDOUT, pipesize=1.5),
    "stdin=STDOUT, missing program": exec_("no-such-program-xyz", stdin=asyncio.subprocess.STDOUT),
    "stdin=STDOUT, NUL in argument": exec_("echo", "a\0b", stdin=asyncio.subprocess.STDOUT),
    # Each argument is refused for a NUL byte as it is converted, before the next one.
    "NUL in argument, then an int": exec_("echo", "a\0b", 7),
    "NUL in program, then an int argument": exec_("tr\0ue", 7),
    "NUL in argument, int env value": exec_("echo", "\0", env={"A": 1}),
    "env not a mapping": exec_("true", env=5),
    # os.posix_spawn reads env as a mapping (len, keys(), values()) and words some errors its way.
    "NUL in program, posix_spawn path": exec_("/bin/tr\0ue", **POSIX_SPAWN_PATH),
    "NUL in bytes program, posix_spawn path": exec_(b"/bin/tr\0ue", **POSIX_SPAWN_PATH),
    "NUL in program, int argument, posix_spawn path": exec_("/bin/tr\0ue", 7, **POSIX_SPAWN_PATH),
    "NUL in argument, then an int, posix_spawn path": exec_("/bin/echo", "a\0b", 7, **POSIX_SPAWN_PATH),
    "empty argv[0], posix_spawn path": exec_("", executable="/bin/true", **POSIX_SPAWN_PATH),
    "empty env name, posix_spawn path": exec_("/bin/true", env={"": "x"}, **POSIX_SPAWN_PATH),
    "empty env name": exec_("/bin/true", env={"": "x"}),
    "leading = in env name, posix_spawn path": exec_("/bin/true", env={"=x": "1"}, **POSIX_SPAWN_PATH),
    "env keys() raises, posix_spawn path": exec_("/bin/true", env=KeysRaise(A="1"), **POSIX_SPAWN_PATH),
    "env keys() not iterable, posix_spawn path": exec_("/bin/true", env=KeysNotIterable(A="1"), **POSIX_SPAWN_PATH),
    "env values() too short, posix_spawn path": exec_("/bin/true", env=ValuesShort(A="1"), **POSIX_SPAWN_PATH),
    "env without len(), posix_spawn path": exec_("/bin/true", env=NoLen(), **POSIX_SPAWN_PATH),
    "env a list, posix_spawn path": exec_("/bin/true", env=[("A", "1")], **POSIX_SPAWN_PATH),
    "env not a mapping, posix_spawn path": exec_("/bin/true", env=5, **POSIX_SPAWN_PATH),
    "int env value, posix_spawn path": exec_("/bin/true", env={"A": 1}, **POSIX_SPAWN_PATH),
}

ALL_VERSIONS = {(3, 11), (3, 12), (3, 13), (3, 14), (3, 15)}


# Cases some Python versions accept: from 3.12, restore_signals and start_new_session
# are truth values, and 3.12 (only) cuts process_group to 32 bits. There fastspawn must
# accept them too.
ACCEPTED_BY = {
    "process_group 2**40": {(3, 12)},
    "restore_signals None": {(3, 12), (3, 13), (3, 14), (3, 15)},
    "start_new_session str": {(3, 12), (3, 13), (3, 14), (3, 15)},
    # Before 3.13 the default close_fds=True keeps Popen off its posix_spawn path, and
    # fork_exec takes an empty name; os.posix_spawn takes a leading "=".
    "empty env name": {(3, 11), (3, 12)},
    "leading = in env name, posix_spawn path": ALL_VERSIONS,
}


@pytest.mark.parametrize("case", list(CASES))
def test_same_exception_as_asyncio(case: str) -> None:
    make = CASES[case]
    expected = outcome("asyncio", make)
    if sys.version_info[:2] in ACCEPTED_BY.get(case, set()):
        assert expected is None, f"stock asyncio now rejects {case!r}: {expected}"
    else:
        assert expected is not None, f"stock asyncio accepted {case!r}; the case is wrong"
    fds = open_fds()
    got = outcome("fastspawn", make)
    assert got == expected
    assert open_fds() == fds
    assert zombie_children() == []


class Index:
    """Has __index__ only."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


# Popen skips fork_exec (and so its conversions) for a program path with a slash, no
# descriptors to close (close_fds=False; on 3.13 also the default) and no other option
# fork_exec needs: there a nonsense umask or flag is compared or taken as a truth value.
# Which path a case takes depends on the version, so only the outcomes are compared.
SHORTCUT_CASES: dict[str, dict[str, Any]] = {
    "str umask": {"umask": "022"},
    "huge negative umask": {"umask": -(2**40)},
    "negative __index__ umask": {"umask": Index(-5)},
    "huge umask": {"umask": 2**40},
    "None restore_signals": {"restore_signals": None},
    "huge restore_signals": {"restore_signals": 2**40},
    "empty start_new_session": {"start_new_session": ""},
    "None start_new_session": {"start_new_session": None},
    "float start_new_session": {"start_new_session": 0.0},
}


@pytest.mark.parametrize("close_fds", [False, True])
@pytest.mark.parametrize("case", list(SHORTCUT_CASES))
def test_same_outcome_as_asyncio_on_popens_posix_spawn_path(case: str, close_fds: bool) -> None:
    make = exec_("/bin/true", close_fds=close_fds, **SHORTCUT_CASES[case])
    assert outcome("fastspawn", make) == outcome("asyncio", make)


def test_an_exception_in_connection_made_is_reported_and_the_spawn_stands(impl: Impl) -> None:
    """asyncio calls ``connection_made`` from the loop: a protocol failing there (here the
    StreamReader refusing ``limit="x"``) is reported to the loop's exception handler, and
    the process runs (fastspawn raised from the spawn, the child already started)."""
    loop = impl.factory()
    reported: list[BaseException] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context["exception"]))

    async def main() -> tuple[Any, Optional[int]]:
        # Its stdout closes before it exits: asyncio 3.11's protocol, whose connection_made
        # failed, would close its transport twice if the exit came first.
        script = "echo hi; exec >&-; sleep 0.1"
        proc = await asyncio.create_subprocess_exec("sh", "-c", script, stdout=PIPE, limit="x")
        return await proc.communicate(), await proc.wait()

    try:
        assert loop.run_until_complete(main()) == ((None, None), 0)
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
    assert [type(exc) for exc in reported] == [TypeError]
