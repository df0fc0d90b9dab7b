#!/usr/bin/env bash
# The committed reference runs, in one call, from a clean tree: the MLP and GPT default sweeps and
# an A/A quick pair with --native-kernels (each library on its own kernels; what the machine's
# environment cleared is recorded in run.json), then the MLP and GPT pipeline probes. Prints the
# run directories. About 55 minutes on this project's 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "reference_runs: the tree has uncommitted changes; commit first (a committed run comes from a clean tree)" >&2
  exit 2
fi
stamp() { date -u +%Y%m%dT%H%M%SZ; }
host=$(hostname)
mlp="results/$(stamp)_${host}"; "$py" -m bench run --native-kernels --out "$mlp"
gpt="results/$(stamp)_${host}"; "$py" -m bench run --model gpt --native-kernels --out "$gpt"
aa1="results/$(stamp)_${host}_aa1"; "$py" -m bench run --sizes quick --native-kernels --out "$aa1"
aa2="results/$(stamp)_${host}_aa2"; "$py" -m bench run --sizes quick --native-kernels --out "$aa2"
"$py" -m bench compare "$aa1" "$aa2" --csv "$aa2/compare_aa.csv" > "$aa2/compare_aa.txt"
pm="results/$(stamp)_${host}_pipeline"; "$py" -m bench pipeline --out "$pm"
pg="results/$(stamp)_${host}_pipeline_gpt"; "$py" -m bench pipeline --model gpt --out "$pg"
echo "$mlp $gpt $aa1 $aa2 $pm $pg"
