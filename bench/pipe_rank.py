"""One rank of `bench pipeline`: `python -m bench.pipe_rank SPEC_JSON`, started by bench/pipeline.py.

One thread, pinned to one CPU, set before torch is imported. The process group is gloo over
127.0.0.1 (NCCL on GPUs), with a short timeout so a broken schedule fails instead of hanging for
the default 30 minutes. Rank 0 prints one JSON line per case; every rank runs every case.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback


def pin(rank: int) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, [cpus[rank % len(cpus)]])
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


class Rank:
    def __init__(self, spec: dict) -> None:
        import torch
        import torch.distributed as dist

        from models.registry import model_module

        torch.set_num_threads(1)
        self.torch, self.dist, self.spec = torch, dist, spec
        self.rank, self.P = spec["rank"], spec["world"]
        self.device = torch.device(f"cuda:{self.rank}" if spec["device"] == "cuda" else "cpu")
        self.mod = model_module(spec["model"])
        self.cfg = self.mod.Config(**spec["config"])
        self.impl = __import__(f"models.{spec['model']}.torch_impl", fromlist=["pipeline_stages"])
        x, y = self.mod.make_batch(self.cfg)
        self.x, self.y = torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device)
        from datetime import timedelta

        dist.init_process_group("nccl" if spec["device"] == "cuda" else "gloo", rank=self.rank, world_size=self.P,
                                init_method=f"tcp://127.0.0.1:{spec['port']}",
                                timeout=timedelta(seconds=spec["timeout_s"]))

    def build(self, schedule, M: int):
        """(step function, my stage modules with their parameter map, all stages' count)."""
        from bench import pipe_steps

        return pipe_steps.build(self, schedule, M)

    def case(self, c: dict) -> dict:
        from bench import pipe_measure
        from bench.pipe_schedules import SCHEDULES

        fault = os.environ.get("BENCH_PIPELINE_FAULT", "")  # tests only: "schedule:rank:crash|hang"
        if fault and fault.split(":")[:2] == [c["schedule"], str(self.rank)]:
            if fault.endswith("crash"):
                os._exit(9)
            time.sleep(3600)

        schedule, M = SCHEDULES[c["schedule"]], c["microbatches"]
        step, mine, n_stages = self.build(schedule, M)
        out = {"schedule": schedule.name, "microbatches": M, "round": c["round"], "status": "ok", "error": ""}
        if c["gate"]:
            out["grad_rel_err"] = pipe_measure.gate(self, step, mine)
        out["step_ns"] = pipe_measure.time_steps(self, step, c["steps"])
        out.update(pipe_measure.stage_times(self, schedule, mine, n_stages, M))
        out["comm_s"] = pipe_measure.comm_time(self, M) if self.P > 1 and schedule.kind != "single" else 0.0
        order = getattr(step, "pipeline_order", None)
        if order:  # torch's own action order of a multi-stage schedule, for the ideal-time simulation
            out["order"] = {int(r): [str(a) for a in acts if a is not None] for r, acts in order.items()}
        return out

    def run(self) -> None:
        for c in self.spec["cases"]:
            try:
                result = self.case(c)
            except Exception as e:  # this case fails; the peers see a timeout or the same error
                traceback.print_exc()
                why = f"rank {self.rank}: {type(e).__name__}: {e}".splitlines()[0]
                status = "timeout" if "timed out" in why.lower() or "timeout" in why.lower() else "error"
                result = {"schedule": c["schedule"], "microbatches": c["microbatches"], "round": c["round"],
                          "status": status, "error": why[:300]}
                if self.rank != 0:
                    print(json.dumps(result), flush=True)  # the supervisor reads every rank
                    self.dist.destroy_process_group()
                    sys.exit(3)
            if self.rank == 0:
                print(json.dumps(result), flush=True)
        self.dist.barrier()
        self.dist.destroy_process_group()


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    pin(spec["rank"])
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # library prints go to stderr; stdout carries only the JSON lines
    sys.stdout = reply
    t0 = time.monotonic()
    Rank(spec).run()
    print(json.dumps({"done": True, "seconds": time.monotonic() - t0}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
