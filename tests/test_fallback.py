"""fastspawn without its Rust core: the pure-Python wheel of macOS, Windows, musl and other
CPUs. It imports, ``install()`` is a no-op, the spawning API is asyncio's own, and
``run_process``/``iter_lines`` work over asyncio's processes (``fastspawn._fallback``).

The tests marked ``no_core`` run where the core is absent: for real in ``make test-pure``
(the pure wheel installed into a venv of its own, ``FASTSPAWN_EXPECT_NO_CORE=pure``), and
in the ordinary suite in a child pytest whose import of ``fastspawn._core`` fails as on
those platforms (``FASTSPAWN_EXPECT_NO_CORE=simulated``, a ``sys.meta_path`` hook set
before fastspawn is imported). The rest compare the fallback with the native API.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import pathlib
import re
import subprocess
import sys
import time

import pytest

import fastspawn
from conftest import PY, Impl
from fastspawn import _private

EXPECT_NO_CORE = os.environ.get("FASTSPAWN_EXPECT_NO_CORE", "")
NO_CORE_REASON = "needs a fastspawn without its core: run by test_the_fallback_without_the_core"
no_core = pytest.mark.skipif(not EXPECT_NO_CORE, reason=NO_CORE_REASON)

# Before fastspawn is imported: its core cannot be found, as where no wheel has one.
HIDE_CORE = """
import sys

class NoCore:
    def find_spec(self, name, path=None, target=None):
        if name == "fastspawn._core":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoCore())
"""


# -- where the core is absent ------------------------------------------------------------


@no_core
def test_the_core_is_absent() -> None:
    with pytest.raises(ImportError, match=re.escape("No module named 'fastspawn._core'")):
        importlib.import_module("fastspawn._core")
    if EXPECT_NO_CORE == "pure":
        # The real thing: the installed package has no extension module at all.
        assert importlib.util.find_spec("fastspawn._core") is None
        package = pathlib.Path(fastspawn.__file__).parent
        assert not list(package.glob("_core*.so")) and not list(package.glob("_core*.pyd"))
        assert "site-packages" in fastspawn.__file__


@no_core
def test_features_say_so() -> None:
    features = fastspawn.features()
    assert features.core_error == "No module named 'fastspawn._core'"
    assert (
        features.native_spawn,
        features.pidfd,
        features.native_cwd,
        features.native_close_fds,
        features.fast_streams,
    ) == (False, False, False, False, False)
    assert features.python == "{}.{}".format(*sys.version_info[:2])
    assert features.python_verified is (sys.version_info[:2] in _private.VERIFIED)


@no_core
def test_the_api_is_asyncios_own() -> None:
    assert fastspawn.create_subprocess_exec is asyncio.create_subprocess_exec
    assert fastspawn.create_subprocess_shell is asyncio.create_subprocess_shell
    assert fastspawn.Process is asyncio.subprocess.Process
    assert fastspawn.StreamReader is asyncio.StreamReader
    assert fastspawn.SubprocessStreamProtocol is asyncio.subprocess.SubprocessStreamProtocol
    assert fastspawn.SubprocessTransport is asyncio.SubprocessTransport
    assert fastspawn.EventLoop is asyncio.SelectorEventLoop  # the proactor on Windows
    loop = fastspawn.new_event_loop()
    try:
        assert type(loop) is asyncio.SelectorEventLoop
    finally:
        loop.close()
    assert fastspawn.NATIVE_OPTIONS == {}
    assert {"cwd", "env", "preexec_fn", "process_group", "pass_fds"} <= set(fastspawn.DELEGATED_OPTIONS)
    assert fastspawn.__version__ == importlib.metadata.version("fastspawn")
    # Nothing that needs the core was imported.
    assert not {"fastspawn._spawn", "fastspawn._transport", "fastspawn._private.streams"} & set(sys.modules)


@no_core
def test_install_is_a_no_op(fs: Impl) -> None:
    communicate = asyncio.subprocess.Process.communicate

    async def main() -> tuple[str, bytes]:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.subprocess_exec(asyncio.SubprocessProtocol, "true")
        transport.close()
        proc = await asyncio.create_subprocess_exec("echo", "stock", stdout=subprocess.PIPE)
        out, _ = await proc.communicate()
        return type(transport).__module__, out

    assert not fastspawn.is_installed()
    fastspawn.install()
    try:
        assert not fastspawn.is_installed()
        assert asyncio.subprocess.Process.communicate is communicate
        module, out = fs.run(main())
        assert module.startswith("asyncio.") and out == b"stock\n"
    finally:
        fastspawn.uninstall()
    assert not fastspawn.is_installed()


@no_core
def test_spawn_communicate_readline_iter_lines(fs: Impl) -> None:
    long_line = b"x" * 5000

    async def main() -> None:
        proc = await fastspawn.create_subprocess_exec(
            "sh",
            "-c",
            f"echo first; printf '%s\\n' {long_line.decode()}; echo last",
            stdout=subprocess.PIPE,
            limit=1024,
        )
        assert type(proc) is asyncio.subprocess.Process and type(proc.stdout) is asyncio.StreamReader
        assert await proc.stdout.readline() == b"first\n"  # type: ignore[union-attr]
        # A line longer than the limit: readline() would raise, iter_lines() hands it whole.
        lines = [line async for batch in fastspawn.iter_lines(proc.stdout) for line in batch]  # type: ignore[arg-type]
        assert lines == [long_line + b"\n", b"last\n"]
        assert await proc.wait() == 0

        cat = await fastspawn.create_subprocess_shell(
            "cat; echo err >&2; exit 3", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert await cat.communicate(b"fed" * 100_000) == (b"fed" * 100_000, b"err\n")
        assert cat.returncode == 3

    fs.run(main())


@no_core
def test_subprocess_exec_and_shell_with_a_protocol(fs: Impl) -> None:
    class Collect(asyncio.SubprocessProtocol):
        def __init__(self) -> None:
            self.data = bytearray()
            self.exited = asyncio.get_running_loop().create_future()

        def pipe_data_received(self, fd: int, data: bytes) -> None:
            self.data += data

        def process_exited(self) -> None:
            self.exited.set_result(None)

    async def main() -> list[bytes]:
        got = []
        for spawn, cmd in (
            (fastspawn.subprocess_exec, ("echo", "exec")),
            (fastspawn.subprocess_shell, ("echo shell",)),
        ):
            transport, protocol = await spawn(Collect, *cmd, stdin=None, stderr=None)  # type: ignore[operator]
            assert isinstance(transport, asyncio.SubprocessTransport)
            await protocol.exited
            await asyncio.sleep(0.05)  # the pipe's last data and EOF
            transport.close()
            got.append(bytes(protocol.data))
        return got

    assert fs.run(main()) == [b"exec\n", b"shell\n"]


@no_core
def test_run_process_results_check_and_max_output(fs: Impl) -> None:
    async def main() -> None:
        done = await fastspawn.run_process("echo out; echo err >&2; exit 3")
        assert type(done) is fastspawn.CompletedProcess
        assert (done.args, done.returncode, done.stdout, done.stderr) == (
            "echo out; echo err >&2; exit 3",
            3,
            b"out\n",
            b"err\n",
        )
        fed = await fastspawn.run_process(["cat"], input=b"x" * 200_000, max_output=10)
        assert (fed.stdout, fed.dropped_stdout, fed.dropped_stderr) == (b"x" * 10, 199_990, 0)
        with pytest.raises(subprocess.CalledProcessError) as caught:
            await fastspawn.run_process(["sh", "-c", "echo out; exit 4"], check=True, max_output=2)
        assert (caught.value.returncode, caught.value.output, caught.value.dropped_stdout) == (4, b"ou", 2)  # type: ignore[attr-defined]
        plain = await fastspawn.run_process([PY, "-c", "pass"], check=True, capture_output=False)
        assert (plain.returncode, plain.stdout, plain.stderr) == (0, None, None)
        with pytest.raises(ValueError, match="stdin and input"):
            await fastspawn.run_process(["true"], input=b"", stdin=subprocess.PIPE)

    fs.run(main())


@no_core
@pytest.mark.parametrize("grace", [0.0, 5.0])
def test_run_process_timeout_ends_the_child_and_keeps_the_output(fs: Impl, grace: float) -> None:
    # The child itself (exec): the fallback ends the child, not its descendants.
    script = "import os, sys, time; print(os.getpid(), flush=True); time.sleep(60)"

    async def main() -> subprocess.TimeoutExpired:
        with pytest.raises(subprocess.TimeoutExpired) as caught:
            await fastspawn.run_process([PY, "-c", script], timeout=0.5, grace=grace)
        return caught.value

    start = time.monotonic()
    expired = fs.run(main())
    assert time.monotonic() - start < 4  # SIGTERM ended it at once, no grace waited out
    assert expired.timeout == 0.5 and expired.stderr == b""
    pid = int(expired.output)
    with pytest.raises(ProcessLookupError):  # gone and reaped
        os.kill(pid, 0)


@no_core
def test_run_process_timeout_leaves_descendants(fs: Impl) -> None:
    """The documented difference: without the core only the child is ended. A grandchild
    holding stdout open survives, and run_process still returns (the pipes are closed)."""

    async def main() -> subprocess.TimeoutExpired:
        with pytest.raises(subprocess.TimeoutExpired) as caught:
            await fastspawn.run_process(["sh", "-c", "sleep 60 & echo $!; wait"], timeout=0.5, grace=0)
        return caught.value

    start = time.monotonic()
    expired = fs.run(main())
    assert time.monotonic() - start < 4
    grandchild = int(expired.output)
    try:
        os.kill(grandchild, 0)  # still there
    finally:
        os.kill(grandchild, 9)


@no_core
def test_run_process_cancelled_kills_the_child(fs: Impl, tmp_path: pathlib.Path) -> None:
    pid_file = tmp_path / "pid"

    async def main() -> None:
        task = asyncio.ensure_future(fastspawn.run_process(["sh", "-c", f"echo $$ > {pid_file}; exec sleep 60"]))
        while not pid_file.exists() or not pid_file.read_text().endswith("\n"):
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    fs.run(main())
    with pytest.raises(ProcessLookupError):  # killed and reaped before the cancellation propagated
        os.kill(int(pid_file.read_text()), 0)


# -- the ordinary suite, core present ----------------------------------------------------


@pytest.mark.skipif(bool(EXPECT_NO_CORE), reason="the core is absent here already")
def test_the_fallback_without_the_core() -> None:
    """The ``no_core`` tests, in a child pytest that cannot import the core."""
    run = HIDE_CORE + f"import pytest\nsys.exit(pytest.main([{__file__!r}, '-q', '-rs', '-p', 'no:cacheprovider']))\n"
    env = {**os.environ, "FASTSPAWN_EXPECT_NO_CORE": "simulated"}
    out = subprocess.run([PY, "-c", run], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    # Every no_core test ran and passed (only the tests that need the core were skipped).
    assert re.search(r"\b\d+ passed, \d+ skipped in ", out.stdout), out.stdout
    assert NO_CORE_REASON not in out.stdout


BROKEN_CORE = """\
import sys, warnings

class BrokenCore:
    def find_spec(self, name, path=None, target=None):
        if name == "fastspawn._core":
            raise ImportError("undefined symbol: PyFoo_Bar")
        return None

sys.meta_path.insert(0, BrokenCore())
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import fastspawn
print(fastspawn.features().core_error, fastspawn.features().native_spawn)
print([(w.category.__name__, str(w.message)) for w in caught])
"""


def test_a_core_that_is_there_but_cannot_load_warns() -> None:
    # A missing core is a platform without one (silent); a core that fails to load is a
    # broken install, which falls back too but says so.
    out = subprocess.run([PY, "-c", BROKEN_CORE], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    error, warned = out.stdout.splitlines()
    assert error == "undefined symbol: PyFoo_Bar False"
    assert warned == str(
        [
            (
                "RuntimeWarning",
                "fastspawn's compiled core is installed but cannot be loaded (undefined symbol: "
                "PyFoo_Bar); falling back to asyncio's own spawner",
            )
        ]
    )


@pytest.mark.skipif(bool(EXPECT_NO_CORE), reason="compares with the native API")
def test_the_fallback_has_the_native_api() -> None:
    from fastspawn import _defaults, _fallback, _install, _options, _run, _spawn

    portable = {"CompletedProcess", "Features", "features", "StreamReader", "SubprocessStreamProtocol", "iter_lines"}
    assert set(_fallback.__all__) | portable == set(fastspawn.__all__)
    for name in ("install", "uninstall", "is_installed", "new_event_loop", "run"):
        assert inspect.signature(getattr(_fallback, name)) == inspect.signature(getattr(_install, name)), name
    assert inspect.signature(_fallback.run_process) == inspect.signature(_run.run_process)
    assert _defaults.DEFAULT_LIMIT == asyncio.streams._DEFAULT_LIMIT  # type: ignore[attr-defined]
    for name in ("create_subprocess_exec", "create_subprocess_shell"):
        native, stock = inspect.signature(getattr(_spawn, name)), inspect.signature(getattr(asyncio, name))
        assert list(native.parameters) == list(stock.parameters), name
    # Everything the core spawns natively or delegates goes to Popen there, with the same default.
    # fastspawn's own child-setup options (rlimits, pdeathsig, subreaper) need the core: without
    # it they reach Popen, which refuses them (TypeError), never silently ignored.
    known = {
        name: default
        for name, default in {**_options.NATIVE_OPTIONS, **_options.DELEGATED_OPTIONS}.items()
        if name not in _options.CHILD_SETUP_OPTIONS
    }
    assert {name: _fallback.DELEGATED_OPTIONS.get(name, "missing") for name in known} == known
    assert fastspawn.features().core_error is None
