#!/usr/bin/env bash
# Issue 13's GPU figures in one device call (about 8 minutes on an H200), prepared so that a
# session lent the device spends its 15 minutes measuring, not setting up:
#
#   here:    ./tools/device_wheels.sh                       # the wheels the GPU image lacks -> .whl/
#   device:  run(command="bash bench/gpu.sh", carry=[".whl"], timeout_s=600)
#
# or some parts only: bash bench/gpu.sh sampling compile graphs memory (all four by default).
# Each part has its own time limit so that one slow part leaves the others their figures; every
# part's output is also written under $OUT (the device tool brings it back) or bench/results/.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PY:-python3}  # the device image's python3 holds torch
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

part() {  # part NAME SECONDS COMMAND...: runs COMMAND under a limit, output to the screen and $OUT/NAME.txt
  local name=$1 limit=$2; shift 2
  echo "== $name ($*)"
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"
  echo "== $name: exit ${PIPESTATUS[0]} after ${SECONDS}s in all"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/machine.txt"
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$OUT/machine.txt"
PARTS=" ${*:-sampling compile graphs memory} "
# default settings (SDPA kernel chosen per device, channels-last on CUDA), then torch.compile in its
# default mode and with CUDA graphs (reduce-overhead: no launch overhead per kernel)
[[ $PARTS == *" sampling "* ]] && part sampling 150 "$PY" bench/sampling.py --section gpu --reps 3
[[ $PARTS == *" compile "* ]] && GRAPHFLOW_COMPILE=1 part sampling_compile 150 "$PY" bench/sampling.py --section gpu --reps 3
[[ $PARTS == *" graphs "* ]] && GRAPHFLOW_COMPILE=1 GRAPHFLOW_COMPILE_MODE=reduce-overhead \
  part sampling_graphs 150 "$PY" bench/sampling.py --section gpu --reps 3
[[ $PARTS == *" memory "* ]] && part memory 120 "$PY" bench/memory.py --full --models sdxl --steps 4
exit 0
