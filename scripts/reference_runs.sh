#!/usr/bin/env bash
# The committed reference runs, in one call, from a clean tree, with --native-kernels (each library
# on its own kernels; what the machine's environment cleared is recorded in run.json): the MLP
# default sweep twice back to back (the second is the A/A pair's B: the same code and settings,
# compared), the GPT default sweep, then the MLP and GPT pipeline probes (skipped with
# SKIP_PIPELINES=1; ONLY_PIPELINES=1 runs only them). Prints the run directories. About 35 minutes
# for the sweeps (10 + 10 + 15) and 27 for the pipelines on this project's 2-core machine.
# First one round of each default sweep, not kept (SKIP_WARMUP=1 skips it), so that the committed
# sweeps find the persistent compile caches warm, as every run after a machine's first does: cold,
# one round of GPT torch.compile and torch.fullgraph took 577 s against about 110 s warm
# (results/noise_study/describe_after_timing_20261204.md).
set -euo pipefail
source "$(dirname "$0")/common.sh"
stamp() { date -u +%Y%m%dT%H%M%SZ; }
host=$(hostname)
if [ -z "${ONLY_PIPELINES:-}" ]; then
if [ -z "${SKIP_WARMUP:-}" ]; then
  warm=$(mktemp -d)
  "$py" -m bench run --native-kernels --rounds 1 --max-rounds 1 --no-report --out "$warm/mlp" > /dev/null
  "$py" -m bench run --model gpt --native-kernels --rounds 1 --max-rounds 1 --no-report --out "$warm/gpt" > /dev/null
  rm -rf "$warm"
fi
mlp="results/$(stamp)_${host}"; "$py" -m bench run --native-kernels --out "$mlp"
aa2="results/$(stamp)_${host}_aa2"; "$py" -m bench run --native-kernels --out "$aa2"
"$py" -m bench compare "$mlp" "$aa2" --csv "$aa2/compare_aa.csv" > "$aa2/compare_aa.txt"
gpt="results/$(stamp)_${host}"; "$py" -m bench run --model gpt --native-kernels --out "$gpt"
echo "$mlp $aa2 $gpt"
fi
[ -n "${SKIP_PIPELINES:-}" ] && exit 0
pm="results/$(stamp)_${host}_pipeline"; "$py" -m bench pipeline --out "$pm"
pg="results/$(stamp)_${host}_pipeline_gpt"; "$py" -m bench pipeline --model gpt --out "$pg"
echo "$pm $pg"
