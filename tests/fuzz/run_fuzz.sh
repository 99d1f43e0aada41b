#!/bin/sh
# run_fuzz.sh: runs one libFuzzer target for a bounded time on a copy of its
# seed corpus (the CTest driver for tests/fuzz; see docs/fuzzing.md).
#
#   run_fuzz.sh TARGET_BINARY CORPUS_DIR SECONDS [libFuzzer options...]
#
# libFuzzer writes new inputs into the first corpus directory it is given, so
# it gets an empty temporary directory first and the repository's corpus
# second: the repository is only read. A crash leaves its input as
# <target>-crash-<sha1> (-leak-, -timeout-, -oom- likewise) in the
# working directory (CTest: the build's tests/ directory, or
# $KV_FUZZ_ARTIFACTS); reproduce it with `TARGET_BINARY FILE`.
set -eu

if [ $# -lt 3 ]; then
  echo "usage: $0 TARGET_BINARY CORPUS_DIR SECONDS [libFuzzer options...]" >&2
  exit 2
fi
bin=$1
corpus=$2
seconds=$3
shift 3
name=$(basename "$bin")
artifacts=${KV_FUZZ_ARTIFACTS:-.}

work=$(mktemp -d "${TMPDIR:-/tmp}/kvfuzz-$name.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

set -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$artifacts/$name-" "$@" "$work"
if [ -d "$corpus" ]; then
  set -- "$@" "$corpus"
else
  echo "run_fuzz.sh: no seed corpus at $corpus; starting from nothing" >&2
fi

echo "run_fuzz.sh: $bin $*"
status=0
"$bin" "$@" || status=$?
if [ "$status" -ne 0 ]; then
  echo "run_fuzz.sh: $name failed (exit $status). Inputs that crashed:" >&2
  ls -1t "$artifacts/$name"-crash-* "$artifacts/$name"-leak-* \
    "$artifacts/$name"-timeout-* "$artifacts/$name"-oom-* 2>/dev/null | sed 's/^/  /' >&2 || true
  echo "run_fuzz.sh: reproduce with: $bin FILE" >&2
fi
exit "$status"
