"""The C reference's build: cached, rebuilt when the source changes, skipped without a compiler."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench import frameworks
from models import cbuild
from models.mlp import c_impl
from models.registry import REGISTRY

ROOT = Path(__file__).resolve().parent.parent

needs_c = pytest.mark.skipif(
    bool(cbuild.unavailable_reason()), reason=cbuild.unavailable_reason() or "ok"
)


@needs_c
def test_build_is_cached_and_rebuilt_after_a_source_change(tmp_path):
    src = tmp_path / "mlp.c"
    src.write_text(c_impl.SOURCE.read_text())
    first, built = cbuild.build(src, tmp_path / "cache")
    assert built and first.is_file()
    again, built = cbuild.build(src, tmp_path / "cache")
    assert again == first and not built
    mtime = first.stat().st_mtime_ns
    src.write_text(src.read_text() + "\n// a change\n")
    changed, built = cbuild.build(src, tmp_path / "cache")
    assert built and changed != first
    assert first.stat().st_mtime_ns == mtime  # the old build is left as it was


@needs_c
def test_a_broken_source_reports_the_compiler_error(tmp_path):
    src = tmp_path / "bad.c"
    src.write_text("int f( {")
    with pytest.raises(RuntimeError, match="C build failed"):
        cbuild.build(src, tmp_path / "cache")


def test_missing_compiler_makes_c_rows_unavailable_not_a_crash(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", "/nonexistent/cc")
    assert "not found" in frameworks.impl_unavailable(REGISTRY["mlp"]["c.ref"])
    out = tmp_path / "run"
    env = {**os.environ, "CC": "/nonexistent/cc", "BENCH_C_CACHE": str(tmp_path / "cache")}
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "run",
            "--impl",
            "c.ref,c.step,numpy.loop",
            "--sizes",
            "1x1x1",
            "--rounds",
            "1",
            "--budget",
            "0.02",
            "--min-samples",
            "5",
            "--out",
            str(out),
            "--no-report",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    df = pd.read_csv(out / "results.csv", keep_default_na=False)
    c = df[df["impl"].str.startswith("c.")]
    assert (c["status"] == "unavailable").all() and c["error"].str.contains("/nonexistent/cc").all()
    assert (df.loc[df["impl"] == "numpy.loop", "status"] == "ok").all()
    listed = subprocess.run(
        [sys.executable, "-m", "bench", "list"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0 and "not found" in listed.stdout


def test_the_c_peak_matmul_is_the_product_and_threads_are_what_openblas_reports():
    """The C framework's peak times cbuild.square_sgemm: it must compute C = A @ B (row-major, C
    overwritten), or the peak would time something else; set_threads returns OpenBLAS's own count."""
    import numpy as np

    from models import cbuild

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((48, 48), dtype=np.float32) for _ in range(2))
    c = np.full((48, 48), 7.0, np.float32)
    cbuild.square_sgemm(48, a.ctypes.data, b.ctypes.data, c.ctypes.data)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
    assert cbuild.set_threads(1) == 1
    assert cbuild.blas() is cbuild.blas()  # one library instance per process


def test_without_the_blas_wheel_c_rows_say_how_to_install_it(monkeypatch):
    import importlib.util

    from models import cbuild

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "scipy_openblas32" else real(name, *a),
    )
    assert (
        cbuild.unavailable_reason()
        == "scipy-openblas32 not installed (pip install -c constraints.txt -e '.[all]')"
    )
