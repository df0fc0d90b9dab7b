#!/usr/bin/env bash
# Does spreading a case's samples over its process's life make processes agree (issue "precise
# numbers")? With --chunks 5 each case samples its 0.05 s in five turns of 0.01 s, the round's other
# cases taking theirs in between (bench/sweep/plan.chunked), so a process median no longer rests on
# one 0.05 s stretch of the host's drift. MLP B1, B32, B128 and B512 for numpy.loop, torch.eager,
# jax.jit and c.ref, 10 processes each, at the default threads, --chunks 1 (the default) and 5,
# alternating three times; then the table (studies/records/noise_study_chunks/summary.md: round_sd, the
# within-process IQR, the share of slow processes, the step time against chunks-1-a). About 12
# minutes on the 2-core VM. From a clean tree.
set -euo pipefail
source "$(dirname "$0")/../scripts/common.sh"
out=${1:-studies/records/noise_study_chunks}
mkdir -p "$out"
cases=(--impl numpy.loop,torch.eager,jax.jit,c.ref --sizes 1x1x2,32x32x2,128x128x2,512x512x2 --rounds 10
       --max-rounds 10 --no-report --native-kernels)
for rep in a b c; do
  run "chunks-1-$rep" "$py" -m bench run "${cases[@]}" --chunks 1
  run "chunks-5-$rep" "$py" -m bench run "${cases[@]}" --chunks 5
done
"$py" studies/noise_summary.py "$out"
