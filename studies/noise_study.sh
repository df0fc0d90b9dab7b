#!/usr/bin/env bash
# Where the spread between worker processes comes from (issue "precise numbers"): the same mid-size
# MLP cases (B32-H32-L2, B128-H128-L2, B512-H512-L2; numpy.loop, torch.eager, jax.jit, c.ref; 8
# processes each, no extra rounds) under one controlled change at a time, back to back, then one
# table (studies/records/noise_study/summary.md, .csv) of round_sd (sd of the log process medians) and the
# within-process IQR per variation. About 15 minutes on the 2-core VM.
# Then old-default and t2-thp-off twice more each, alternating (their first difference could be chance). From a clean tree.
#
#   old-default      --threads 2 (all CPUs), every framework's worker alive through the round
#   t2-passive       ... and OMP_WAIT_POLICY=PASSIVE (OpenMP threads sleep at once instead of spinning)
#   t2-bound         ... and OMP_PROC_BIND=close OMP_PLACES=cores (each OpenMP thread on its own core)
#   t2-thp-off       ... with transparent huge pages off for the run (prctl PR_SET_THP_DISABLE)
#   t2-haswell       ... with OPENBLAS_CORETYPE=Haswell (OpenBLAS held to AVX2, as on the first VM)
#   t2-one-worker    --threads 2, one worker process alive at a time (no idle framework beside the case)
#   t1-shared        --threads 1 on the first CPU, which the runner and the system share
#   t1-harness-core  --threads 1 on the second CPU, the first left to the runner and the system
#   new-default      --threads 1, harness core, one live worker
set -euo pipefail
source "$(dirname "$0")/../scripts/common.sh"
out=${1:-studies/records/noise_study}
mkdir -p "$out"
cases=(--impl numpy.loop,torch.eager,jax.jit,c.ref --sizes 32x32x2,128x128x2,512x512x2 --rounds 8 --max-rounds 8
       --no-report)
common=("${cases[@]}" --native-kernels)  # every variation but t2-haswell: each library on its own kernels
old=(--threads 2 --no-harness-core --live-workers all)
nothp() { "$py" -c 'import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl(41, 1, 0, 0, 0) != 0: sys.exit("prctl(PR_SET_THP_DISABLE) failed")
os.execv(sys.executable, [sys.executable, "-m", "bench", *sys.argv[1:]])' "$@"; }
run old-default      "$py" -m bench run "${common[@]}" "${old[@]}"
run t2-passive       env OMP_WAIT_POLICY=PASSIVE "$py" -m bench run "${common[@]}" "${old[@]}"
run t2-bound         env OMP_PROC_BIND=close OMP_PLACES=cores "$py" -m bench run "${common[@]}" "${old[@]}"
run t2-thp-off       nothp run "${common[@]}" "${old[@]}"
run t2-haswell       env OPENBLAS_CORETYPE=Haswell "$py" -m bench run "${cases[@]}" "${old[@]}"
run t2-one-worker    "$py" -m bench run "${common[@]}" --threads 2 --no-harness-core --live-workers one
run t1-shared        "$py" -m bench run "${common[@]}" --threads 1 --no-harness-core --live-workers all
run t1-harness-core  "$py" -m bench run "${common[@]}" --threads 1 --harness-core --live-workers all
run new-default      "$py" -m bench run "${common[@]}" --threads 1 --harness-core --live-workers one
# the two settings that differ most at 2 threads, again, alternating: is THP the cause, or chance?
for rep in b c; do
  run old-default-$rep "$py" -m bench run "${common[@]}" "${old[@]}"
  run t2-thp-off-$rep  nothp run "${common[@]}" "${old[@]}"
done
"$py" studies/noise_summary.py "$out"
