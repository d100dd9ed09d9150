"""Random combinations of spawn options, run on stock asyncio and on fastspawn: the
child must see the same thing and the parent must get the same output (hypothesis)."""

from __future__ import annotations

import asyncio
import os
import pathlib
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
