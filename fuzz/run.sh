#!/usr/bin/env bash
# Fuzz kernelwire's compiled receive path for a given time.
#
#   fuzz/run.sh SECONDS [extra libFuzzer args...]
#
# Builds the extensions with clang, libFuzzer coverage and ASan/UBSan (via
# scripts/sanitize.sh --fuzzer, into fuzz/work/build), then runs
# fuzz/fuzz_session.py on one core, at low priority, starting from the
# committed seed corpus (fuzz/corpus, never written to) plus whatever earlier
# runs found (fuzz/work/corpus).  Findings land in fuzz/work/crash-*; turn
# each into a regression test in tests/regressions/.  Needs clang and the
# `fuzz` extra (pip install -e ".[fuzz]").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
seconds=${1:?usage: fuzz/run.sh SECONDS [libFuzzer args...]}
shift
python=${PYTHON:-$repo/.venv/bin/python}
work=$here/work
mkdir -p "$work/corpus"

if [ "${REBUILD:-1}" = 1 ] || [ ! -f "$work/build/env.sh" ]; then
    rm -rf "$work/build"
    PYTHON="$python" "$repo/scripts/sanitize.sh" --fuzzer --build-only "$work/build"
fi
# shellcheck disable=SC1091
. "$work/build/env.sh"
# the Python allocator is faster, and the fuzzer's own leak check is CPython noise
unset PYTHONMALLOC

cd "$work"
status=0
nice -n 10 "$python" "$here/fuzz_session.py" "$work/corpus" "$here/corpus" \
    -max_total_time="$seconds" -max_len=65536 -timeout=30 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$work/" "$@" 2>&1 | tee "$work/last-run.log" \
    | grep -E --line-buffered "DONE|pulse|ERROR|crash-|Assertion|Traceback|stat::" || status=$?
tail -n 12 "$work/last-run.log"
ls "$work"/crash-* 2>/dev/null && exit 1
exit 0
