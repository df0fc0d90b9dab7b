#!/usr/bin/env bash
# The noise study's GPT part (issue "precise numbers"): at the current default (1 thread beside a
# harness core) the GPT's processes still differ more than the MLP's (round_sd 0.03 to 0.07 against
# 0.01), so: GPT B4-T64-C32-L2, C32-L8 and C128-L2 for c.ref, numpy.loop, torch.eager and jax.jit, 8
# processes each, no extra rounds, back to back: the old default (2 threads), then the default and
# glibc's malloc on transparent huge pages (GLIBC_TUNABLES=glibc.malloc.hugetlb=1: every heap and
# mmap'd chunk madvised, against madvise-only THP on this VM) twice each, alternating. Table:
# studies/records/noise_study_gpt/summary.md (studies/noise_summary.py). About 8 minutes on the 2-core VM.
set -euo pipefail
source "$(dirname "$0")/../scripts/common.sh"
out=${1:-studies/records/noise_study_gpt}
mkdir -p "$out"
common=(--model gpt --impl c.ref,numpy.loop,torch.eager,jax.jit --sizes 4x64x32x2x2,4x64x32x8x2,4x64x128x2x4
        --rounds 8 --max-rounds 8 --no-report --native-kernels)
run gpt-t1-default   "$py" -m bench run "${common[@]}"
run gpt-t1-hugetlb   env GLIBC_TUNABLES=glibc.malloc.hugetlb=1 "$py" -m bench run "${common[@]}"
run gpt-t2-old-default "$py" -m bench run "${common[@]}" --threads 2 --no-harness-core
run gpt-t1-default-b "$py" -m bench run "${common[@]}"
run gpt-t1-hugetlb-b env GLIBC_TUNABLES=glibc.malloc.hugetlb=1 "$py" -m bench run "${common[@]}"
"$py" studies/noise_summary.py "$out"
