"""The Python interpreters installed on this machine: the current one plus pyenv's and
``/usr/bin/python3.X``, one per version.

``python tests/pythons.py --others`` prints those fastspawn supports (>= 3.11) other
than the running one, one path per line, for ``make test-versions``.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

MIN_VERSION = (3, 11)


def find() -> tuple[dict[tuple[int, int], str], list[str]]:
    """``({version: executable}, ["3.8 (/path)", ...])``: the supported interpreters, the
    current one first for its version, and labels of the older ones found."""
    found: dict[tuple[int, int], str] = {sys.version_info[:2]: sys.executable}
    too_old: list[str] = []
    candidates = glob.glob(os.path.expanduser("~/.pyenv/versions/*/bin/python")) + glob.glob("/usr/bin/python3.[0-9]*")
    for exe in sorted(candidates):
        try:
            out = subprocess.run(
                [exe, "-c", "import sys; sys.stdout.write('%d %d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout.split()
        except (OSError, subprocess.TimeoutExpired):
            continue
        if len(out) != 2:
            continue
        version = (int(out[0]), int(out[1]))
        if version < MIN_VERSION:
            label = f"{version[0]}.{version[1]} ({exe})"
            if label not in too_old:
                too_old.append(label)
            continue
        found.setdefault(version, exe)
    return found, too_old


if __name__ == "__main__":
    interpreters, _ = find()
    current = sys.version_info[:2]
    for version in sorted(interpreters):
        if version != current or "--others" not in sys.argv:
            print(interpreters[version])
