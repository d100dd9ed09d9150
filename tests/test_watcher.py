"""FdWatcher: the one epoll per loop through which fastspawn watches pidfds and pipes.
Its callbacks must behave as ``loop.add_reader``/``add_writer`` callbacks do."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import gc
import os
import socket
import weakref
from typing import Any

import pytest
from procs import open_fds

import fastspawn
from fastspawn._watcher import watcher_for

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_readers_and_writers_are_called_while_ready_and_not_after_removal() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        watcher = watcher_for(loop)
        assert watcher_for(loop) is watcher
        a, b = socket.socketpair()
        a.setblocking(False)
        calls: list[str] = []
        try:
            # A socket is readable and writable on one descriptor: both are watched.
            watcher.add_writer(a.fileno(), lambda: calls.append("w"))
            watcher.add_reader(a.fileno(), lambda: calls.append("r"))
            await asyncio.sleep(0.01)
            assert "w" in calls and "r" not in calls
            watcher.remove_writer(a.fileno())
            calls.clear()
            b.send(b"x")
            await asyncio.sleep(0.01)
            assert calls and set(calls) == {"r"}  # level-triggered: called until read
            a.recv(1)
            assert watcher.remove_reader(a.fileno())
            assert not watcher.remove_reader(a.fileno())
            calls.clear()
            b.send(b"y")
            await asyncio.sleep(0.01)
            return calls
        finally:
            a.close()
            b.close()

    assert run(main()) == []


def test_a_failing_callback_goes_to_the_exception_handler_and_others_still_run() -> None:
    async def main() -> tuple[list[dict[str, Any]], list[str]]:
        loop = asyncio.get_running_loop()
        errors: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        watcher = watcher_for(loop)
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        calls: list[str] = []

        def fail() -> None:
            watcher.remove_reader(r1)
            raise ZeroDivisionError

        def ok() -> None:
            watcher.remove_reader(r2)
            calls.append("ok")

        try:
            watcher.add_reader(r1, fail)
            watcher.add_reader(r2, ok)
            os.write(w1, b"x")
            os.write(w2, b"x")
            await asyncio.sleep(0.01)
            return errors, calls
        finally:
            for fd in (r1, w1, r2, w2):
                os.close(fd)

    errors, calls = run(main())
    assert calls == ["ok"]
    assert len(errors) == 1
    assert isinstance(errors[0]["exception"], ZeroDivisionError)
    assert errors[0]["message"].startswith("Exception in callback")


def test_callbacks_run_in_the_context_they_were_registered_in() -> None:
    async def main() -> list[str]:
        watcher = watcher_for(asyncio.get_running_loop())
        seen: list[str] = []
        pipes = [os.pipe(), os.pipe()]
        try:
            for name, (r, w) in zip(("first", "second"), pipes, strict=True):
                request_id.set(name)

                def callback(r: int = r) -> None:
                    watcher.remove_reader(r)
                    seen.append(request_id.get())

                watcher.add_reader(r, callback)
                os.write(w, b"x")
            request_id.set("later")
            await asyncio.sleep(0.01)
            return sorted(seen)
        finally:
            for r, w in pipes:
                os.close(r)
                os.close(w)

    assert run(main()) == ["first", "second"]


def test_a_callback_removing_another_ready_one_keeps_it_from_running() -> None:
    async def main() -> list[int]:
        watcher = watcher_for(asyncio.get_running_loop())
        (r1, w1), (r2, w2) = os.pipe(), os.pipe()
        calls: list[int] = []

        def first(me: int, other: int) -> None:
            calls.append(me)
            watcher.remove_reader(me)
            watcher.remove_reader(other)

        try:
            watcher.add_reader(r1, lambda: first(r1, r2))
            watcher.add_reader(r2, lambda: first(r2, r1))
            os.write(w1, b"x")
            os.write(w2, b"x")
            await asyncio.sleep(0.01)
            return calls
        finally:
            for fd in (r1, w1, r2, w2):
                os.close(fd)

    assert len(run(main())) == 1


def test_a_descriptor_closed_while_watched_can_be_watched_again_under_its_number() -> None:
    async def main() -> bool:
        watcher = watcher_for(asyncio.get_running_loop())
        r, w = os.pipe()
        watcher.add_reader(r, lambda: None)
        os.close(r)
        os.close(w)
        r2, w2 = os.pipe()
        got = asyncio.get_running_loop().create_future()
        try:
            assert r2 == r  # the lowest free number, reused
            watcher.remove_reader(r2)  # the stale entry: removing it must not fail either
            watcher.add_reader(r2, lambda: got.done() or got.set_result(True))
            os.write(w2, b"x")
            return await asyncio.wait_for(got, 5)
        finally:
            watcher.remove_reader(r2)
            os.close(r2)
            os.close(w2)

    assert run(main())


def test_closing_the_loop_closes_its_epoll() -> None:
    """No descriptor may outlive the loop, without waiting for garbage collection."""
    before = open_fds()
    loop = fastspawn.new_event_loop()

    async def main() -> asyncio.SubprocessTransport:
        # Left running: the epoll stays open, watching it.
        transport, _ = await loop.subprocess_exec(asyncio.SubprocessProtocol, "sleep", "30")
        return transport

    try:
        transport = loop.run_until_complete(main())
        watcher = watcher_for(loop)
        epoll = watcher._epoll
        assert epoll is not None and epoll.fileno() in open_fds()
        del watcher
    finally:
        loop.close()
    assert epoll.closed
    transport.close()  # kills the child; the core reaps it
    del transport
    gc.collect()
    assert open_fds() == before


def test_watching_on_a_closed_loop_raises_as_the_loop_does() -> None:
    loop = asyncio.new_event_loop()
    watcher = watcher_for(loop)
    loop.close()
    r, w = os.pipe()
    try:
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            watcher.add_reader(r, lambda: None)
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            loop.add_reader(r, lambda: None)
    finally:
        os.close(r)
        os.close(w)


def test_a_failed_registration_leaves_nothing_behind() -> None:
    """epoll refuses regular files (EPERM): the error comes out, and the number, once
    reused by a pipe, is watched normally."""

    async def main() -> bool:
        watcher = watcher_for(asyncio.get_running_loop())
        with open(__file__, "rb") as f:
            fd = f.fileno()
            with pytest.raises(PermissionError):
                watcher.add_reader(fd, lambda: None)
            with pytest.raises(PermissionError):
                asyncio.get_running_loop().add_reader(fd, lambda: None)  # the same error
        r, w = os.pipe()
        got = asyncio.get_running_loop().create_future()
        try:
            assert r == fd
            watcher.add_reader(r, lambda: got.done() or got.set_result(True))
            os.write(w, b"x")
            return await asyncio.wait_for(got, 5)
        finally:
            watcher.remove_reader(r)
            os.close(r)
            os.close(w)

    assert run(main())


def test_a_reader_replaced_during_a_round_waits_for_the_next() -> None:
    """As with loop.add_reader: the callbacks run are those registered when the epoll
    answered; a replacement made meanwhile runs from the next round on."""

    async def main() -> list[str]:
        watcher = watcher_for(asyncio.get_running_loop())
        (r1, w1), (r2, w2) = os.pipe(), os.pipe()
        calls: list[str] = []

        def replace(me: int, other: int) -> None:
            calls.append("first")
            asyncio.get_running_loop().call_soon(calls.append, "next iteration")
            watcher.remove_reader(me)
            watcher.remove_reader(other)
            watcher.add_reader(other, lambda: (calls.append("replacement"), watcher.remove_reader(other)))

        try:
            watcher.add_reader(r1, lambda: replace(r1, r2))
            watcher.add_reader(r2, lambda: replace(r2, r1))
            os.write(w1, b"x")
            os.write(w2, b"x")
            await asyncio.sleep(0.01)
            return calls
        finally:
            for fd in (r1, w1, r2, w2):
                os.close(fd)

    # One "first" (it removed the other's original reader), then, an iteration later,
    # the replacement.
    assert run(main()) == ["first", "next iteration", "replacement"]


def test_the_loop_keeps_no_context_of_the_first_spawner() -> None:
    class Marker:
        pass

    async def spawn_with(marker: Marker) -> None:
        request_id.set(marker)  # type: ignore[arg-type]
        proc = await fastspawn.create_subprocess_exec("true")
        await proc.wait()

    async def main() -> bool:
        marker = Marker()
        ref = weakref.ref(marker)
        await asyncio.ensure_future(spawn_with(marker))
        del marker
        await asyncio.sleep(0)  # the loop iteration that resumed us still holds the task
        gc.collect()
        return ref() is None

    assert run(main())


def test_the_exception_context_names_the_callback_as_the_loop_does() -> None:
    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        errors: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        watcher = watcher_for(loop)
        r, w = os.pipe()

        def failing_callback() -> None:
            watcher.remove_reader(r)
            raise ZeroDivisionError

        try:
            watcher.add_reader(r, failing_callback)
            os.write(w, b"x")
            await asyncio.sleep(0.01)
        finally:
            os.close(r)
            os.close(w)
        return errors[0]

    context = run(main())
    assert isinstance(context["handle"], asyncio.Handle)
    assert "failing_callback" in context["message"]
    assert context["message"].startswith("Exception in callback ")


def test_the_epoll_is_closed_when_nothing_is_left_to_watch_and_reopened_on_demand() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        watcher = watcher_for(loop)
        r, w = os.pipe()
        before = open_fds()
        try:
            for _ in range(2):
                got: asyncio.Future[bytes] = loop.create_future()
                watcher.add_reader(r, functools.partial(got.set_result, b"x"))
                epoll = watcher._epoll
                assert epoll is not None
                os.write(w, b"x")
                assert await got == b"x"
                assert os.read(r, 10) == b"x"
                assert watcher.remove_reader(r)
                # Closed at the end of this iteration, not at once: an exit and a pipe's
                # EOF handled in one round close it once.
                assert not epoll.closed
                await asyncio.sleep(0)
                assert epoll.closed and watcher._epoll is None
                assert open_fds() == before
            # Removed and added again within one iteration: the same epoll goes on.
            watcher.add_reader(r, lambda: None)
            epoll = watcher._epoll
            watcher.remove_reader(r)
            watcher.add_reader(r, lambda: None)
            await asyncio.sleep(0)
            assert watcher._epoll is epoll and epoll is not None and not epoll.closed
            watcher.remove_reader(r)
            await asyncio.sleep(0)
            assert epoll.closed
        finally:
            os.close(r)
            os.close(w)

    run(main())
