#!/usr/bin/env bash
# Is this hour quiet enough to regenerate the committed runs (issue "precise numbers")? About 20 s:
# GPT B4-T64-C32-L2 and C128-L2 for c.ref and numpy.loop, 6 processes each, in a scratch directory,
# compared with a committed run made at a quiet hour on a VM of the reference kind (default
# studies/records/20261129T192711Z_vm; round_sd 0.013 to 0.040 at these rows). A quiet hour gives B/A near 1
# and a detectable change of a few percent; the busy afternoon of 2026-12-03 gave B/A 1.07 to 1.69
# (studies/records/noise_study/host_checks_20261203.md), an hour like those when the morning's runs came out
# noisy. In one stretch per process (--chunks 1), as the quiet run was made; on a VM of another CPU
# kind compare warns "different machine" and B/A says nothing of the hour. Not a committed run.
#
#   bash studies/host_check.sh [QUIET_RUN] [LOG_CSV]
#
# With LOG_CSV, each check also appends its rows (UTC, CPU model, impl, size, B/A, detectable change)
# there, so that a log of checks comes from the script rather than from its printed tables.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
base=${1:-studies/records/20261129T192711Z_vm}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
out=$dir/host_check
"$py" -m bench run --model gpt --impl c.ref,numpy.loop --sizes 4x64x32x2x2,4x64x128x2x4 --rounds 6 \
  --chunks 1 --native-kernels --no-report --out "$out" > "$out.log" 2>&1 || { cat "$out.log" >&2; exit 1; }
"$py" -m bench compare "$base" "$out" --csv "$dir/compare.csv" | grep -v ": only in A$"
if [ -n "${2:-}" ]; then
  "$py" - "$out" "$dir/compare.csv" "$2" <<'PY'
import json, os, sys
import pandas as pd
run, cmp_csv, log = sys.argv[1:]
meta = json.load(open(os.path.join(run, "run.json")))
c = pd.read_csv(cmp_csv).dropna(subset=["median_b_s"])
rows = pd.DataFrame({"utc": meta["created_utc"], "cpu_model": meta["machine"]["cpu_model"],
                     "impl": c["impl"], "size": c["size"], "ratio_b_a": c["ratio_b_a"].round(3),
                     "detectable": c["detectable"].round(3)})
rows.to_csv(log, mode="a", header=not os.path.exists(log), index=False)
PY
fi
