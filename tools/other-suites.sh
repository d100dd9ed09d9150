#!/usr/bin/env bash
# Other projects' own subprocess tests, run against fastspawn.install(): anyio's
# (test_subprocesses, test_to_process; asyncio backend, trio's runs too) and uvloop's
# tests of asyncio's own loop (Test_AIO_Process*). Their sdists come from PyPI at pinned
# versions, into target/others/; a venv of their test dependencies and fastspawn's wheel.
#
#   bash tools/other-suites.sh PYTHON WHEEL
set -euo pipefail
PYTHON=$1
WHEEL=$2
ANYIO=4.16.0
UVLOOP=0.23.0
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$ROOT/target/others
VENV=$ROOT/.venv-others

"$PYTHON" -m venv --clear "$VENV"
"$VENV/bin/python" -m pip install -q "$WHEEL" "anyio[trio]==$ANYIO" "uvloop==$UVLOOP" \
    pytest pytest-timeout pytest-mock psutil trustme truststore blockbuster hypothesis
mkdir -p "$WORK"
for sdist in "anyio==$ANYIO" "uvloop==$UVLOOP"; do
    name=${sdist%%==*}
    if [ ! -d "$WORK/$name-${sdist##*==}" ]; then
        "$VENV/bin/python" -m pip download -q --no-deps --no-binary :all: -d "$WORK" "$sdist"
        tar xzf "$WORK/$name-${sdist##*==}.tar.gz" -C "$WORK"
    fi
done
export PYTHONPATH=$ROOT/tests/others
run() { "$VENV/bin/python" -m pytest -p no:cacheprovider -p fastspawn_installed -q "$@"; }

echo "== anyio $ANYIO: subprocesses and worker processes"
(cd "$WORK/anyio-$ANYIO" && run tests/test_subprocesses.py tests/test_to_process.py)
# Its tests/ alone, away from the sdist's uvloop/ sources, so the installed uvloop (compiled)
# is the one imported. -s: test_process_streams_redirect dup2()s over fds 1 and 2, which
# pytest's capture owns (it fails under capture on stock asyncio too).
echo "== uvloop $UVLOOP: its tests of asyncio's own loop"
rm -rf "$WORK/uvloop-tests" && mkdir "$WORK/uvloop-tests"
cp -r "$WORK/uvloop-$UVLOOP/tests" "$WORK/uvloop-tests/"
(cd "$WORK/uvloop-tests" && run -s -k "AIO or aio" tests/test_process.py tests/test_process_spawning.py)
