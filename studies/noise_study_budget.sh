#!/usr/bin/env bash
# Does a longer sampling budget per process make processes agree (issue "precise numbers")? If the
# spread between processes came from short bursts of the host, a process that samples 0.25 s
# instead of 0.05 s would average them out. MLP B1, B32 and B128 for numpy.loop, torch.eager,
# jax.jit and c.ref, 8 processes each, at the default threads, --budget 0.05 (the default) and
# 0.25, alternating twice; then the table (studies/records/noise_study_budget/summary.md: round_sd, the
# within-process IQR, the share of slow processes). About 6 minutes on the 2-core VM. From a clean tree.
set -euo pipefail
source "$(dirname "$0")/../scripts/common.sh"
out=${1:-studies/records/noise_study_budget}
mkdir -p "$out"
cases=(--impl numpy.loop,torch.eager,jax.jit,c.ref --sizes 1x1x2,32x32x2,128x128x2 --rounds 8 --max-rounds 8
       --no-report --native-kernels)
for rep in a b; do
  run "budget-0.05-$rep" "$py" -m bench run "${cases[@]}" --budget 0.05
  run "budget-0.25-$rep" "$py" -m bench run "${cases[@]}" --budget 0.25
done
"$py" studies/noise_summary.py "$out"
