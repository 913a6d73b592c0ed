#!/usr/bin/env bash
# One prepared check of the project on a machine with a GPU, in at most about 8 minutes (issue 20):
# the environment, the gpu-marked tests (device agreement, no host sync, CUDA graphs), the solver and
# sampler overhead benches with the network plain, compiled, channels-last and under bf16 autocast,
# the solver memory bench, and summary.md: the throughput tables for docs/benchmarks.md.
#
#   tools/gpu_check.sh [OUT]            # OUT: the folder for everything (default: $OUT, else build/gpu-check)
#   tools/gpu_check.sh OUT --quick      # seconds per step: checks that the whole run works (any device)
#   DEVICE=cpu tools/gpu_check.sh OUT   # the same dry run on the CPU (implies --quick)
#
# Nothing is downloaded: a package the environment lacks is installed from the wheels in $WHEELS
# (default shared/wheels) or from this working tree (editable, no dependencies), else the check stops
# and says which. Each step has its own time limit; a step that fails or runs out is recorded in
# steps.txt and the check goes on. BUDGET (seconds, default 460; 3x on the CPU) stops starting new steps.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT_DIR=${OUT:-build/gpu-check}
QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) OUT_DIR=$arg ;;
  esac
done
DEVICE=${DEVICE:-cuda}
[ "$DEVICE" = cpu ] && QUICK=1
SCALE=1
[ "$DEVICE" = cpu ] && SCALE=3  # the dry run on a CPU: the same steps, slower
BUDGET=${BUDGET:-$((460 * SCALE))}
PY=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
STEPS="$OUT_DIR/steps.txt"
: > "$STEPS"
START=$SECONDS

# step NAME LIMIT_SECONDS COMMAND...: runs it with a time limit, output to OUT/NAME.log, status to steps.txt
step() {
  local name=$1 limit=$(($2 * SCALE))
  shift 2
  local left=$((BUDGET - (SECONDS - START)))
  if [ "$left" -le 10 ]; then
    echo "$name: skipped (budget spent)" | tee -a "$STEPS"
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" > "$OUT_DIR/$name.log" 2>&1
  local rc=$?
  local status=ok
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && status="timed out after ${limit} s"
  [ $rc -ne 0 ] && [ "$status" = ok ] && status="failed (exit $rc)"
  echo "$name: $status, $((SECONDS - t0)) s" | tee -a "$STEPS"
}

# -- the environment ---------------------------------------------------------------------------------
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "python: $PY"
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
} > "$OUT_DIR/environment.txt" 2>&1
cat "$OUT_DIR/environment.txt"

missing() {
  "$PY" - <<'PYEOF'
import importlib.util
need = ["torch", "diffusers", "safetensors", "click", "pluggy", "rich", "pytest", "diffcore", "diff_zoo", "diff_inverse"]
print(" ".join(n for n in need if importlib.util.find_spec(n) is None))
PYEOF
}
LACK=$(missing)
if [ -n "$LACK" ]; then
  echo "missing: $LACK; installing without the network" | tee -a "$STEPS"
  WHEELS=${WHEELS:-$ROOT/shared/wheels}
  if [ -d "$WHEELS" ]; then
    "$PY" -m pip install --no-index --find-links "$WHEELS" $LACK >> "$OUT_DIR/install.log" 2>&1
  fi
  "$PY" -m pip install --no-index --no-deps --no-build-isolation -e packages/diffcore -e packages/diff-zoo -e plugins/diff-inverse >> "$OUT_DIR/install.log" 2>&1
  LACK=$(missing)
  if [ -n "$LACK" ]; then
    echo "still missing: $LACK (see install.log); stopping" | tee -a "$STEPS"
    exit 1
  fi
fi
if [ "$DEVICE" != cpu ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "no CUDA device here: run with DEVICE=cpu for the dry run" | tee -a "$STEPS"
  exit 1
fi

# -- tests marked gpu ------------------------------------------------------------------------------------
mapfile -t GPU_TESTS < <(grep -rl --include='test_*.py' "mark.gpu" packages plugins integration_tests tools 2>/dev/null | sort)
step tests 120 "$PY" -m pytest -q -m gpu -p no:cacheprovider "${GPU_TESTS[@]}"

# -- benches ------------------------------------------------------------------------------------------------
B=tools/bench
if [ "$QUICK" = 1 ]; then
  SOLVER_ARGS=(--device "$DEVICE" --quick --solvers ddrm,dps)
  SOLVER_COMPILE_ARGS=("${SOLVER_ARGS[@]}")
  SAMPLER_ARGS=(--device "$DEVICE" --quick)
  SAMPLER_COMPILE_ARGS=("${SAMPLER_ARGS[@]}")
  MEMORY_ARGS=(--device "$DEVICE" --quick --solvers ddrm)
else
  SOLVER_ARGS=(--device "$DEVICE" --solvers ddrm,ddnm,ddnm+,pigdm,dps,mcg,red-diff,diffpir,daps --operators sr,inpaint --batch 4 --steps 20 --repeats 3)
  SOLVER_COMPILE_ARGS=(--device "$DEVICE" --solvers ddrm,dps,diffpir --operators sr --batch 4 --steps 20 --repeats 3)
  SAMPLER_ARGS=(--device "$DEVICE" --batch 4,256 --steps 20 --repeats 3)
  SAMPLER_COMPILE_ARGS=(--device "$DEVICE" --samplers ddim,dpm++2m --batch 4,256 --steps 20 --repeats 3)
  MEMORY_ARGS=(--device "$DEVICE" --quick)
fi
# in order of what a short GPU session most needs; the budget cuts the tail
step sampler_plain 60 "$PY" $B/sampler_overhead.py "${SAMPLER_ARGS[@]}" --json "$OUT_DIR/sampler_plain.json"
step solver_plain 90 "$PY" $B/solver_overhead.py "${SOLVER_ARGS[@]}" --json "$OUT_DIR/solver_plain.json"
step sampler_channels_last 45 "$PY" $B/sampler_overhead.py "${SAMPLER_ARGS[@]}" --channels-last --json "$OUT_DIR/sampler_channels_last.json"
step sampler_bf16 45 "$PY" $B/sampler_overhead.py "${SAMPLER_ARGS[@]}" --autocast bf16 --json "$OUT_DIR/sampler_bf16.json"
step sampler_compile 120 "$PY" $B/sampler_overhead.py "${SAMPLER_COMPILE_ARGS[@]}" --compile --json "$OUT_DIR/sampler_compile.json"
step solver_compile 100 "$PY" $B/solver_overhead.py "${SOLVER_COMPILE_ARGS[@]}" --compile --json "$OUT_DIR/solver_compile.json"
step solver_channels_last 60 "$PY" $B/solver_overhead.py "${SOLVER_ARGS[@]}" --channels-last --json "$OUT_DIR/solver_channels_last.json"
step solver_bf16 60 "$PY" $B/solver_overhead.py "${SOLVER_ARGS[@]}" --autocast bf16 --json "$OUT_DIR/solver_bf16.json"
step solver_memory 45 "$PY" $B/solver_memory.py "${MEMORY_ARGS[@]}"

"$PY" $B/gpu_summary.py "$OUT_DIR" > /dev/null 2>> "$STEPS" && echo "summary: $OUT_DIR/summary.md" | tee -a "$STEPS"
echo "total: $((SECONDS - START)) s" | tee -a "$STEPS"
