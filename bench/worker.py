"""Worker process: runs the cases of one framework. JSON lines in on stdin, JSON lines out.

Started by the runner as `python -m bench.worker FRAMEWORK THREADS`. The CPU affinity is set
before any framework is imported, then each framework's own thread setting. Anything the
framework prints goes to stderr: the reply channel is a private copy of the original stdout.
"""

from __future__ import annotations

import faulthandler
import json
import math
import os
import resource
import sys
import time
import traceback


def pin_cpus(threads: int) -> list[int]:
    cpus = sorted(os.sched_getaffinity(0))[:threads]
    os.sched_setaffinity(0, cpus)
    return cpus


def gpu_info() -> dict:
    """What run.json records of the GPU (through torch, when the worker imported it)."""
    import subprocess

    import torch

    props = torch.cuda.get_device_properties(0)
    driver = ""
    try:
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return {"name": props.name, "capability": f"{props.major}.{props.minor}", "memory_gb": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count, "cuda_runtime": torch.version.cuda, "driver": driver}


def import_framework(framework: str, threads: int, device: str = "cpu", tf32: bool = False) -> dict:
    """Import the framework, apply the thread count (and on CUDA the TF32 setting), and report
    what it actually uses."""
    from threadpoolctl import threadpool_info, threadpool_limits

    info: dict = {"framework": framework, "pid": os.getpid(), "affinity": sorted(os.sched_getaffinity(0)),
                  "device": device}
    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
        info["torch_num_threads"] = info["threads_used"] = torch.get_num_threads()
        info["torch_interop_threads"] = torch.get_num_interop_threads()
        info["torch_version"] = torch.__version__
        # fp32 means fp32: TF32 tensor-core matmuls only with --tf32 (recorded)
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.set_float32_matmul_precision("high" if tf32 else "highest")
        info["tf32"] = tf32
        if device == "cuda":
            info["gpu"] = gpu_info()
    elif framework == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", "tensorfloat32" if tf32 else "highest")
        info["tf32"] = tf32

        # XLA's CPU client sizes its thread pool from the affinity mask set above.
        info["jax_version"] = jax.__version__
        info["jax_devices"] = [str(d) for d in jax.devices()]
        info["xla_flags"] = os.environ.get("XLA_FLAGS", "")
        info["threads_used"] = len(os.sched_getaffinity(0))
    elif framework == "c":
        from models import mlp_c

        lib = mlp_c.load()  # builds on first use; a missing compiler or BLAS makes the rows unavailable
        lib.mlp_set_threads(threads)  # OpenBLAS's own setting
        info["openblas_threads"] = info["threads_used"] = lib.mlp_get_threads()
        info["c_library"] = str(mlp_c.build()[0])
    elif framework not in ("numpy", "null"):
        raise ImportError(f"unknown framework {framework!r}")
    # NumPy's BLAS (and any OpenMP runtime loaded so far) to the same count; kept for the process.
    global _limits
    _limits = threadpool_limits(limits=threads)
    info["threadpools"] = [
        {k: p.get(k) for k in ("user_api", "internal_api", "num_threads", "version", "prefix")}
        for p in threadpool_info()
    ]
    if "threads_used" not in info:  # numpy: its BLAS pool; null: nothing but the affinity
        blas = [p["num_threads"] for p in info["threadpools"] if p["user_api"] == "blas"]
        info["threads_used"] = blas[0] if blas and framework == "numpy" else len(info["affinity"])
    return info


_limits = None
GATE_STEPS = 5  # steps compared against the float64 reference before timing


class Worker:
    def __init__(self) -> None:
        self.steps: dict = {}  # (impl, config) -> built Step, kept across rounds
        self.refs: dict = {}  # config -> float64 reference (losses, params)

    def reference(self, mod, cfg):
        if cfg not in self.refs:
            self.refs[cfg] = mod.reference(cfg, GATE_STEPS)
        return self.refs[cfg]

    def run_case(self, msg: dict) -> dict:
        from bench.timing import Budget, sample, warm_up
        from models.registry import get, model_module

        impl = get(msg["model"], msg["impl"])
        mod = model_module(impl.model)
        cfg = mod.Config(**msg["config"])
        budget = Budget(**msg["budget"])
        out: dict = {"status": "ok", "error": ""}
        key = (impl.name, cfg)
        step = self.steps.get(key)
        if step is None:
            try:
                builder = impl.load()
            except ImportError as e:
                return {"status": "unavailable", "error": f"{type(e).__name__}: {e}"}
            kw = {"device": msg.get("device", "cpu")} if impl.framework == "torch" else {}
            step = builder(cfg, msg["k"], **kw) if impl.fused else builder(cfg, **kw)
            t0 = time.perf_counter_ns()
            step.call()
            out["first_call_s"] = (time.perf_counter_ns() - t0) / 1e9
            out["ops_per_step"] = step.count_ops()
            self.steps[key] = step
        gated = getattr(step, "gate", True)
        if msg["gate"] and gated:
            step.reset()
            losses = step.losses(GATE_STEPS)
            loss_err, update_err, why = mod.compare(cfg, losses, step.params(), self.reference(mod, cfg))
            out.update(loss_rel_err=loss_err, update_rel_err=update_err)
            if why:
                finite = all(math.isfinite(v) for v in losses)
                out.update(status="mismatch" if finite else "diverged", error=why)
                return out
        warm_up(step.call, budget)
        out["samples_ns"] = sample(step.call, budget)
        out["steps_per_call"] = step.steps_per_call
        if gated:  # still finite after all the timed steps?
            tail = step.losses(GATE_STEPS)
            if not all(math.isfinite(v) for v in tail):
                out.update(status="diverged", error=f"non-finite loss after timing: {list(tail)}")
        return out


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str]) -> int:
    framework, threads = argv[0], int(argv[1])
    device = argv[2] if len(argv) > 2 else "cpu"
    tf32 = len(argv) > 3 and argv[3] == "tf32"
    reply_to = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # framework prints land in stderr, never in the reply channel
    faulthandler.enable()  # a segfault leaves its Python stack in stderr, for the case's reason
    pin_cpus(threads)
    worker = Worker()

    def reply(obj: dict) -> None:
        reply_to.write(json.dumps({**obj, "peak_rss_mb": round(rss_mb(), 1)}) + "\n")

    for line in sys.stdin:
        msg = json.loads(line)
        if msg["op"] == "hello":
            try:
                reply({"ok": True, "info": import_framework(framework, threads, device, tf32)})
            except Exception as e:  # a framework that fails to import makes its rows unavailable
                traceback.print_exc()
                reply({"ok": False, "error": f"{type(e).__name__}: {e}".splitlines()[0]})
        elif msg["op"] == "case":
            try:
                reply(worker.run_case(msg))
            except Exception as e:
                traceback.print_exc()
                reply({"status": "error", "error": f"{type(e).__name__}: {e}".splitlines()[0]})
        elif msg["op"] == "peak":
            from bench import peak
            from bench.timing import Budget

            try:
                reply(peak.measure(framework, msg["n"], Budget(**msg["budget"]), device))
            except Exception as e:
                traceback.print_exc()
                reply({"error": f"{type(e).__name__}: {e}".splitlines()[0]})
        elif msg["op"] == "exit":
            break
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
