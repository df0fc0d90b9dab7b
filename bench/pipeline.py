"""`python -m bench pipeline`: the pipeline-parallel probe on torch.distributed.

Each round starts P fresh rank processes (bench/pipe_rank.py) on 127.0.0.1 and runs every case
(schedule x microbatches) in them; a round is the unit of replication. A rank that crashes or
hangs fails its case with the reason: the whole group is killed (no orphan: each rank leads its
own process group) and a new group runs the remaining cases. Results: pipeline.csv (schema in
bench/schema.py), pipeline_samples.csv (every timed step), run.json.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.pipe_schedules import SCHEDULES

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = {  # the models as the probe splits them: 8 linear layers; 4 blocks
    "mlp": {"batch": 128, "width": 256, "depth": 7},
    "gpt": {"batch": 16, "seq_len": 64, "n_embd": 128, "n_layer": 4, "n_head": 4},
}


@dataclass
class PipelineSettings:
    model: str
    config: dict
    stages: int
    microbatches: list[int]
    schedules: list[str]
    rounds: int
    steps: int  # timed steps per case and round
    device: str = "cpu"
    timeout_s: float = 60.0  # gloo's own timeout; a case gets twice that before its group is killed
    grad_rtol: float = 1e-2  # the gate: the model's UPDATE_RTOL (an SGD update is lr x the gradient)
    notes: list[str] = field(default_factory=list)


def gpu_count() -> int:
    """GPUs torch sees (asked in a subprocess: this process never imports torch)."""
    p = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.device_count())"],
                       capture_output=True, text=True, timeout=300)
    return int(p.stdout.strip() or 0) if p.returncode == 0 else 0


def free_port() -> int:
    """A free TCP port on the loopback interface (bind to port 0, read what the OS gave)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cases(s: PipelineSettings) -> list[dict]:
    """(schedule, M) pairs: one-process once (M does not apply), the others at every M they take."""
    out, batch = [], s.config["batch"]
    for name in s.schedules:
        fewest = SCHEDULES[name].fewest_microbatches(s.stages)
        ms = [1] if name == "one-process" else [m for m in s.microbatches if m >= fewest and batch % m == 0]
        out += [{"schedule": name, "microbatches": m} for m in ms]
    return out


class Group:
    """P rank processes of one round and their output lines."""

    def __init__(self, s: PipelineSettings, todo: list[dict], rnd: int, first_round: bool, logs: Path) -> None:
        port, self.lines = free_port(), queue.Queue()
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", "GLOO_SOCKET_IFNAME": "lo",
               "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1"}
        self.procs = []
        for r in range(s.stages):
            spec = {"rank": r, "world": s.stages, "port": port, "model": s.model, "config": s.config,
                    "device": s.device, "timeout_s": s.timeout_s,
                    "cases": [{**c, "round": rnd, "gate": first_round, "steps": s.steps} for c in todo]}
            log = open(logs / f"rank{r}.log", "ab")
            p = subprocess.Popen([sys.executable, "-m", "bench.pipe_rank", json.dumps(spec)], stdout=subprocess.PIPE,
                                 stderr=log, env=env, cwd=REPO_ROOT, start_new_session=True)
            threading.Thread(target=self._read, args=(r, p), daemon=True).start()
            self.procs.append(p)

    def _read(self, r: int, p: subprocess.Popen) -> None:
        for line in p.stdout:
            self.lines.put((r, line))
        self.lines.put((r, None))

    def next_result(self, timeout_s: float) -> dict:
        """The next case result (rank 0's, or a failing rank's); a crash or a hang -> status."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                r, line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                return {"status": "timeout", "error": f"no rank answered within {timeout_s:g} s; group killed"}
            if line is None:
                code = self.procs[r].wait()
                if code != 0:
                    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
                    return {"status": "crashed", "error": f"rank {r} {how}; group killed"}
                continue
            msg = json.loads(line)
            if "done" not in msg:
                return msg

    def kill(self) -> None:
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for p in self.procs:
            p.wait()


def run_round(s: PipelineSettings, rnd: int, logs: Path, progress, failed: set) -> list[dict]:
    """Every case not failed before, in groups of fresh processes; a failure kills the group, a
    new one runs the rest."""
    todo = [c for c in cases(s) if (c["schedule"], c["microbatches"]) not in failed]
    out = []
    while todo:
        group = Group(s, todo, rnd, rnd == 0, logs)
        try:
            while todo:
                c = todo.pop(0)
                if progress:
                    progress(f"{c['schedule']} M={c['microbatches']}", rnd)
                res = group.next_result(2 * s.timeout_s + (60 if s.timeout_s >= 30 else 5))
                res = {**c, "round": rnd, **res}
                out.append(res)
                if res["status"] in ("timeout", "crashed", "error"):
                    failed.add((c["schedule"], c["microbatches"]))
                    break
        finally:
            group.kill()
    return out


def validate(model: str, config: dict, P: int, ms: list[int], names: list[str], device: str, cores: int,
             gpus: int = 0, explicit_ms: bool = True) -> list[str]:
    """ValueError (one line) for settings that cannot run; else notes worth recording. With the
    default microbatch list (explicit_ms False) a schedule skips the M values it cannot take."""
    from models.registry import model_module

    notes = [f"--stages {P} exceeds the {cores} cores: ranks share CPUs"] if P > cores else []
    if P < 1:
        raise ValueError(f"--stages {P}: need at least 1")
    unknown = [n for n in names if n not in SCHEDULES]
    if unknown:
        raise ValueError(f"unknown schedule {', '.join(unknown)}; allowed: {', '.join(SCHEDULES)}")
    cfg = model_module(model).Config(**config)
    layers = cfg.depth + 1 if model == "mlp" else cfg.n_layer
    for n in names:
        need = SCHEDULES[n].n_stages(P)
        if need > layers:
            raise ValueError(f"{n} needs {need} stages for --stages {P}; the {model} has {layers} to split")
        fewest = SCHEDULES[n].fewest_microbatches(P)
        low = [m for m in ms if m < fewest]
        if low and explicit_ms:
            raise ValueError(f"{n} needs at least {fewest} microbatches with --stages {P}: --microbatches {low[0]}")
        if low:
            notes.append(f"{n} needs at least {fewest} microbatches with {P} stages: M = "
                         f"{', '.join(map(str, low))} not run")
    bad = [m for m in ms if m < 1 or cfg.batch % m]
    if bad and (explicit_ms or len(bad) == len(ms)):
        raise ValueError(f"--microbatches {bad[0]}: must divide the batch {cfg.batch}")
    if bad:
        notes.append(f"M = {', '.join(map(str, bad))} does not divide the batch {cfg.batch}: not run")
    if device == "cuda" and gpus < max(P, 2):
        raise ValueError(f"--device cuda needs one GPU per stage and this machine has {gpus}: a single GPU "
                         "is not a pipeline (NCCL runs where torch sees at least --stages GPUs, at least 2)")
    return notes


def run(s: PipelineSettings, run_dir, argv: list[str], progress=None) -> list[dict]:
    """Every round, then pipeline.csv, pipeline_samples.csv and run.json in run_dir (a RunDir)."""
    from bench import envinfo
    from bench.pipe_results import row
    from bench.results import atomic_write
    from bench.schema import PIPELINE_COLUMNS, PIPELINE_SAMPLE_COLUMNS, SCHEMA_VERSION

    logs = run_dir.path / "logs"
    logs.mkdir(exist_ok=True)
    meta = {"run_id": run_dir.path.name, "kind": "pipeline", "status": "running", "created_utc": _utc(),
            "argv": argv, "settings": {**asdict(s), "model": s.model, "threads": 1, "rounds": s.rounds,
                                       "budget": {"seconds": s.steps}},
            "machine": envinfo.collect(), "noise": {}}
    noise = envinfo.noise_start()
    run_dir.write_meta(meta)
    results, failed = [], set()
    for rnd in range(s.rounds):
        results += run_round(s, rnd, logs, progress, failed)
    rows = [row(s, run_dir.path.name, c["schedule"], c["microbatches"],
                [r for r in results if (r["schedule"], r["microbatches"]) == (c["schedule"], c["microbatches"])])
            for c in cases(s)]
    import pandas as pd

    df = pd.DataFrame(rows, columns=[c for c in PIPELINE_COLUMNS if c != "schema_version"])
    df.insert(0, "schema_version", SCHEMA_VERSION)
    atomic_write(run_dir.path / "pipeline.csv", df.to_csv(index=False))
    samples = [(SCHEMA_VERSION, r["schedule"], r["microbatches"], r["round"], i, ns)
               for r in results if r.get("status") == "ok" for i, ns in enumerate(r["step_ns"])]
    atomic_write(run_dir.path / "pipeline_samples.csv", pd.DataFrame(samples, columns=list(PIPELINE_SAMPLE_COLUMNS))
                 .to_csv(index=False))
    meta.update(status="complete", finished_utc=_utc(), noise=envinfo.noise_end(noise))
    run_dir.write_meta(meta)
    return rows


def _utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
