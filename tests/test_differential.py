"""Random combinations of spawn options, run on stock asyncio and on fastspawn: the
child must see the same thing and the parent must get the same output (hypothesis)."""

from __future__ import annotations

import asyncio
import os
import pathlib
import random
import sys
import tempfile
from asyncio.subprocess import DEVNULL, PIPE, STDOUT
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import IMPLS

# What the child reports: its environment variable, working directory, stdin contents,
# session/group leadership, whether an inheritable fd of the parent's is open, and an
# exit code chosen by the test.
SCRIPT = (
    'echo "foo=${FOO-unset}"; pwd; cat; echo; echo to-stderr >&2; '
    'set -- $(cut -d" " -f5,6 /proc/$$/stat); [ "$1" = "$$" ] && echo group-leader; '
    '[ "$2" = "$$" ] && echo session-leader; [ -e /proc/self/fd/$FD ] && echo fd-open; exit "$CODE"'
)

options = st.fixed_dictionaries(
    {
        "shell": st.booleans(),
        "stdin": st.sampled_from(["none", "devnull", "pipe"]),
        "stdout": st.sampled_from(["pipe", "devnull"]),
        "stderr": st.sampled_from(["pipe", "stdout", "devnull", "none"]),
        "env": st.booleans(),
        "cwd": st.booleans(),
        "start_new_session": st.booleans(),
        "close_fds": st.booleans(),
        "code": st.integers(0, 3),
        "input": st.binary(max_size=200).map(lambda b: b.replace(b"\n", b"")),
    }
)

STDIO = {"none": None, "devnull": DEVNULL, "pipe": PIPE, "stdout": STDOUT}


def run(impl: str, opts: dict[str, Any], cwd: str, fd: int) -> tuple[Any, ...]:
    env = {**os.environ, "CODE": str(opts["code"]), "FD": str(fd)}
    if opts["env"]:
        env["FOO"] = "bar"
    else:
        env.pop("FOO", None)
    kwargs: dict[str, Any] = {
        "stdin": STDIO[opts["stdin"]],
        "stdout": STDIO[opts["stdout"]],
        "stderr": STDIO[opts["stderr"]] if opts["stderr"] != "none" else DEVNULL,
        "env": env,
        "cwd": cwd if opts["cwd"] else None,
        "start_new_session": opts["start_new_session"],
        "close_fds": opts["close_fds"],
    }

    async def main() -> tuple[Any, ...]:
        if opts["shell"]:
            proc = await asyncio.create_subprocess_shell(SCRIPT, **kwargs)
        else:
            proc = await asyncio.create_subprocess_exec("/bin/sh", "-c", SCRIPT, **kwargs)
        data = opts["input"] if opts["stdin"] == "pipe" else None
        out, err = await proc.communicate(data)
        return out, err, proc.returncode

    return IMPLS[impl].run(main())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(opts=options)
def test_same_result_as_asyncio(opts: dict[str, Any]) -> None:
    # An inheritable descriptor in the parent, to see close_fds at work.
    r, w = os.pipe()
    os.set_inheritable(r, True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cwd = str(pathlib.Path(tmp).resolve())
            assert run("fastspawn", opts, cwd, r) == run("asyncio", opts, cwd, r)
    finally:
        os.close(r)
        os.close(w)


# --- reading a live child's stdout -------------------------------------------------------
#
# The reader's fast paths (reading the pipe itself while the child keeps it full, and
# read(n) straight from the pipe) depend on timing, which StreamReader-only tests cannot
# reach. Here a real child writes known output in random chunks, with pauses, and every
# read operation's result is checked against that output, on both implementations.

WRITER = (
    "import sys, time\n"
    "data = open(sys.argv[1], 'rb').read()\n"
    "pos = 0\n"
    "for size, pause in zip(sys.argv[2::2], sys.argv[3::2]):\n"
    "    sys.stdout.buffer.write(data[pos:pos + int(size)]); sys.stdout.buffer.flush()\n"
    "    pos += int(size)\n"
    "    if pause == '1': time.sleep(0.002)\n"
    "sys.stdout.buffer.write(data[pos:])\n"
)
ALPHABET = bytes(b"abcdefg\n!"[i % 9] for i in range(256))

reads = st.lists(
    st.one_of(
        st.tuples(st.just("read"), st.integers(1, 300_000)),
        st.tuples(st.just("readexactly"), st.integers(1, 300_000)),
        st.tuples(st.just("readline"), st.just(0)),
        st.tuples(st.just("readuntil"), st.just(0)),
    ),
    min_size=1,
    max_size=40,
)
chunks = st.lists(st.tuples(st.integers(1, 400_000), st.booleans()), min_size=1, max_size=12)


def check_reads(impl: str, data: bytes, path: str, plan: list[tuple[int, bool]], ops: list[tuple[str, int]]) -> None:
    argv = ["-c", WRITER, path]
    for size, pause in plan:
        argv += [str(size), "1" if pause else "0"]

    async def main() -> None:
        # A limit far above the longest line: LimitOverrunError depends on buffering.
        proc = await asyncio.create_subprocess_exec(sys.executable, *argv, stdout=PIPE, limit=1 << 22)
        assert proc.stdout is not None
        pos = 0
        step = 0
        while True:
            op, n = ops[step % len(ops)]
            step += 1
            # Every operation consumes at least a byte or waits for EOF.
            assert step <= len(data) + 2 * len(ops) + 2, "the reads made no progress"
            rest = data[pos:]
            if op == "read":
                got = await proc.stdout.read(n)
                assert 0 < len(got) <= n or (got == b"" and not rest), (op, n, len(got), len(rest))
                assert got == rest[: len(got)]
            elif op == "readexactly":
                if n > len(rest):
                    try:
                        await proc.stdout.readexactly(n)
                    except asyncio.IncompleteReadError as exc:
                        assert exc.partial == rest and exc.expected == n
                        got = rest
                    else:
                        raise AssertionError("readexactly past EOF returned")
                else:
                    got = await proc.stdout.readexactly(n)
                    assert got == rest[:n]
            elif op == "readline":
                got = await proc.stdout.readline()
                end = rest.find(b"\n")
                assert got == (rest if end < 0 else rest[: end + 1])
            else:
                end = rest.find(b"!")
                if end < 0:
                    try:
                        await proc.stdout.readuntil(b"!")
                    except asyncio.IncompleteReadError as exc:
                        assert exc.partial == rest
                        got = rest
                    else:
                        raise AssertionError("readuntil past EOF returned")
                else:
                    got = await proc.stdout.readuntil(b"!")
                    assert got == rest[: end + 1]
            pos += len(got)
            if pos == len(data) and proc.stdout.at_eof():
                break
        assert await proc.stdout.read() == b""
        assert await proc.wait() == 0

    IMPLS[impl].run(main())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), plan=chunks, ops=reads)
def test_reads_from_a_live_child_match_its_output(
    seed: int, plan: list[tuple[int, bool]], ops: list[tuple[str, int]]
) -> None:
    total = sum(size for size, _ in plan) + random.Random(seed).randrange(100_000)
    data = random.Random(seed).randbytes(total).translate(ALPHABET)
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        for impl in IMPLS:
            check_reads(impl, data, f.name, plan, ops)
