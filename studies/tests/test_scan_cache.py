"""studies/scan_cache.py: torch 2.13's inductor caches bypass a torch.scan graph, so a second process
compiles it again, and hit it once the scan operator is marked cacheable (the README's figures for
why torch.scan's compile is paid in every process); one line and exit 2 on bad input."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def scan_cache(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "studies/scan_cache.py", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_a_second_process_hits_the_caches_only_when_the_scan_is_marked():
    pytest.importorskip("torch")
    p = scan_cache("mlp", "1x1x2")
    assert p.returncode == 0, p.stderr
    lines = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in p.stdout.splitlines()
        if line.startswith("| ") and "B1-H1-L2" in line
    ]
    # (setting, process) -> FX graph, AOTAutograd
    caches = {(c[0], c[1]): (c[5], c[6]) for c in lines}
    assert caches == {
        ("as torch ships it", "1"): ("0/0/1", "0/0/1"),
        ("as torch ships it", "2"): ("0/0/1", "0/0/1"),
        ("scan marked cacheable", "1"): ("0/1/0", "0/1/0"),
        ("scan marked cacheable", "2"): ("1/0/0", "1/0/0"),
    }
    # K = 64 at B1; a first call was timed
    assert all(c[3] == "64" and float(c[4]) > 0 for c in lines)
    assert p.stdout.strip().splitlines()[-1].startswith("scan marked cacheable: first calls")


def test_bad_input_is_one_line_and_exit_2():
    for args in (("nope",), ("mlp", "1x"), ()):
        p = scan_cache(*args)
        assert p.returncode == 2 and p.stdout == "" and len(p.stderr.strip().splitlines()) == 1, (
            args,
            p.stderr,
        )
