#!/usr/bin/env bash
# GPU verification in one call (issue: a committed GPU run): the CUDA equivalence tests, then the
# MLP and GPT sweeps on the GPU, each run directory written under OUT, then a summary.
#
#   scripts/gpu_verify.sh [OUT]          on a GPU machine (uses the frameworks installed there)
#   DRY=1 scripts/gpu_verify.sh [OUT]    the same steps on the CPU with tiny sizes: tests the script
#
# Environment: PYTHON (default python3), ROUNDS (default 5), BUDGET (sampling seconds, default 0.05).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-results/_scratch/gpu}}
PY=${PYTHON:-python3}
ROUNDS=${ROUNDS:-5}
BUDGET=${BUDGET:-0.05}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
if [ "${DRY:-0}" = 1 ]; then
  DEVICE=cpu; MLP_SIZES=1x1x2; GPT_SIZES=1x8x16x1x2; IMPLS_MLP=numpy.loop,null.noop
  IMPLS_GPT=numpy.loop,null.noop; ROUNDS=1  # the script's plumbing; the frameworks are tested elsewhere
else
  DEVICE=cuda; MLP_SIZES=gpu; GPT_SIZES=gpu
  IMPLS_MLP=torch.eager,torch.compile,torch.fullgraph,torch.cudagraphs,torch.scan,jax.eager,jax.jit,jax.scan,null.noop
  IMPLS_GPT=$IMPLS_MLP
fi
status=0
echo "== versions"; $PY -c "import sys, torch, jax; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'jax', jax.__version__, [str(d) for d in jax.devices()])" 2>&1 | tail -1
echo "== CUDA equivalence tests (TF32 off)"
$PY -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$OUT/cuda_tests.log" | tail -5 || status=1
for model in mlp gpt; do
  sizes=$([ $model = mlp ] && echo "$MLP_SIZES" || echo "$GPT_SIZES")
  impls=$([ $model = mlp ] && echo "$IMPLS_MLP" || echo "$IMPLS_GPT")
  echo "== $model sweep on $DEVICE: $sizes"
  $PY -m bench run --model $model --device $DEVICE --sizes "$sizes" --impl "$impls" --rounds "$ROUNDS" \
      --budget "$BUDGET" --out "$OUT/${model}_$DEVICE" 2>&1 | tail -30 || status=1
done
echo "== summary"
for d in "$OUT"/*_"$DEVICE"; do
  [ -f "$d/report.md" ] && { echo "$d"; awk '/^## Headlines/{on=1; next} /^## |^!\[/{on=0} on && /^- /' "$d/report.md"; }
done
exit $status
