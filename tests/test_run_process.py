"""``fastspawn.run_process``: ``subprocess.run``'s results; on a timeout the whole tree ended
and ``TimeoutExpired`` with the output written until then; ``check``; ``max_output``
keeping the first bytes, counting the rest and draining the pipes; cancellation."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from typing import Any

import pytest
from procs import Pinned, open_fds, token, wait_none_with_arg, zombie_children

import fastspawn
from conftest import PY, Impl


@pytest.mark.parametrize(
    ("cmd", "kwargs"),
    [
        (["echo", "hello"], {}),
        ("echo out; echo err >&2; exit 3", {}),
        (["sh", "-c", "cat; echo; cat >&2"], {"input": b"fed"}),
        (b"printf %s $X", {"env": {"X": "from env"}}),
        (["pwd"], {"cwd": "/"}),
        (["sh", "-c", "exit 0"], {"capture_output": False}),
    ],
)
def test_results_are_subprocess_runs(fs: Impl, cmd: Any, kwargs: dict[str, Any]) -> None:
    async def main() -> fastspawn.CompletedProcess:
        return await fastspawn.run_process(cmd, **kwargs)

    got = fs.run(main())
    # run_process captures by default; subprocess.run does not.
    expected = subprocess.run(cmd, shell=isinstance(cmd, (str, bytes)), **{"capture_output": True, **kwargs})
    assert isinstance(got, subprocess.CompletedProcess)
    assert (got.args, got.returncode, got.stdout, got.stderr) == (
        expected.args,
        expected.returncode,
        expected.stdout,
        expected.stderr,
    )
    assert (got.dropped_stdout, got.dropped_stderr) == (0, 0)


def test_check_raises_called_process_error(fs: Impl) -> None:
    async def main() -> None:
        with pytest.raises(subprocess.CalledProcessError) as caught:
            await fastspawn.run_process("echo out; echo err >&2; exit 4", check=True, max_output=2)
        exc = caught.value
        assert (exc.returncode, exc.cmd, exc.output, exc.stderr) == (4, "echo out; echo err >&2; exit 4", b"ou", b"er")
        assert (exc.dropped_stdout, exc.dropped_stderr) == (2, 2)  # type: ignore[attr-defined]
        assert (await fastspawn.run_process(["true"], check=True)).returncode == 0

    fs.run(main())


def test_bad_arguments(fs: Impl) -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="stdin and input"):
            await fastspawn.run_process(["cat"], input=b"x", stdin=subprocess.DEVNULL)
        with pytest.raises(ValueError, match="capture_output"):
            await fastspawn.run_process(["true"], stdout=subprocess.DEVNULL)
        with pytest.raises(ValueError, match="max_output"):
            await fastspawn.run_process(["true"], max_output=-1)
        with pytest.raises(FileNotFoundError):
            await fastspawn.run_process(["no-such-program-xyz"])

    fds = open_fds()
    fs.run(main())
    assert open_fds() == fds


@pytest.mark.parametrize("options", [{}, {"process_group": 0}])
def test_timeout_ends_the_tree_and_keeps_the_output(fs: Impl, options: dict[str, Any]) -> None:
    t = token()
    pins = Pinned()

    async def main() -> None:
        cmd = f"sleep {t} >/dev/null & echo $!; echo err >&2; sleep {t}"
        t0 = time.monotonic()
        with pytest.raises(subprocess.TimeoutExpired) as caught:
            await fastspawn.run_process(cmd, timeout=0.5, **options)
        assert time.monotonic() - t0 < 3
        exc = caught.value
        assert (exc.cmd, exc.timeout, exc.stderr) == (cmd, 0.5, b"err\n")
        grandchild = int(exc.output)
        pins.pin([grandchild])
        assert pins.wait_exited([grandchild]) == []
        assert (exc.dropped_stdout, exc.dropped_stderr) == (0, 0)  # type: ignore[attr-defined]

    fds = open_fds()
    try:
        fs.run(main())
    finally:
        pins.close()
    assert wait_none_with_arg(t) == []
    assert open_fds() == fds
    assert zombie_children() == []


# On SIGTERM: writes a farewell on both streams, then exits 5.
FAREWELL = (
    "import signal, sys, time\n"
    "def bye(*_):\n"
    "    sys.stdout.write('bye'); sys.stderr.write('bye'); sys.exit(5)\n"
    "signal.signal(signal.SIGTERM, bye)\n"
    "print('hi', flush=True)\n"
    "time.sleep(60)\n"
)


def test_the_output_written_while_ending_is_kept(fs: Impl) -> None:
    async def main() -> Any:
        with pytest.raises(subprocess.TimeoutExpired) as caught:
            await fastspawn.run_process([PY, "-c", FAREWELL], timeout=1)
        return caught.value.output, caught.value.stderr

    assert fs.run(main()) == (b"hi\nbye", b"bye")


def test_a_tree_that_ignores_sigterm_is_killed_after_the_grace(fs: Impl) -> None:
    t = token()

    async def main() -> float:
        t0 = time.monotonic()
        with pytest.raises(subprocess.TimeoutExpired):
            await fastspawn.run_process(f"trap '' TERM; sleep {t} & sleep {t}", timeout=0.2, grace=0.3)
        return time.monotonic() - t0

    assert 0.5 <= fs.run(main()) < 3
    assert wait_none_with_arg(t) == []
    assert zombie_children() == []


@pytest.mark.parametrize("cap", [0, 1, 65535, 65536, 65537, 1 << 20])
def test_max_output_keeps_the_first_bytes_and_drains_the_rest(fs: Impl, cap: int) -> None:
    size = 4 << 20
    script = f"import os; b = bytes(range(256)) * {size // 256}; os.write(1, b); os.write(2, b[:1000])"

    async def main() -> fastspawn.CompletedProcess:
        return await fastspawn.run_process([PY, "-c", script], max_output=cap, timeout=60)

    result = fs.run(main())
    full = bytes(range(256)) * (size // 256)
    assert result.returncode == 0  # never blocked on a full pipe
    assert result.stdout == full[:cap]
    assert result.dropped_stdout == size - cap
    assert result.stderr == full[: min(cap, 1000)]
    assert result.dropped_stderr == max(1000 - cap, 0)
    assert f"dropped_stdout={size - cap}" in repr(result)


@pytest.mark.parametrize("cap", [0, 1, 999, 65536, 65537, 1 << 20])
def test_keep_output_tail_keeps_the_last_bytes(fs: Impl, cap: int) -> None:
    size = 4 << 20
    script = (
        f"import os; b = bytes(range(256)) * {size // 256}; os.write(1, b); os.write(1, b'end');os.write(2, b[:1000])"
    )

    async def main() -> fastspawn.CompletedProcess:
        return await fastspawn.run_process([PY, "-c", script], max_output=cap, keep_output="tail", timeout=60)

    result = fs.run(main())
    full = bytes(range(256)) * (size // 256) + b"end"
    assert result.returncode == 0
    assert result.stdout == full[len(full) - cap :]
    assert result.dropped_stdout == len(full) - cap
    assert result.stderr == full[:1000][1000 - min(cap, 1000) :]
    assert result.dropped_stderr == max(1000 - cap, 0)


@pytest.mark.parametrize("keep", ["middle", "", None, 1])
def test_keep_output_is_head_or_tail(fs: Impl, keep: Any) -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match=r"^keep_output must be 'head' or 'tail', not "):
            await fastspawn.run_process(["true"], max_output=1, keep_output=keep)

    fs.run(main())


def test_keep_output_tail_with_a_timeout(fs: Impl) -> None:
    script = "import sys, time\nfor i in range(100000): print(i)\nsys.stdout.flush(); time.sleep(30)"

    async def main() -> Any:
        with pytest.raises(subprocess.TimeoutExpired) as caught:
            await fastspawn.run_process([PY, "-c", script], timeout=2, max_output=7, keep_output="tail")
        return caught.value

    exc = fs.run(main())
    assert exc.output == b"\n99999\n"
    assert exc.dropped_stdout == len("".join(f"{i}\n" for i in range(100000))) - 7  # type: ignore[attr-defined]


def test_max_output_with_a_timeout(fs: Impl) -> None:
    async def main() -> Any:
        with pytest.raises(subprocess.TimeoutExpired) as caught:
            await fastspawn.run_process("yes", timeout=0.3, max_output=10)
        return caught.value

    exc = fs.run(main())
    assert exc.output == b"y\n" * 5
    assert exc.dropped_stdout > 0  # type: ignore[attr-defined]


def test_cancellation_ends_the_tree(fs: Impl) -> None:
    t = token()

    async def main() -> None:
        task = asyncio.ensure_future(fastspawn.run_process(f"sleep {t} & sleep {t}"))
        while len(wait_none_with_arg(t, 0)) < 2:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    fds = open_fds()
    fs.run(main())
    assert wait_none_with_arg(t) == []
    assert open_fds() == fds
    assert zombie_children() == []


def test_stdout_inherited_without_capture(fs: Impl, capfd: pytest.CaptureFixture[str]) -> None:
    async def main() -> fastspawn.CompletedProcess:
        return await fastspawn.run_process(["echo", "to the terminal"], capture_output=False)

    result = fs.run(main())
    assert (result.stdout, result.stderr) == (None, None)
    assert capfd.readouterr().out == "to the terminal\n"


def test_spawn_options_pass_through(fs: Impl) -> None:
    async def main() -> fastspawn.CompletedProcess:
        return await fastspawn.run_process([PY, "-c", "import os; print(os.getpgid(0), os.getpid())"], process_group=0)

    pgid, pid = map(int, fs.run(main()).stdout.split())
    assert pgid == pid != os.getpgid(0)


def test_the_new_names_are_public_and_documented() -> None:
    for name in ("run_process", "CompletedProcess", "iter_lines", "Process"):
        assert name in fastspawn.__all__
        assert getattr(fastspawn, name).__doc__
    for method in ("aclose", "ensure_ended", "kill_tree", "terminate_tree", "send_signal_tree", "communicate"):
        assert getattr(fastspawn.Process, method).__doc__
    assert fastspawn.Process.grace == 5.0
