#!/usr/bin/env bash
# The GPU benchmarks as ONE command for a lent GPU machine (H100/H200, no network): about 9 minutes.
#
#   bash benchmarks/gpu_run.sh                 # all four, in this order
#   bash benchmarks/gpu_run.sh unet glow       # a subset (names: attention unet glow ode lengths)
#   bash benchmarks/gpu_run.sh lengths         # linear / FLASH vs softmax over T (not in the default
#                                              # set: the four above already fill one 10-minute call)
#
# Run from anywhere; it works in the repository root. Wheels of the runtime dependencies that the
# machine's image lacks are installed from a carried .whl/ folder (benchmarks/README.md lists them
# and gives the download command). The repository itself is used through PYTHONPATH, without an
# install. Each benchmark runs under its own time limit and writes results/<name>-gpu.json as soon as
# it has a first measurement, so a limit reached in PyTorch's compile still leaves the eager numbers.
# The JSON and a log are copied to $OUT when it is set.
set -u
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # JAX and PyTorch share the GPU in one process

if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

log="${OUT:-/tmp}/gpu_run.log"
: >"$log"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee -a "$log"
python3 -c "import jax, torch; print('jax', jax.__version__, jax.devices(), '| torch', torch.__version__,
      torch.cuda.is_available() and torch.cuda.get_device_name())" 2>&1 | tee -a "$log"

selected=" ${*:-attention unet glow ode} "
summary=()
bench() {  # bench SHORT_NAME LIMIT_S MODULE [ARGS...]
  local short=$1 limit=$2 module=$3
  shift 3
  [[ $selected == *" $short "* ]] || return 0
  local t0=$SECONDS
  echo "== $module $* (limit ${limit} s)" | tee -a "$log"
  timeout -k 10 "$limit" python3 -m "benchmarks.$module" "$@" 2>&1 | tee -a "$log"
  local rc=${PIPESTATUS[0]}
  summary+=("$module rc=$rc $((SECONDS - t0)) s")
}

bench attention 100 attention_positions --sweep
bench unet 210 unet_vs_diffusers
bench glow 170 glow_vs_pytorch
bench ode 50 ode_likelihood_vs_scipy
bench lengths 150 attention_lengths

printf '%s\n' "${summary[@]}" | tee -a "$log"
if [[ -n ${OUT:-} ]]; then
  cp benchmarks/results/*-gpu.json "$OUT"/ 2>/dev/null
  ls "$OUT"
fi
