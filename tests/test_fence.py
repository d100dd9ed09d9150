"""The fence around private asyncio/CPython internals (``fastspawn._private``).

* Outside ``fastspawn/_private/``, no module reads a private name of asyncio,
  ``subprocess`` or another stdlib module, nor any of the private asyncio names the
  fenced code uses, on any object but its own (``self``/``cls``).
* Rust spells no private Python name.
* On a Python outside the verified table (simulated 3.16), fastspawn still spawns
  natively but hands out asyncio's own StreamReader, protocol and ``communicate()``.
"""

from __future__ import annotations

import ast
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

import fastspawn
from fastspawn import _private

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "python" / "fastspawn"
# Private asyncio/CPython names the fenced code uses: none may appear outside the fence.
FENCED_NAMES = {
    "_buffer",
    "_wait_for_data",
    "_waiter",
    "_wakeup_waiter",
    "_maybe_resume_transport",
    "_exception",
    "_limit",
    "_eof",
    "_read_stream",
    "_pipe_fds",
    "_stdin_closed",
    "_make_subprocess_transport",
    "_child_created",
    "_format_callback_source",
    "_watcher",
    "_UnixSelectorEventLoop",
    "_USE_POSIX_SPAWN",
    "_HAVE_POSIX_SPAWN_CLOSEFROM",
    "_all_tasks",
    "_scheduled_tasks",
    "_eager_tasks",
}
STDLIB_MODULES = {"asyncio", "subprocess", "os", "sys", "select", "signal", "socket", "threading", "weakref"}


def unfenced_modules() -> list[pathlib.Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if "_private" not in p.relative_to(PACKAGE).parts]


def private_uses(path: pathlib.Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or name.startswith("__"):
            continue
        receiver = node.value
        own = isinstance(receiver, ast.Name) and receiver.id in ("self", "cls")
        if name in FENCED_NAMES and not own:
            found.append(f"{path.name}:{node.lineno}: .{name}")
        # A private name read off a stdlib module, e.g. asyncio.unix_events._X.
        root = receiver
        while isinstance(root, ast.Attribute):
            root = root.value
        if isinstance(root, ast.Name) and root.id in STDLIB_MODULES:
            found.append(f"{path.name}:{node.lineno}: {root.id}...{name}")
    return found


def test_no_private_stdlib_name_outside_the_fence() -> None:
    uses = [use for path in unfenced_modules() for use in private_uses(path)]
    assert uses == []


def test_the_checker_sees_a_private_use() -> None:
    # The check above must be able to fail.
    fenced = PACKAGE / "_private" / "hooks.py"
    assert private_uses(fenced), "the fenced hooks use private names; the checker found none"


def test_rust_spells_no_private_python_name() -> None:
    literal = re.compile(r'"(_[A-Za-z][A-Za-z0-9_]*)"')
    found = []
    for path in sorted((ROOT / "rust").rglob("*.rs")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            found += [
                f"{path.name}:{number}: {m}" for m in literal.findall(line) if not m.startswith("__") and m != "_core"
            ]
    assert found == []


def test_verified_table_and_the_decision() -> None:
    assert (3, 15) in _private.VERIFIED and (3, 11) in _private.VERIFIED
    assert _private.fast_streams_allowed((3, 13), {})
    assert not _private.fast_streams_allowed((3, 16), {})
    assert not _private.fast_streams_allowed((3, 10), {})
    assert not _private.fast_streams_allowed((3, 13), {"FASTSPAWN_STOCK_STREAMS": "1"})
    assert _private.fast_streams_allowed((3, 13), {"FASTSPAWN_STOCK_STREAMS": "0"})
    features = fastspawn.features()
    assert features.python_verified == (sys.version_info[:2] in _private.VERIFIED)
    assert features.fast_streams == _private.fast_streams_allowed(sys.version_info[:2], os.environ)


# Run in a fresh interpreter that pretends to be 3.16 before fastspawn is imported.
UNVERIFIED_SCRIPT = """
import asyncio, json, sys
sys.version_info = (3, 16, 0, "alpha", 1)
import fastspawn
from fastspawn import _core

async def main():
    proc = await asyncio.create_subprocess_exec("sh", "-c", "echo one; echo two", stdout=-1)
    first = await proc.stdout.readline()
    rest, _ = await proc.communicate()
    direct = await fastspawn.create_subprocess_exec("echo", "direct", stdout=-1)
    out, _ = await direct.communicate()
    return {
        "features": fastspawn.features().__dict__,
        "reader": type(proc.stdout).__module__ + "." + type(proc.stdout).__qualname__,
        "direct_reader": type(direct.stdout).__module__ + "." + type(direct.stdout).__qualname__,
        "native": type(proc._transport).__module__,
        "communicate_is_stock": asyncio.subprocess.Process.communicate.__module__ == "asyncio.subprocess",
        "lines": [first.decode(), rest.decode(), out.decode()],
    }

fastspawn.install()
print(json.dumps(asyncio.run(main())))
"""


@pytest.mark.parametrize("how", ["unverified version", "FASTSPAWN_STOCK_STREAMS=1"])
def test_outside_the_table_spawning_stays_native_with_stock_streams(how: str) -> None:
    env = dict(os.environ)
    script = UNVERIFIED_SCRIPT
    if how != "unverified version":
        env["FASTSPAWN_STOCK_STREAMS"] = "1"
        script = script.replace('sys.version_info = (3, 16, 0, "alpha", 1)', "")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["features"]["fast_streams"] is False
    assert result["features"]["python_verified"] is (how != "unverified version")
    assert result["features"]["native_spawn"] is True
    assert result["native"] == "fastspawn._transport"
    assert result["reader"] == "asyncio.streams.StreamReader"
    assert result["direct_reader"] == "asyncio.streams.StreamReader"
    assert result["communicate_is_stock"] is True
    assert result["lines"] == ["one\n", "two\n", "direct\n"]
