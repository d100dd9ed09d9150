"""The contract of ``_core.spawn``, driven directly: one request object read by field name
(``fastspawn._options.NativeSpawn`` documents the fields), each field doing what it says,
wrong names and types refused with TypeError, and None where the core cannot start the
request natively (which ``_spawn`` turns into a delegated ``Popen`` spawn)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
import types
from typing import Any, Optional

import pytest
from spawn_requests import native_request

from fastspawn import _core
from fastspawn._options import NativeSpawn

PIPE, STDOUT, DEVNULL = subprocess.PIPE, subprocess.STDOUT, subprocess.DEVNULL
IS_ROOT = os.geteuid() == 0


def request(script: str = "true", **fields: Any) -> NativeSpawn:
    """``/bin/sh -c script`` with stdout piped and no other option, ``fields`` replaced."""
    shell = {"program": b"/bin/sh", "argv": [b"sh", b"-c", script.encode()], "stdout": PIPE, "program_name": "/bin/sh"}
    return native_request(**{**shell, **fields})


def read_all(pipe: Optional[_core.ReadPipe]) -> bytes:
    """Everything left in ``pipe`` of a child that has exited."""
    assert pipe is not None
    data = b""
    while chunk := pipe.read(65536):
        data += chunk
    pipe.close()
    return data


def run(spawn_request: Any) -> tuple[int, str]:
    """Spawns ``spawn_request``, waits: ``(returncode, stdout)``."""
    spawned = _core.spawn(spawn_request)
    assert spawned is not None, "started natively"
    child, stdin, stdout, stderr = spawned
    for pipe in (stdin, stderr):
        if pipe is not None:
            pipe.close()
    code = child.wait()
    assert code is not None
    return code, read_all(stdout).decode()


# -- each field does what NativeSpawn says --------------------------------------------


def test_program_and_argv() -> None:
    spawn_request = request('echo "$0" "$1"', argv=[b"sh", b"-c", b'echo "$0" "$1"', b"zero", b"one"])
    assert run(spawn_request) == (0, "zero one\n")
    # A bare name is looked up in PATH.
    assert run(request("echo found", program=b"sh")) == (0, "found\n")


def test_env() -> None:
    assert run(request('echo "$FOO"', env=[b"FOO=bar"])) == (0, "bar\n")


def test_exec_path(tmp_path: Any) -> None:
    """A bare name is looked up in the request's exec_path only (never in the C
    environment, which another thread may be changing)."""
    script = tmp_path / "fastspawn-contract-probe"
    script.write_text("#!/bin/sh\necho probed\n")
    script.chmod(0o755)
    probe = request(program=script.name.encode(), argv=[script.name.encode()])
    assert run(probe._replace(exec_path=b"/nonexistent:" + os.fsencode(tmp_path))) == (0, "probed\n")
    with pytest.raises(FileNotFoundError):
        _core.spawn(probe)  # not in this process's PATH
    # A program with a slash is never looked up.
    assert run(request("echo direct", exec_path=b"/nonexistent")) == (0, "direct\n")


def test_popen_reads_path_from_os_environ(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through fastspawn, as through Popen, PATH is os.environ's (or env's)."""
    import asyncio

    import fastspawn

    script = tmp_path / "fastspawn-contract-probe"
    script.write_text("#!/bin/sh\necho probed\n")
    script.chmod(0o755)

    async def output(**kwargs: Any) -> bytes:
        proc = await fastspawn.create_subprocess_exec(script.name, stdout=PIPE, **kwargs)
        out, _ = await proc.communicate()
        return out

    assert asyncio.run(output(env={"PATH": str(tmp_path)})) == b"probed\n"
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert asyncio.run(output()) == b"probed\n"


def test_cwd() -> None:
    assert run(request("pwd", cwd=b"/tmp")) == (0, "/tmp\n")


def test_stdio() -> None:
    spawned = _core.spawn(request("read x; echo out:$x; echo err >&2", stdin=PIPE, stderr=PIPE))
    assert spawned is not None
    child, stdin, stdout, stderr = spawned
    assert stdin is not None
    stdin.write(b"in\n")
    stdin.close()
    assert child.wait() == 0
    assert (read_all(stdout), read_all(stderr)) == (b"out:in\n", b"err\n")
    # -2 for stderr: the same as stdout; -3: /dev/null.
    assert run(request("echo a; echo b >&2", stderr=STDOUT)) == (0, "a\nb\n")
    assert run(request("cat; echo done", stdin=DEVNULL)) == (0, "done\n")


def test_close_fds_and_pass_fds() -> None:
    r, w = os.pipe()
    os.set_inheritable(r, True)
    os.set_inheritable(w, True)
    try:
        script = f"for fd in {r} {w}; do [ -e /proc/self/fd/$fd ] && echo open || echo closed; done"
        assert run(request(script, pass_fds=[w])) == (0, "closed\nopen\n")
        assert run(request(script, close_fds=False)) == (0, "open\nopen\n")
    finally:
        os.close(r)
        os.close(w)


def test_start_new_session_and_process_group() -> None:
    assert run(request('[ "$(ps -o sid= -p $$)" -eq $$ ] && echo leader', start_new_session=True)) == (0, "leader\n")
    assert run(request('[ "$(ps -o pgid= -p $$)" -eq $$ ] && echo group', process_group=0)) == (0, "group\n")


def test_restore_signals() -> None:
    # SigIgn is a hex mask; SIGPIPE is signal 13, bit 12. Python ignores SIGPIPE.
    script = "grep SigIgn /proc/self/status | cut -f2"

    def sigpipe_ignored(restore: bool) -> bool:
        _, out = run(request(script, restore_signals=restore))
        return bool(int(out, 16) & (1 << 12))

    assert not sigpipe_ignored(True)
    assert sigpipe_ignored(False)


def test_pipe_size() -> None:
    spawned = _core.spawn(request("true", pipe_size=2 * 65536))
    assert spawned is not None
    child, _, stdout, _ = spawned
    assert stdout is not None
    assert fcntl.fcntl(stdout.fileno(), 1032) == 2 * 65536  # F_GETPIPE_SZ
    child.wait()
    stdout.close()


def test_program_name_and_cwd_name_name_the_errors() -> None:
    with pytest.raises(FileNotFoundError) as exec_error:
        _core.spawn(request(program=b"/no/such/program", program_name="given-name"))
    assert exec_error.value.filename == "given-name"
    with pytest.raises(FileNotFoundError) as cwd_error:
        _core.spawn(request(cwd=b"/no/such/dir", cwd_name="given-dir"))
    assert cwd_error.value.filename == "given-dir"


def test_umask() -> None:
    assert run(request("umask", umask=0o027)) == (0, "0027\n")


def test_rlimits_pdeathsig_subreaper() -> None:
    script = "ulimit -Sn; ulimit -Hn"
    assert run(request(script, rlimits=[(7, 50, 60)], pdeathsig=9, subreaper=True)) == (0, "50\n60\n")
    with pytest.raises(ValueError, match="current limit exceeds maximum limit") as raised:
        _core.spawn(request(rlimits=[(7, 60, 50)]))
    assert raised.value.__notes__ == ["in the child: setrlimit of resource 7"]


@pytest.mark.skipif(not IS_ROOT, reason="only root may change its ids")
def test_groups_gid_uid() -> None:
    assert run(request("id -u; id -g; id -G", groups=[65534, 1], gid=65534, uid=65534)) == (
        0,
        "65534\n65534\n65534 1\n",
    )


def test_any_object_with_the_fields_is_a_request() -> None:
    assert run(types.SimpleNamespace(**request("echo ns")._asdict())) == (0, "ns\n")


# -- wrong names and types -------------------------------------------------------------


def test_a_request_missing_a_field_is_refused() -> None:
    fields = request()._asdict()
    fields["prgram"] = fields.pop("program")
    with pytest.raises(TypeError, match="program") as missing:
        _core.spawn(types.SimpleNamespace(**fields))
    assert isinstance(missing.value.__cause__, AttributeError)
    with pytest.raises(TypeError):
        _core.spawn(tuple(request()))  # the old positional form


# A value of the wrong type for each field (program_name and cwd_name take any object).
WRONG_TYPES = {
    "program": "/bin/sh",
    "argv": b"sh",
    "env": {"A": "1"},
    "exec_path": ["/bin"],
    "cwd": 1.5,
    "stdin": "pipe",
    "stdout": 1.5,
    "stderr": [1],
    "close_fds": None,
    "pass_fds": 3,
    "start_new_session": None,
    "process_group": "0",
    "restore_signals": None,
    "pipe_size": -1,
    "umask": -1,
    "groups": 0,
    "gid": "root",
    "uid": 2**40,
    "rlimits": {7: (1, 1)},
    "pdeathsig": "SIGKILL",
    "subreaper": None,
    "cgroup": "/sys/fs/cgroup",
}


def test_every_field_is_read() -> None:
    """Each field of NativeSpawn is read by the core: a field it ignored would be an
    option silently dropped."""
    assert set(WRONG_TYPES) | {"program_name", "cwd_name", "cgroup_name"} == set(NativeSpawn._fields)


@pytest.mark.parametrize("field", sorted(WRONG_TYPES))
def test_a_field_of_the_wrong_type_is_refused(field: str) -> None:
    with pytest.raises(TypeError, match=field):
        _core.spawn(request(**{field: WRONG_TYPES[field]}))


# -- "not natively here" ---------------------------------------------------------------

NOT_NATIVE = textwrap.dedent(
    """
    import asyncio, fastspawn
    from fastspawn import _core
    from test_core_contract import request

    print("features:", _core.features()[:2])
    print("cwd:", _core.spawn(request(cwd=b"/")))
    print("close_fds:", _core.spawn(request(close_fds=True)))
    # Without the options, or on the clone path (which does both itself): started.
    for fields in ({"close_fds": False}, {"cwd": b"/", "umask": 0o022}):
        spawned = _core.spawn(request(**fields))
        print("started:", spawned is not None, spawned[0].wait() if spawned else None)

    async def main():
        # The None answer becomes a delegated spawn (Popen), with the option honoured.
        proc = await fastspawn.create_subprocess_exec("pwd", cwd="/tmp", stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        print("delegated:", out.decode().strip(), await proc.wait())

    asyncio.run(main())
    """
)


def test_the_core_answers_none_where_it_cannot_spawn_natively() -> None:
    """On a libc without posix_spawn's addchdir_np/addclosefrom_np (simulated), a request
    that needs one and does not take the clone path gets None, before anything is created;
    fastspawn then spawns it through Popen."""
    env = dict(os.environ, FASTSPAWN_NO_SPAWN_EXTENSIONS="1", PYTHONPATH=os.path.dirname(__file__))
    out = subprocess.run([sys.executable, "-c", NOT_NATIVE], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        "features: (False, False)",
        "cwd: None",
        "close_fds: None",
        "started: True 0",
        "started: True 0",
        "delegated: /tmp 0",
    ], out.stderr
