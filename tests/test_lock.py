"""constraints.txt locks the README's install: every package it installs is pinned, at the version
installed here, and the lock was made from the current pyproject.toml dependencies."""

import hashlib
import json
import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def dependency_hash() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = {"dependencies": project["dependencies"], "optional": project["optional-dependencies"]}
    return hashlib.sha256(json.dumps(deps, sort_keys=True).encode()).hexdigest()


def pins() -> dict[str, str]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            out[canonicalize_name(name)] = version.strip()
    return out


def closure(name: str, extras: set[str]) -> set[str]:
    """Every distribution an install of name[extras] pulls in, from the installed metadata."""
    seen, todo = set(), [(name, extras)]
    while todo:
        dist, ex = todo.pop()
        key = canonicalize_name(dist)
        if (key, tuple(sorted(ex))) in seen:
            continue
        seen.add((key, tuple(sorted(ex))))
        for req in metadata.requires(dist) or []:
            r = Requirement(req)
            if r.marker and not any(r.marker.evaluate({"extra": e}) for e in (ex or {""})):
                continue
            todo.append((r.name, set(r.extras)))
    return {k for k, _ in seen} - {canonicalize_name(name)}


def test_lock_was_made_from_this_pyproject():
    header = (ROOT / "constraints.txt").read_text()
    found = re.search(r"pyproject-dependencies-sha256: (\w+)", header)
    assert found and found.group(1) == dependency_hash(), (
        "pyproject.toml's dependencies changed: run scripts/lock.sh"
    )


def test_every_installed_dependency_is_pinned_at_its_installed_version():
    locked = pins()
    needed = closure("framework-overhead-bench", {"all", "test"})
    assert {"torch", "jax", "numpy", "pandas", "scipy-openblas32", "pytest-benchmark"} <= needed
    for dist in sorted(needed):
        assert dist in locked, (
            f"{dist} is installed by the README's command but not pinned in constraints.txt"
        )
        installed = metadata.version(dist)
        assert installed.split("+")[0] == locked[dist], (
            f"{dist} {installed} installed, {locked[dist]} pinned"
        )
