"""`python -m bench pipeline`: the pipeline-parallel probe on torch.distributed.

Each round starts P fresh rank processes (bench/pipe_rank.py) on 127.0.0.1 and runs every case
(schedule x microbatches) in them; a round is the unit of replication. A rank that crashes or
hangs fails its case with the reason: the whole group is killed (no orphan: each rank leads its
own process group) and a new group runs the remaining cases. Results: pipeline.csv (schema in
bench/schema.py), pipeline_samples.csv (every timed step), run.json.
"""

from __future__ import annotations

import json
import math
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
    "mlp": {"batch": 128, "width": 512, "depth": 7},
    "gpt": {"batch": 8, "seq_len": 64, "n_embd": 128, "n_layer": 4, "n_head": 4},
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
    notes: list[str] = field(default_factory=list)


def free_port() -> int:
    """A free TCP port on the loopback interface (bind to port 0, read what the OS gave)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cases(s: PipelineSettings) -> list[dict]:
    out = []
    for name in s.schedules:
        for m in ([1] if name == "one-process" else s.microbatches):
            out.append({"schedule": name, "microbatches": m})
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
                res = group.next_result(2 * s.timeout_s + 60)
                res = {**c, "round": rnd, **res}
                out.append(res)
                if res["status"] in ("timeout", "crashed", "error"):
                    failed.add((c["schedule"], c["microbatches"]))
                    break
        finally:
            group.kill()
    return out


def validate(model: str, config: dict, P: int, ms: list[int], names: list[str], device: str, cores: int,
             gpus: int = 0) -> list[str]:
    """ValueError (one line) for settings that cannot run; else notes worth recording."""
    from models.registry import model_module

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
        low = [m for m in ms if m < P] if SCHEDULES[n].min_microbatches == "P" else []
        if low:
            raise ValueError(f"{n} needs at least as many microbatches as stages: --microbatches {low[0]} < --stages {P}")
    bad = [m for m in ms if m < 1 or cfg.batch % m]
    if bad:
        raise ValueError(f"--microbatches {bad[0]}: must divide the batch {cfg.batch}")
    if device == "cuda" and gpus < max(P, 2):
        raise ValueError(f"--device cuda needs one GPU per stage and this machine has {gpus}: a single GPU "
                         "is not a pipeline (NCCL runs where torch sees at least --stages GPUs, at least 2)")
    return [f"--stages {P} exceeds the {cores} cores: ranks share CPUs"] if P > cores else []


def settings_json(s: PipelineSettings) -> dict:
    return asdict(s)


def geomean_ci(medians: list[float]) -> tuple[float, float, float]:
    from bench.stats import log_t_interval

    return log_t_interval(medians) if medians else (math.nan, math.nan, math.nan)
