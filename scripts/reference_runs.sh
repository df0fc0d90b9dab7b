#!/usr/bin/env bash
# The committed reference runs, in one call, from a clean tree, with --native-kernels (each library
# on its own kernels; what the machine's environment cleared is recorded in run.json): the MLP
# default sweep twice back to back (the second is the A/A pair's B: the same code and settings,
# compared), the GPT default sweep, then the MLP and GPT pipeline probes (skipped with
# SKIP_PIPELINES=1; ONLY_PIPELINES=1 runs only them), then the claim's reports. Prints the run directories. About 35 minutes
# for the sweeps (10 + 10 + 15) and 27 for the pipelines on this project's 2-core machine.
# Each run's role goes into results/reference.toml, which everything that reads a reference run
# reads (bench/reference.py); the runs it named before leave results/ by hand (git rm -r).
# First one round of each default sweep, not kept (SKIP_WARMUP=1 skips it), so that the committed
# sweeps find the persistent compile caches warm, as every run after a machine's first does: cold,
# one round of GPT torch.compile and torch.fullgraph took 577 s against about 110 s warm
# (results/noise_study/describe_after_timing_20261204.md).
set -euo pipefail
source "$(dirname "$0")/common.sh"
stamp() { date -u +%Y%m%dT%H%M%SZ; }
role() { sed -i "s#^$1 = \"[^\"]*\"#$1 = \"$2\"#" results/reference.toml; }
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
role mlp "$mlp"; role mlp_aa "$aa2"; role gpt "$gpt"
echo "$mlp $aa2 $gpt"
fi
if [ -z "${SKIP_PIPELINES:-}" ]; then
pm="results/$(stamp)_${host}_pipeline"; "$py" -m bench pipeline --out "$pm"
pg="results/$(stamp)_${host}_pipeline_gpt"; "$py" -m bench pipeline --model gpt --out "$pg"
role pipeline_mlp "$pm"; role pipeline_gpt "$pg"
echo "$pm $pg"
fi
# the claim's reports, on the host costs of the runs just named (SKIP_CLAIM=1 skips them)
[ -n "${SKIP_CLAIM:-}" ] || "$py" -m bench claim --report results/claim
