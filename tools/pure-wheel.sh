#!/usr/bin/env bash
# The pure-Python fallback wheel (py3-none-any) from the abi3 wheel: the same package
# without the compiled core. pip takes it only where no platform wheel fits (macOS,
# Windows, musl, other CPUs); there fastspawn imports, install() is a no-op and the
# functions are asyncio's own (fastspawn.features().native_spawn is False).
#
#     tools/pure-wheel.sh dist/abi3/fastspawn-*.whl dist/pure
set -euo pipefail
src=$1
out=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python=${PYTHON:-python3}
"$python" -m wheel unpack -d "$work" "$src"
root=$(echo "$work"/fastspawn-*)
rm -f "$root"/fastspawn/_core.*.so
dist_info=$(echo "$root"/fastspawn-*.dist-info)
cat > "$dist_info/WHEEL" <<WHEEL
Wheel-Version: 1.0
Generator: fastspawn tools/pure-wheel.sh
Root-Is-Purelib: true
Tag: py3-none-any
WHEEL
mkdir -p "$out"
"$python" -m wheel pack -d "$out" "$root"
