# lib.sh - shared helpers of the tests/train shell tests (sourced).
# Needs from ctest: PVLM_BIN, PVLM_TMP, PVLM_MPIEXEC, PVLM_SOURCE_DIR (and Open MPI's root switches).
set -euo pipefail
: "${PVLM_BIN:?}" "${PVLM_TMP:?}" "${PVLM_SOURCE_DIR:?}"
MPIEXEC=${PVLM_MPIEXEC:-mpirun}
PY=${PVLM_PYTHON:-/usr/bin/python3}
export PVLM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# PIDs this test started in the background; killed (by PID) on exit
BG_PIDS=()
rm -rf "$PVLM_TMP"
mkdir -p "$PVLM_TMP"
cd "$PVLM_TMP"

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "PASS: $*"; }

# tiny data once per test (deterministic)
"$PVLM_SOURCE_DIR/scripts/make-tiny-data.sh" "$PVLM_BIN" data 48 >/dev/null 2>&1 ||
  fail "make-tiny-data.sh failed"

# The tiny model and run used by every test (fractions of a second per step on 1 core).
TINY=(--tokenizer data/tok --images data/img/manifest.json --image-size 16 --patch-size 8 --d-model 32
      --n-heads 2 --d-ff 64 --enc-layers 1 --dec-layers 1 --prefix-len 6 --suffix-len 12 --micro-batch 4
      --lr 3e-3 --warmup 2 --log-every 4 --loader-threads 1 --peak-gflops 1)
if [ -f data/text/manifest.json ]; then TINY+=(--text data/text/manifest.json --text-ratio 0.25); fi

# pretrain NP ARGS...: run `pvlm pretrain` on NP ranks; returns its exit code.
pretrain() {
  local np=$1; shift
  "$MPIEXEC" -np "$np" --oversubscribe --bind-to none "$PVLM_BIN" pretrain "${TINY[@]}" "$@"
}

# pretrain_bg LOG NP ARGS...: start `pvlm pretrain` in the background (stderr to LOG); BG = mpirun's PID.
pretrain_bg() {
  local log=$1 np=$2; shift 2
  "$MPIEXEC" -np "$np" --oversubscribe --bind-to none "$PVLM_BIN" pretrain "${TINY[@]}" "$@" 2>>"$log" &
  BG=$!
  BG_PIDS+=("$BG")
}

# latest_step DIR: the step named by DIR/latest
latest_step() { sed -E 's/^step_0*([0-9])/\1/' "$1/latest"; }

# same_files A B FILE...: byte-identical files in two step directories
same_files() {
  local a=$1 b=$2; shift 2
  for f in "$@"; do cmp -s "$a/$f" "$b/$f" || fail "$a/$f and $b/$f differ"; done
}

# wait_for COND_CMD TIMEOUT_S: poll until the command succeeds
wait_for() {
  local cmd=$1 t=$2 i
  for i in $(seq 1 $((t * 10))); do eval "$cmd" && return 0; sleep 0.1; done
  return 1
}

# rank_pid MPIRUN_PID RANK: the PID of a rank started by that mpirun (from its environment)
rank_pid() {
  local p i
  for i in $(seq 1 50); do
    for p in $(pgrep -P "$1"); do
      if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then echo "$p"; return 0; fi
    done
    kill -0 "$1" 2>/dev/null || { echo "rank_pid: mpirun $1 is gone" >&2; return 1; }
    sleep 0.1
  done
  return 1
}

# verify_ckpt DIR: pvlm inspect accepts the step directory (state.json, checksums, safetensors)
verify_ckpt() { "$PVLM_BIN" inspect "$1" >/dev/null 2>&1; }

# reference_at STEP DIR [ARGS]: an uninterrupted run of the long schedule, stopped at STEP
LONG=(--steps 100000 --ckpt-every 0)
reference_at() {
  local s=$1 d=$2; shift 2
  set +e; pretrain 2 "${LONG[@]}" --ckpt-dir "$d" --stop-at-step "$s" "$@" 2>"$d.log"; local rc=$?; set -e
  [ $rc -eq 3 ] || fail "reference run to step $s: exit $rc: $(tail -3 "$d.log")"
}

cleanup_bg() { local p; for p in "${BG_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup_bg EXIT
