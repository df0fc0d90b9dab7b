#!/usr/bin/env bash
# The profile audit: `python -m bench profile` for every CPU implementation at the smallest and
# the largest default size of each model, top 3 entries each, into one markdown file under studies/records/.
# Usage: bash studies/profile_audit.sh [OUT.md]   (about 10 minutes on 2 cores)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
out=${1:-studies/records/$(date -u +%Y%m%dT%H%M%SZ)_profiles.md}
# The default preset's smallest and largest size (by FLOPs) of a model, in `profile --size` form.
ends() {
  "$PY" - "$1" <<'PYEOF'
import sys
from bench.sizes import PRESETS
from models.registry import model_module
model = sys.argv[1]
mod = model_module(model)
sizes = sorted(PRESETS[model]["default"], key=lambda z: mod.flops_per_step(z.config()))
print(" ".join("x".join(str(v) for k, v in z.dims if k != "vocab") for z in (sizes[0], sizes[-1])))
PYEOF
}
sizes_mlp=$(ends mlp)   # B1-H1-L2 and B1024-H1024-L2 today
sizes_gpt=$(ends gpt)   # B4-T64-C32-L1-NH2 and B4-T64-C384-L2-NH6 today
impls="numpy.loop torch.eager torch.compile torch.fullgraph torch.scan jax.eager jax.jit jax.scan c.ref c.step"
{
  echo "# Profile audit"
  echo
  echo "Commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (dirty tree)'), $(date -u +%F), $(nproc) cores."
  echo "Command: \`bash studies/profile_audit.sh\`; each block is \`$PY -m bench profile --model M --impl I --size S --top 3\`."
  echo "Times come from each framework's profiler, which adds its own cost: read shares, not absolute times."
  for model in mlp gpt; do
    sizes=sizes_$model
    for size in ${!sizes}; do
      echo
      echo "## $model $size"
      for impl in $impls; do
        echo
        echo '```'
        text=$(timeout 600 "$PY" -m bench profile --model "$model" --impl "$impl" --size "$size" --top 3 2>&1)
        rc=$?
        grep -v -E '^(USDT|WARNING|\[W|W[0-9]{4} )' <<< "$text"  # profiler and torch log noise
        [ "$rc" -eq 0 ] || echo "$impl: profile failed (exit $rc)"
        echo '```'
      done
    done
  done
} > "$out"
echo "wrote $out"
