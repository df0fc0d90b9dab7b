"""One rank of `bench pipeline`: `python -m bench.pipeline.rank SPEC_JSON` (a protocol.RankSpec),
started by bench/pipeline/group.py.

One thread pinned to one CPU (a one-process baseline: P threads on P CPUs), set before torch
is imported. The process group is gloo (NCCL on
GPUs) at the spec's rendezvous, with a short timeout so a broken schedule fails instead of
hanging for the default 30 minutes. Rank 0 prints one protocol.PipeResult line per case; every
rank runs every case. What the model must provide comes from its pipeline hooks
(models/<model>/pipeline.py); this package names no model.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from dataclasses import asdict

from bench import frameworks, protocol
from bench.pipeline.measure import Measurements
from bench.pipeline.steps import Steps
from bench.schedules import SCHEDULES

NO_GROUP = 5  # the exit code of a rank whose group did not form (C's program too)


class Rank(Steps, Measurements):
    def __init__(self, spec: protocol.RankSpec) -> None:
        from datetime import timedelta

        import torch
        import torch.distributed as dist

        from models.registry import load, model_module, pipeline_hooks

        torch.set_num_threads(spec.threads)
        self.torch, self.dist, self.spec = torch, dist, spec
        self.rank, self.P = spec.rank, spec.world
        self.device = torch.device(f"cuda:{self.rank}" if spec.device == "cuda" else "cpu")
        self.mod, self.hooks = model_module(spec.model), pipeline_hooks(spec.model)
        self.cfg = self.mod.Config(**spec.config)
        self.make_stages, self.loss = load(self.hooks.TORCH_STAGES), load(self.hooks.TORCH_LOSS)
        x, y = self.mod.make_batch(self.cfg)
        self.x, self.y = torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device)
        from bench.pipeline.nodes import interface_of

        os.environ["GLOO_SOCKET_IFNAME"] = interface_of(spec.bind)
        try:
            dist.init_process_group(
                "nccl" if spec.device == "cuda" else "gloo",
                rank=self.rank,
                world_size=self.P,
                init_method=spec.init_method,
                timeout=timedelta(seconds=spec.timeout_s),
            )
        except Exception as e:  # no group formed: a rank (across nodes: a node) did not come
            print(f"rank {self.rank}: no process group at {spec.init_method}: {e}", file=sys.stderr)
            sys.exit(NO_GROUP)
        self.cases = spec.cases

    def case(self, c: protocol.PipeCase) -> protocol.PipeResult:
        # tests only: "schedule:rank:crash|hang|grad"
        fault = os.environ.get("BENCH_PIPELINE_FAULT", "")
        fault = fault.split(":")[2] if fault.split(":")[:2] == [c.schedule, str(self.rank)] else ""
        if fault == "crash":
            os._exit(9)
        if fault == "hang":
            time.sleep(3600)
        schedule, M = SCHEDULES[c.schedule], c.microbatches
        step, mine, n_stages = self.build(schedule, M)
        out = protocol.PipeResult(schedule.name, M, c.round, "ok")
        if c.gate:
            out.grad_rel_err = self.gate(step, mine, perturb=fault == "grad")
        out.step_ns = self.time_steps(step, c.steps)
        out.stage_f_s, out.stage_b_s = self.stage_times(schedule, mine, n_stages, M)
        out.comm_s = self.comm_time(M) if self.P > 1 and schedule.kind != "single" else 0.0
        order = getattr(step, "pipeline_order", None)
        if (
            order
        ):  # torch's own action order of a multi-stage schedule, for the ideal-time simulation
            out.order = {
                int(r): [str(a) for a in acts if a is not None] for r, acts in order.items()
            }
        return out

    def run(self, reply) -> None:
        for c in self.cases:
            try:
                result = self.case(c)
            except Exception as e:  # this case fails; the peers see a timeout or the same error
                traceback.print_exc()
                why = f"rank {self.rank}: {type(e).__name__}: {e}".splitlines()[0]
                status = (
                    "timeout" if "timed out" in why.lower() or "timeout" in why.lower() else "error"
                )
                result = protocol.PipeResult(c.schedule, c.microbatches, c.round, status, why[:300])
                if self.rank != 0:
                    reply(result)  # the supervisor reads every rank
                    self.dist.destroy_process_group()
                    sys.exit(3)
            if self.rank == 0:
                reply(result)
        self.dist.barrier()
        self.dist.destroy_process_group()


def channel_reply():
    """reply(msg): one JSON line on the real stdout; library prints go to stderr from now on."""
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # library prints go to stderr; stdout carries only the JSON lines
    sys.stdout = channel

    def reply(msg) -> None:
        channel.write(json.dumps(asdict(msg)) + "\n")

    return reply


def main(argv: list[str]) -> int:
    spec = protocol.RankSpec.decode(argv[0])
    frameworks.pin_process(spec.threads, spec.device, first=spec.rank * spec.threads)
    reply = channel_reply()
    t0 = time.monotonic()
    Rank(spec).run(reply)
    reply(protocol.RankDone(time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
