"""The public API: install()/uninstall(), the direct functions, other loops, anyio."""

from __future__ import annotations

import asyncio
import sys
from asyncio.subprocess import PIPE

import pytest

import fastspawn
from conftest import IMPLS
from fastspawn import SubprocessTransport


def transport_type_on_stock_loop() -> type:
    async def main() -> type:
        proc = await asyncio.create_subprocess_exec("true")
        await proc.wait()
        return type(proc._transport)  # type: ignore[attr-defined]

    return asyncio.run(main())


def test_install_uninstall_are_idempotent_and_reversible() -> None:
    stock = transport_type_on_stock_loop()
    assert stock is not SubprocessTransport
    fastspawn.install()
    fastspawn.install()
    try:
        assert fastspawn.is_installed()
        assert transport_type_on_stock_loop() is SubprocessTransport
    finally:
        fastspawn.uninstall()
    fastspawn.uninstall()
    assert not fastspawn.is_installed()
    assert transport_type_on_stock_loop() is stock


def test_installed_routes_loop_subprocess_shell(installed: None) -> None:
    async def main() -> tuple[type, bytes]:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.subprocess_shell(asyncio.SubprocessProtocol, "exit 0")
        transport.close()
        proc = await asyncio.create_subprocess_shell("echo via shell", stdout=PIPE)
        out, _ = await proc.communicate()
        return type(transport), out

    assert asyncio.run(main()) == (SubprocessTransport, b"via shell\n")


def test_direct_functions_on_a_stock_loop_without_install() -> None:
    async def main() -> tuple[bytes, bytes, type]:
        p1 = await fastspawn.create_subprocess_exec("echo", "exec", stdout=PIPE)
        p2 = await fastspawn.create_subprocess_shell("echo shell", stdout=PIPE)
        transport, _ = await fastspawn.subprocess_exec(asyncio.SubprocessProtocol, "true")
        transport.close()
        return (await p1.communicate())[0], (await p2.communicate())[0], type(p1._transport)  # type: ignore[attr-defined]

    assert not fastspawn.is_installed()
    assert asyncio.run(main()) == (b"exec\n", b"shell\n", SubprocessTransport)


def test_direct_functions_validate_like_asyncio() -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="universal_newlines must be False"):
            await fastspawn.create_subprocess_exec("true", universal_newlines=True)
        with pytest.raises(ValueError, match="cmd must be a string"):
            await fastspawn.subprocess_shell(asyncio.SubprocessProtocol, ["true"])  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="bufsize must be 0"):
            await fastspawn.create_subprocess_shell("true", bufsize=1)

    asyncio.run(main())


def test_run_and_runner_loop_factory() -> None:
    async def main() -> bytes:
        proc = await asyncio.create_subprocess_exec("echo", "run", stdout=PIPE)
        return (await proc.communicate())[0]

    assert fastspawn.run(main()) == b"run\n"
    with asyncio.Runner(loop_factory=fastspawn.new_event_loop) as runner:
        assert runner.run(main()) == b"run\n"


def test_direct_functions_on_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> tuple[bytes, int, type]:
        proc = await fastspawn.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
        out, _ = await proc.communicate(b"x" * 200_000)
        return out, proc.returncode, type(proc._transport)  # type: ignore[attr-defined]

    loop = uvloop.new_event_loop()
    try:
        out, code, kind = loop.run_until_complete(main())
    finally:
        loop.close()
    assert (len(out), code, kind) == (200_000, 0, SubprocessTransport)


def test_anyio_run_process_goes_through_fastspawn(installed: None) -> None:
    anyio = pytest.importorskip("anyio")
    spawned: list[object] = []
    original = fastspawn._spawn.spawn_transport

    async def counting(*args: object, **kwargs: object) -> SubprocessTransport:
        spawned.append(args[2])
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    async def main() -> bytes:
        result = await anyio.run_process(["echo", "anyio"])
        return bytes(result.stdout)

    fastspawn._spawn.spawn_transport = counting  # type: ignore[assignment]
    try:
        assert anyio.run(main, backend="asyncio") == b"anyio\n"
    finally:
        fastspawn._spawn.spawn_transport = original  # type: ignore[assignment]
    assert len(spawned) == 1


def test_extra_info_subprocess_is_popen_shaped() -> None:
    async def main() -> tuple[object, object, object]:
        proc = await asyncio.create_subprocess_exec("sleep", "30")
        child = proc._transport.get_extra_info("subprocess")  # type: ignore[attr-defined]
        running = child.poll()
        child.kill()
        code = child.wait(timeout=5)
        return running, code, await proc.wait()

    assert IMPLS["fastspawn"].run(main()) == (None, -9, -9)


def test_what_runs_natively_and_what_is_delegated() -> None:
    from fastspawn._options import plan_native

    def native(**kwargs: object) -> bool:
        return plan_native(["true"], False, None, None, None, dict(kwargs)) is not None

    assert native(cwd="/", env={}, close_fds=True, pass_fds=(), start_new_session=True, restore_signals=False)
    assert native(umask=0o22, user=0, group=0, extra_groups=[0])
    assert not native(preexec_fn=lambda: None)
    assert not native(no_such_keyword=1)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="child watchers are deprecated from 3.12 (gone in 3.14)")
def test_a_fast_child_watcher_makes_fastspawn_step_aside(installed: None) -> None:
    """FastChildWatcher reaps every child with waitpid(-1): a fastspawn child would be
    reaped under the core's feet (returncode 255), so such spawns go to asyncio."""
    policy = asyncio.get_event_loop_policy()
    watcher = asyncio.FastChildWatcher()

    async def main() -> tuple[type, int]:
        watcher.attach_loop(asyncio.get_running_loop())
        codes = []
        for _ in range(20):
            proc = await asyncio.create_subprocess_exec("sh", "-c", "exit 5")
            codes.append(await proc.wait())
        assert set(codes) == {5}, codes
        return type(proc._transport), codes[0]  # type: ignore[attr-defined]

    policy.set_child_watcher(watcher)
    try:
        kind, code = asyncio.run(main())
    finally:
        policy.set_child_watcher(None)
        watcher.close()
    assert code == 5
    assert kind is not SubprocessTransport
