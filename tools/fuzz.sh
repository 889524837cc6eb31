#!/usr/bin/env bash
# Fuzzes the file readers (NPY, NPZ, IDX, WAV under include/erlmr/data/) with libFuzzer.
#
#   tools/fuzz.sh [npy|npz|idx|wav ...]  # default: all four targets
#
# Builds tests/fuzz/fuzz_<target>.cpp with clang++ -fsanitize=fuzzer,address,undefined and runs
# each for FUZZ_SECONDS (default 60) seconds, seeded with tests/data/npy_corpus/{valid,malformed}.
# New inputs go to $FUZZ_BUILD_DIR/corpus_<target> (default build/fuzz), crash reproducers to
# $FUZZ_BUILD_DIR/artifacts_<target>/. Exits non-zero if a target crashes, leaks, trips a
# sanitizer or allocates FUZZ_MALLOC_MB (default 64) MiB or more at once: an input of at most
# FUZZ_MAX_LEN (default 16384) bytes never justifies that much (deflate expands at most 1032x).
# Without a clang++ that can link libFuzzer it says why and exits 0.
# Reproduce a crash: build/fuzz/fuzz_<target> build/fuzz/artifacts_<target>/crash-...
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-60}"
MAX_LEN="${FUZZ_MAX_LEN:-16384}"
MALLOC_MB="${FUZZ_MALLOC_MB:-64}"
BUILD="${FUZZ_BUILD_DIR:-$ROOT/build/fuzz}"
TARGETS=("$@")
[[ ${#TARGETS[@]} -eq 0 ]] && TARGETS=(npy npz idx wav)

CXX_FUZZ="${FUZZ_CXX:-}"
if [[ -z "$CXX_FUZZ" ]]; then
  for c in clang++ clang++-19 clang++-18 clang++-17 clang++-16 clang++-15 clang++-14; do
    if command -v "$c" >/dev/null 2>&1; then CXX_FUZZ="$c"; break; fi
  done
fi
if [[ -z "$CXX_FUZZ" ]]; then
  echo "fuzz.sh: clang++ not found, fuzzing skipped (Debian: apt-get install -y clang libclang-rt-14-dev)"
  exit 0
fi

mkdir -p "$BUILD"
probe="$BUILD/probe.cpp"
printf '#include <cstddef>\n#include <cstdint>\nextern "C" int LLVMFuzzerTestOneInput(const std::uint8_t*, std::size_t) { return 0; }\n' >"$probe"
if ! "$CXX_FUZZ" -fsanitize=fuzzer,address,undefined "$probe" -o "$BUILD/probe" >"$BUILD/probe.log" 2>&1; then
  echo "fuzz.sh: $CXX_FUZZ cannot link -fsanitize=fuzzer,address,undefined, fuzzing skipped"
  echo "         (Debian: apt-get install -y libclang-rt-14-dev); see $BUILD/probe.log"
  exit 0
fi

# Tokens that help the mutator reach deep into the formats.
cat >"$BUILD/npy.dict" <<'DICT'
"\x93NUMPY\x01\x00"
"\x93NUMPY\x02\x00"
"\x93NUMPY\x03\x00"
"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }"
"'descr'"
"'fortran_order'"
"'shape'"
"True"
"False"
"'<f4'"
"'>f8'"
"'<i8'"
"'>i4'"
"'|u1'"
"'|b1'"
"'<c8'"
"'>c16'"
"(1,)"
"()"
"9223372036854775807"
DICT
cat "$BUILD/npy.dict" >"$BUILD/npz.dict"
cat >>"$BUILD/npz.dict" <<'DICT'
"PK\x03\x04"
"PK\x01\x02"
"PK\x05\x06"
"PK\x06\x06"
"PK\x06\x07"
"\x01\x00\x18\x00"
"\xff\xff\xff\xff"
".npy"
DICT

status=0
for t in "${TARGETS[@]}"; do
  src="$ROOT/tests/fuzz/fuzz_$t.cpp"
  [[ -f "$src" ]] || { echo "fuzz.sh: no such target: $t" >&2; exit 2; }
  bin="$BUILD/fuzz_$t"
  echo "fuzz.sh: building $bin with $CXX_FUZZ"
  "$CXX_FUZZ" -std=c++20 -g -O1 -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I "$ROOT/include" "$src" -lz -o "$bin"
  mkdir -p "$BUILD/corpus_$t" "$BUILD/artifacts_$t"
  echo "fuzz.sh: running fuzz_$t for ${SECONDS_PER_TARGET}s"
  dict=()
  [[ -f "$BUILD/$t.dict" ]] && dict=(-dict="$BUILD/$t.dict")
  set +e
  "$bin" -max_total_time="$SECONDS_PER_TARGET" -max_len="$MAX_LEN" -malloc_limit_mb="$MALLOC_MB" \
    "${dict[@]}" -artifact_prefix="$BUILD/artifacts_$t/" -print_final_stats=1 \
    "$BUILD/corpus_$t" "$ROOT/tests/data/npy_corpus/valid" "$ROOT/tests/data/npy_corpus/malformed" \
    >"$BUILD/fuzz_$t.log" 2>&1
  rc=$?
  set -e
  if [[ $rc -ne 0 ]]; then
    tail -n 60 "$BUILD/fuzz_$t.log"
    echo "fuzz.sh: fuzz_$t FAILED (exit $rc); reproducers in $BUILD/artifacts_$t/, log in $BUILD/fuzz_$t.log"
    status=1
  else
    grep -E '^(Done|stat::(number_of_executed_units|new_units_added|peak_rss_mb))' "$BUILD/fuzz_$t.log" || true
    echo "fuzz.sh: fuzz_$t ok (corpus: $(ls "$BUILD/corpus_$t" | wc -l) inputs; log: $BUILD/fuzz_$t.log)"
  fi
done
exit $status
