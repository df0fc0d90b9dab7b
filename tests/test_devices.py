"""Device selection on a machine without a GPU: the CPU side of the GPU support."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from fixture_run import make_run

from bench import devices, frameworks
from bench.commands import main
from bench.report import analysis
from models.registry import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
NO_GPU = {"torch": False, "jax": False, "torch_error": "", "jax_error": ""}


def test_resolve_device():
    assert devices.resolve("cpu", probe=lambda: pytest.fail("cpu must not probe")) == "cpu"
    assert devices.resolve("auto", probe=lambda: NO_GPU) == "cpu"
    assert devices.resolve("auto", probe=lambda: {**NO_GPU, "jax": True}) == "cuda"
    assert devices.resolve("cuda", probe=lambda: {**NO_GPU, "torch": True}) == "cuda"
    with pytest.raises(ValueError, match="no CUDA GPU visible"):
        devices.resolve("cuda", probe=lambda: NO_GPU)


def test_numpy_c_and_control_stay_on_the_cpu_in_a_gpu_run():
    mlp = REGISTRY["mlp"]
    on = {n: frameworks.run_device(i, "cuda") for n, i in mlp.items()}
    assert on["numpy.loop"] == on["c.ref"] == on["c.step"] == on["null.noop"] == "cpu"
    assert (
        on["torch.eager"]
        == on["torch.compile"]
        == on["torch.cudagraphs"]
        == on["jax.scan"]
        == "cuda"
    )
    assert frameworks.devices(mlp["torch.cudagraphs"]) == ("cuda",)


def test_probe_reports_what_a_fake_torch_and_jax_say(tmp_path, monkeypatch):
    """The probe runs in a subprocess: give it fake frameworks, one with a GPU, one that fails."""
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text(
        "class cuda:\n    is_available = staticmethod(lambda: True)\n"
    )
    (tmp_path / "jax").mkdir()
    (tmp_path / "jax" / "__init__.py").write_text("raise ImportError('no jaxlib here')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    seen = devices.probe_cuda()
    assert seen["torch"] is True and seen["jax"] is False
    assert "no jaxlib here" in seen["jax_error"] and seen["torch_error"] == ""
    assert devices.resolve("auto", probe=lambda: seen) == "cuda"


@pytest.mark.skipif(devices.probe_cuda()["torch"], reason="a GPU is present")
def test_device_cuda_without_gpu_is_refused_in_one_line(capsys, tmp_path):
    assert main(["run", "--device", "cuda", "--sizes", "1x1x1", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no CUDA GPU visible" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(devices.probe_cuda()["torch"], reason="a GPU is present")
def test_auto_on_a_cpu_machine_runs_on_cpu_and_records_it(tmp_path):
    out = tmp_path / "auto"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "run",
            "--device",
            "auto",
            "--tf32",
            "--impl",
            "numpy.loop,torch.eager,torch.cudagraphs,jax.jit",
            "--sizes",
            "1x1x1",
            "--rounds",
            "1",
            "--budget",
            "0.02",
            "--min-samples",
            "3",
            "--out",
            str(out),
            "--no-report",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    df = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert (df["device"] == "cpu").all()
    graphs = df[df["impl"] == "torch.cudagraphs"].iloc[0]
    assert graphs["status"] == "unavailable" and "cuda only" in graphs["error"], graphs["error"]
    assert (df[df["impl"] != "torch.cudagraphs"]["status"] == "ok").all()
    meta = json.loads((out / "run.json").read_text())
    assert meta["settings"]["device"] == "cpu" and meta["settings"]["tf32"] is True
    assert meta["workers"]["torch"]["tf32"] is True and "gpu" not in meta["workers"]["torch"]
    assert meta["workers"]["torch"]["device"] == "cpu"


def test_overhead_share_never_crosses_devices(tmp_path):
    run = make_run(tmp_path / "mixed")
    res = pd.read_csv(run / "results.csv")
    gpu = res[res["impl"] == "torch.eager"].assign(
        device="cuda",
        median_s=lambda d: d["median_s"] / 10,
        ci_low_s=lambda d: d["ci_low_s"] / 10,
        ci_high_s=lambda d: d["ci_high_s"] / 10,
    )
    res = pd.concat([res, gpu])
    sh = analysis.shares(res)
    on_gpu = sh[sh["device"] == "cuda"]
    # no C floor on the GPU
    assert on_gpu["t_floor"].isna().all() and on_gpu["overhead_s"].isna().all()
    on_cpu = sh[sh["device"] == "cpu"]
    cpu_floor = on_cpu[on_cpu["impl"] == "c.ref"].set_index("size")["median_s"]
    assert (on_cpu["t_floor"].to_numpy() == cpu_floor.reindex(on_cpu["size"]).to_numpy()).all()
    assert (on_cpu["floor_impl"] == "c.ref").all()
