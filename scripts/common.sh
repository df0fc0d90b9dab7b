# Sourced by the scripts that make committed runs (reference_runs.sh, noise_study*.sh): from the
# repository root, with $PYTHON or the project's venv, and only from a clean tree.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
py=${PYTHON:-.venv/bin/python}
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "$(basename "$0" .sh): the tree has uncommitted changes; commit first (a committed run comes from a clean tree)" >&2
  exit 2
fi
# run NAME COMMAND...: COMMAND --out "$out/NAME", unless that run is there already (a study resumes)
run() { local name=$1; shift; [ -f "$out/$name/results.csv" ] || "$@" --out "$out/$name"; }
