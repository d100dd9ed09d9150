"""A soak of mixed spawns, for tests/test_soak.py and for long runs by hand.

    python tests/soak.py --impl fastspawn --spawns 100000 [--no-pidfd]

runs the soak in this process and prints one JSON line: descriptors, zombies, threads
and RSS after a warm-up and at the end (and the counts of each kind of spawn). The
kinds, in a fixed pseudo-random order: output through pipes, stdin fed through a pipe,
a missing program, a missing cwd, the core's clone path (umask), and a spawn cancelled
at a random await point (the task kills and reaps its child, as code using asyncio
should). ``--no-pidfd`` sets FASTSPAWN_NO_PIDFD=1 first (the fallback reaper thread).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import os
import random
import sys
import threading
from asyncio.subprocess import DEVNULL, PIPE
from typing import Any, Optional

from procs import open_fds, zombie_children

KINDS = ("pipes", "stdin", "missing", "missing-cwd", "umask", "cancelled")


def open_count() -> int:
    return len(open_fds())


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def malloc_in_use_kib() -> int:
    """Bytes malloc has handed out and not got back (glibc's mallinfo2: every arena, and
    mmapped chunks), in KiB; -1 elsewhere. Unlike RSS, freed memory malloc keeps for
    reuse does not count, so this grows only with what is really still allocated (by
    Rust, C extensions and Python's large objects; pymalloc's small objects live in
    arenas of their own)."""
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (AttributeError, OSError):
        return -1
    mallinfo2.restype = _Mallinfo2
    info = mallinfo2()
    return int(info.uordblks + info.hblkhd) // 1024


def snapshot() -> dict[str, int]:
    gc.collect()
    return {
        "fds": open_count(),
        "zombies": len(zombie_children()),
        "threads": len(os.listdir("/proc/self/task")),
        "python_threads": threading.active_count(),
        "python_objects": len(gc.get_objects()),
        "malloc_kib": malloc_in_use_kib(),
        "rss_kib": rss_kib(),
    }


async def cancelled(rng: random.Random) -> None:
    """A spawn + communicate cancelled after 0-5 loop iterations."""

    async def job() -> None:
        proc = await asyncio.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
        try:
            await proc.communicate(b"data\n" * rng.randrange(1, 2000))
        except asyncio.CancelledError:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            raise

    task = asyncio.ensure_future(job())
    for _ in range(rng.randrange(6)):
        await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


async def one(kind: str, i: int, rng: random.Random) -> None:
    if kind == "pipes":
        proc = await asyncio.create_subprocess_exec("echo", str(i), stdout=PIPE, stderr=PIPE)
        out, _ = await proc.communicate()
        assert out == f"{i}\n".encode(), out
    elif kind == "stdin":
        data = b"x" * rng.randrange(0, 100_000)
        proc = await asyncio.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
        out, _ = await proc.communicate(data)
        assert out == data
    elif kind == "missing":
        try:
            await asyncio.create_subprocess_exec("no-such-program-xyz", stdin=PIPE, stdout=PIPE)
        except FileNotFoundError:
            return
        raise AssertionError("spawned a missing program")
    elif kind == "missing-cwd":
        try:
            await asyncio.create_subprocess_exec("true", cwd="/no/such/dir", stdout=PIPE)
        except FileNotFoundError:
            return
        raise AssertionError("spawned in a missing directory")
    elif kind == "umask":
        proc = await asyncio.create_subprocess_exec("true", stdout=DEVNULL, umask=0o22)
        assert await proc.wait() == 0
    else:
        await cancelled(rng)


async def soak(spawns: int, seed: int, concurrency: int) -> dict[str, int]:
    rng = random.Random(seed)
    counts = dict.fromkeys(KINDS, 0)
    kinds = [rng.choice(KINDS) for _ in range(spawns)]
    fds = open_count()

    async def worker(start: int) -> None:
        for i in range(start, spawns, concurrency):
            await one(kinds[i], i, rng)
            counts[kinds[i]] += 1

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    # On the loop, still open: every child is gone, so once the pipes of the last ones
    # are closed (a few loop iterations after a wait() that returned on exit), no
    # descriptor of the spawner's is left.
    for _ in range(100):
        if open_count() == fds:
            break
        await asyncio.sleep(0.001)
    counts["new_fds_on_loop"] = open_count() - fds
    return counts


def run(impl: str, spawns: int, warmup: int, seed: int = 1, concurrency: int = 4) -> dict[str, Any]:
    if impl == "fastspawn":
        import fastspawn

        loop_factory = fastspawn.new_event_loop
    else:
        loop_factory = asyncio.new_event_loop
    errors: list[str] = []

    def run_soak(n: int, seed: int) -> dict[str, int]:
        loop = loop_factory()
        loop.set_exception_handler(lambda _loop, context: errors.append(repr(context)))
        try:
            return loop.run_until_complete(soak(n, seed, concurrency))
        finally:
            loop.close()

    before = snapshot()
    run_soak(warmup, seed)
    warm = snapshot()
    counts = run_soak(spawns, seed + 1)
    end = snapshot()
    return {"impl": impl, "before": before, "warm": warm, "end": end, "counts": counts, "errors": errors[:5]}


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--impl", choices=["asyncio", "fastspawn"], required=True)
    parser.add_argument("--spawns", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-pidfd", action="store_true")
    args = parser.parse_args(argv)
    if args.no_pidfd:
        os.environ["FASTSPAWN_NO_PIDFD"] = "1"
    print(json.dumps(run(args.impl, args.spawns, args.warmup, args.seed)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
