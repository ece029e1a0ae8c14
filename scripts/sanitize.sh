#!/usr/bin/env bash
# Build kernelwire's C extensions with AddressSanitizer and
# UndefinedBehaviorSanitizer and run the test suite against them.
#
#   scripts/sanitize.sh [pytest args...]        build, then run pytest (default: the whole suite)
#   scripts/sanitize.sh --build-only DIR        only build, into the scratch tree DIR
#   scripts/sanitize.sh --fuzzer --build-only DIR
#                                                clang build for atheris (adds libFuzzer coverage)
#
# The build happens in a scratch copy of the source tree, never in place, so
# the checkout's own extensions (and anyone using them) are left alone; the
# scratch tree's src/ goes first on PYTHONPATH.
#
# CPython itself is not built with ASan, so the sanitizer runtime must be
# loaded before anything else: LD_PRELOAD=<libasan> (gcc) or libclang_rt.asan
# (clang).  CPython's allocations at exit look like leaks to LeakSanitizer,
# hence ASAN_OPTIONS=detect_leaks=0 (leaks are tested by tests/test_leaks*.py
# instead).  PYTHONMALLOC=malloc sends Python's own allocations through ASan
# too, so an overflow into a neighbouring object is caught.
#
# Environment: PYTHON (default .venv/bin/python; the build requirements of
# pyproject.toml, Cython and setuptools, are installed into it when missing),
# CC (default gcc; clang with --fuzzer), KEEP=1 to keep the scratch tree.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
[ -x "$python" ] || python=$(command -v python3)

# setup.py runs directly below, without pip's isolated build environment, so
# pyproject.toml's build requirements must be in this Python: the `test` extra
# does not bring Cython, and venvs of Python >= 3.12 have no setuptools.
if ! "$python" -c 'import Cython, setuptools' 2>/dev/null; then
    read -r -a build_requires < <("$python" - "$repo/pyproject.toml" <<'PY'
import re, sys
section = open(sys.argv[1]).read().split("[build-system]", 1)[1].split("\n[", 1)[0]
requires = re.search(r"requires\s*=\s*\[(.*?)\]", section, re.S).group(1)
print(" ".join(re.findall(r'"([^"]+)"', requires)))
PY
    )
    echo "sanitize.sh: installing the build requirements (${build_requires[*]}) for $python" >&2
    "$python" -m pip install -q "${build_requires[@]}"
fi

build_only=""
fuzzer=0
while [ $# -gt 0 ]; do
    case "$1" in
        --fuzzer) fuzzer=1; shift ;;
        --build-only) build_only=$2; shift 2 ;;
        *) break ;;
    esac
done

if [ "$fuzzer" = 1 ]; then
    cc=${CC:-clang}
    sanitizers="address,undefined,fuzzer-no-link"
else
    cc=${CC:-gcc}
    sanitizers="address,undefined"
fi
command -v "$cc" >/dev/null || {
    echo "sanitize.sh: $cc not found (Debian/Ubuntu: apt-get install $cc)" >&2
    exit 2
}

# -- build ---------------------------------------------------------------------
scratch=${build_only:-$(mktemp -d "${TMPDIR:-/tmp}/kernelwire-asan.XXXXXX")}
mkdir -p "$scratch"
if [ -z "$build_only" ] && [ "${KEEP:-0}" != 1 ]; then
    trap 'rm -rf "$scratch"' EXIT
fi
# the working tree as it is (uncommitted work included), without build products
tar -C "$repo" --exclude=./.venv --exclude='./.venv-*' --exclude=./.git --exclude='*.so' --exclude='_ext/*.c' \
    --exclude=./build --exclude='./fuzz/work*' -cf - . | tar -C "$scratch" -xf -

flags="-fsanitize=$sanitizers -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
(
    cd "$scratch"
    # setup.py alone: the build needs only the extension list, and without
    # pyproject.toml any setuptools will do (no isolated build environment)
    mv pyproject.toml pyproject.toml.off
    CC="$cc" LDSHARED="$cc -shared" CFLAGS="$flags" LDFLAGS="-fsanitize=$sanitizers" \
        "$python" setup.py -q build_ext --build-lib ext-build --build-temp ext-tmp --force \
        >build.log 2>&1 || true
    mv pyproject.toml.off pyproject.toml
    cp ext-build/kernelwire/*.so src/kernelwire/ 2>/dev/null || true
)
for mod in _ccore _zmqio; do
    if [ -f "$scratch/_ext/$mod.pyx" ] && ! ls "$scratch"/src/kernelwire/$mod.*.so >/dev/null 2>&1; then
        echo "sanitize.sh: $mod did not build, see $scratch/build.log" >&2
        tail -30 "$scratch/build.log" >&2
        exit 1
    fi
done

if [ "$fuzzer" = 1 ]; then
    runtime="$("$python" -c 'import atheris; print(atheris.path())')/asan_with_fuzzer.so"
elif [ "${cc##*/}" = clang ] || [[ "${cc##*/}" == clang-* ]]; then
    runtime=$("$cc" -print-file-name=libclang_rt.asan-x86_64.so)
else
    runtime=$("$cc" -print-file-name=libasan.so)
fi
# C++ extensions (matplotlib's, say) throw exceptions: ASan's __cxa_throw
# interceptor needs the real one loaded at start-up, which a C program like
# python does not do by itself.
cxx_runtime=$("$cc" -print-file-name=libstdc++.so.6 2>/dev/null || true)
case "$cxx_runtime" in /*) runtime="$runtime:$cxx_runtime" ;; esac
cat >"$scratch/env.sh" <<EOF
export LD_PRELOAD="$runtime"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHONMALLOC=malloc
export PYTHONPATH="$scratch/src\${PYTHONPATH:+:\$PYTHONPATH}"
EOF
echo "sanitize.sh: built into $scratch (source $scratch/env.sh to use it)" >&2
[ -n "$build_only" ] && exit 0

# -- run -----------------------------------------------------------------------
# shellcheck disable=SC1091
. "$scratch/env.sh"
"$python" -c '
import kernelwire, kernelwire._ccore as c, sys
assert kernelwire.implementation == "cython", kernelwire.implementation
assert c.__file__.startswith(sys.argv[1]), c.__file__
print("sanitize.sh: testing", c.__file__)
' "$scratch/src"
cd "$repo"
"$python" -m pytest -p no:cacheprovider "$@"
