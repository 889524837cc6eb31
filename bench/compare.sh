#!/usr/bin/env bash
# Side-by-side timing of the ERL-MR sensor model step: erlmr (C++) vs PyTorch on the CPU.
#
#   bench/compare.sh [--threads N] [--seconds S] [--rounds R] [--configs a,b,...]
#                    [--malloc kept|default] [--erlmr PATH] [--python PATH]
#
# For every configuration it runs build/bench/erlmr_step_bench and
# bench/pytorch/bench_step.py alternately, R rounds (default 3), each run in its own process,
# both with the same thread count (default 2), and prints a Markdown table with the median
# ms/step of each side, the speed-up (PyTorch ms / erlmr ms; > 1 means erlmr is faster) and
# each side's peak resident memory (largest over the rounds; for PyTorch it includes the
# Python interpreter and libtorch).
#
# PyTorch runs as Debian's python3-torch (BLAS = OpenBLAS from libopenblas0-pthread through
# the libblas.so.3 alternative) with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from the
# environment, and with OMP_NUM_THREADS=N and OPENBLAS_NUM_THREADS=N in addition to
# torch.set_num_threads(N), so that neither its OpenMP team nor OpenBLAS's thread pool exceeds
# N threads. Extra variables for the PyTorch side only: PYTORCH_EXTRA_ENV="VAR=value ...".
# The erlmr side gets only --threads N and the environment as it is (and the malloc setting).
#
# --malloc kept (the default) runs both sides with GLIBC_TUNABLES set so that glibc's malloc
# keeps freed memory mapped (mmap threshold 32 MiB, trim threshold 4 GiB, top pad 256 MiB).
# With glibc's defaults PyTorch's CPU allocator hands its large blocks back to the kernel when
# they are freed and takes fresh ones the next step: about 44 000 page faults per fused batch-16
# step, which on a virtual machine can be most of its step time (2026-11-28: 540–650 ms per
# step against 200–275 ms kept). erlmr keeps its own blocks (HostBlockCache), so it is
# unaffected. kept replaces any GLIBC_TUNABLES of the caller's; --malloc default leaves the
# environment as it is (glibc's defaults unless the caller set GLIBC_TUNABLES; the setting of
# the tables in docs/performance.md before 2026-11-28).
#
# Progress goes to stderr; the report (machine, versions, table) to stdout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
THREADS=2
SECONDS_PER_RUN=3
ROUNDS=3
MALLOC=kept
CONFIGS="fused-b16,fused-b64,faithful-b16,faithful-b64,joint-b16,joint-b64,infer-b1,infer-b64"
ERLMR="${ERLMR_STEP_BENCH:-$ROOT/build/bench/erlmr_step_bench}"
PY="${PYTHON:-/usr/bin/python3}"

usage() { sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --seconds) SECONDS_PER_RUN="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --configs) CONFIGS="$2"; shift 2 ;;
    --malloc) MALLOC="$2"; shift 2 ;;
    --erlmr) ERLMR="$2"; shift 2 ;;
    --python) PY="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "compare.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

case "$MALLOC" in
  kept) MALLOC_ENV=(GLIBC_TUNABLES="glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967295:glibc.malloc.top_pad=268435456") ;;
  default) MALLOC_ENV=() ;;
  *) echo "compare.sh: --malloc must be kept or default, got '$MALLOC'" >&2; exit 2 ;;
esac

BENCH_PY="$ROOT/bench/pytorch/bench_step.py"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# PyTorch's environment: the two OpenBLAS tuning variables removed, thread counts pinned.
# shellcheck disable=SC2206
PT_ENV=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS="$THREADS"
        OPENBLAS_NUM_THREADS="$THREADS" ${MALLOC_ENV[@]+"${MALLOC_ENV[@]}"} ${PYTORCH_EXTRA_ENV:-})

# ---- header --------------------------------------------------------------------------------
model="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
cpus="$(lscpu | sed -n 's/^CPU(s):[[:space:]]*//p' | head -1)"
cps="$(lscpu | sed -n 's/^Core(s) per socket:[[:space:]]*//p' | head -1)"
sockets="$(lscpu | sed -n 's/^Socket(s):[[:space:]]*//p' | head -1)"
tpc="$(lscpu | sed -n 's/^Thread(s) per core:[[:space:]]*//p' | head -1)"
echo "## ERL-MR step: erlmr vs PyTorch (CPU)"
echo
echo "- machine: ${model:-unknown}, ${cpus:-?} CPUs (${sockets:-?} socket(s) x ${cps:-?} cores x ${tpc:-?} threads), load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- threads: $THREADS per side; ${SECONDS_PER_RUN}s timing budget per run; $ROUNDS rounds alternating erlmr / PyTorch, median reported"
echo "- malloc: $MALLOC ($([ "$MALLOC" = kept ] && echo "glibc keeps freed memory mapped, both sides: ${MALLOC_ENV[0]}" || echo "glibc's defaults"))"
"${PT_ENV[@]}" "$PY" - <<'EOF' || echo "- PyTorch: not importable with $PY (apt-get install python3-torch libopenblas0-pthread)"
import re, torch
cfg = torch.__config__.show()
blas = [l.strip() for l in cfg.splitlines() if "BLAS" in l]
fields = []
for l in blas:
    fields += [f.strip() for f in l.split(",") if re.search(r"(BLAS|LAPACK)_INFO", f)]
a = torch.randn(256, 256); (a @ a).sum()           # make sure the BLAS library is loaded
libs = sorted({l.split()[-1] for l in open("/proc/self/maps")
               if re.search(r"lib(open)?blas", l.split()[-1] if l.split() else "")})
print(f"- torch {torch.__version__}; torch.__config__.show(): "
      f"{', '.join(f.replace('- Build settings: ', '') for f in fields) or (blas[0] if blas else 'no BLAS line')}")
print(f"- BLAS library loaded by torch: {', '.join(libs) or 'none found in /proc/self/maps'}")
EOF
if [ -x "$ERLMR" ]; then
  echo "- erlmr: $ERLMR"
else
  echo "- erlmr: not built (cmake --build build --target erlmr_step_bench)"
fi
echo

# ---- runs ----------------------------------------------------------------------------------
# run_one SIDE CONFIG ROUND: appends the JSON line (or an error marker) to $TMP/SIDE.CONFIG
run_one() {
  local side="$1" cfg="$2" round="$3" out rc=0
  if [ "$side" = erlmr ]; then
    out="$(env ${MALLOC_ENV[@]+"${MALLOC_ENV[@]}"} "$ERLMR" --config "$cfg" --threads "$THREADS" --seconds "$SECONDS_PER_RUN" 2>"$TMP/err")" || rc=$?
  else
    out="$("${PT_ENV[@]}" "$PY" "$BENCH_PY" --config "$cfg" --threads "$THREADS" \
           --seconds "$SECONDS_PER_RUN" 2>"$TMP/err")" || rc=$?
  fi
  local line
  line="$(printf '%s\n' "$out" | grep '^{' | tail -1 || true)"
  if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
    echo "  $side $cfg round $round: FAILED (rc $rc): $(tail -1 "$TMP/err")" >&2
    echo "ERROR" >>"$TMP/$side.$cfg"
  else
    echo "  $side $cfg round $round: $line" >&2
    echo "$line" >>"$TMP/$side.$cfg"
  fi
}

IFS=',' read -r -a CFG_LIST <<<"$CONFIGS"
for cfg in "${CFG_LIST[@]}"; do
  for ((r = 1; r <= ROUNDS; r++)); do
    [ -x "$ERLMR" ] && run_one erlmr "$cfg" "$r"
    run_one pytorch "$cfg" "$r"
  done
done

# ---- table ---------------------------------------------------------------------------------
"$PY" - "$TMP" "$([ -x "$ERLMR" ] && echo built || echo missing)" "${CFG_LIST[@]}" <<'EOF'
import json, os, statistics, sys
tmp, erlmr_state, configs = sys.argv[1], sys.argv[2], sys.argv[3:]

def summary(side, cfg):
    path = os.path.join(tmp, f"{side}.{cfg}")
    if not os.path.exists(path):
        return None
    runs = [json.loads(l) for l in open(path) if l.startswith("{")]
    if not runs:
        return "error"
    return (statistics.median(r["ms_per_step"] for r in runs),
            max(r["peak_rss_mb"] for r in runs), len(runs))

print("| configuration | erlmr ms/step | PyTorch ms/step | speed-up (PyTorch/erlmr) | erlmr peak MB | PyTorch peak MB |")
print("|---|---:|---:|---:|---:|---:|")
for cfg in configs:
    e, p = summary("erlmr", cfg), summary("pytorch", cfg)
    if e is None:
        e_ms = e_mb = "not built" if erlmr_state == "missing" else "-"
    elif e == "error":
        e_ms = e_mb = "error"
    else:
        e_ms, e_mb = f"{e[0]:.2f}", f"{e[1]:.0f}"
    if p is None or p == "error":
        p_ms = p_mb = "error"
    else:
        p_ms, p_mb = f"{p[0]:.2f}", f"{p[1]:.0f}"
    ratio = f"{p[0] / e[0]:.2f}x" if isinstance(e, tuple) and isinstance(p, tuple) and e[0] > 0 else "-"
    print(f"| {cfg} | {e_ms} | {p_ms} | {ratio} | {e_mb} | {p_mb} |")
if erlmr_state == "missing":
    print()
    print("erlmr: not built (cmake --build build --target erlmr_step_bench)")
EOF
