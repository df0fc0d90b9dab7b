"""The committed reference runs by role (results/reference.toml): the sweeps, the A/A partner, the
pipeline probes and the claim's reports. Everything that reads a reference run asks here, so a new
set of runs is one file's change (scripts/reference_runs.sh writes it)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "results" / "reference.toml"
ROLES = ("mlp", "mlp_aa", "gpt", "pipeline_mlp", "pipeline_gpt", "claim")


class ManifestError(ValueError):
    """results/reference.toml is missing, damaged, or lacks a role."""


def runs(manifest: Path = MANIFEST) -> dict[str, str]:
    """role -> the run's path relative to the repository root."""
    try:
        table = tomllib.loads(Path(manifest).read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ManifestError(f"{manifest}: {e}") from None
    missing = [r for r in ROLES if not isinstance(table.get(r), str)]
    if missing:
        raise ManifestError(f"{manifest} names no run for {', '.join(missing)}")
    return {r: table[r] for r in ROLES}


def path(role: str, manifest: Path = MANIFEST) -> Path:
    """The reference run of a role, as an absolute path."""
    return ROOT / runs(manifest)[role]
