"""What a pipeline rank measures for one case: the gate (gradients of one step against the
float64 reference), the step times, each stage's compute alone, and the one-way send time of an
activation. Rank 0 gathers what the others measured.

A mixin of bench/pipeline/rank.Rank: `self` is the rank."""

from __future__ import annotations

import time

import numpy as np

from models.gate import grad_rel_err


class Measurements:
    def gate(self, step, mine, perturb: bool = False) -> float:
        """The largest relative gradient error of any tensor after one step (before its update is
        judged: the SGD update is lr times the gradient), over all ranks. perturb (tests only): this
        rank's first gradient tensor is 10% off, which the gate must catch."""
        step()
        if perturb:
            mine[0][2][0][1].grad.mul_(1.1)
        want = self.hooks.reference_grads(self.cfg)
        err = 0.0
        for _, _, pmap in mine:
            for i, p, transposed in pmap:
                # pragma: no mutate (after the tied-weight sum; astype(None) is float64 too)
                g = p.grad.detach().cpu().numpy().astype(np.float64)
                g = g.T if transposed else g
                err = max(err, grad_rel_err(g, want[i]))
        # pragma: no mutate (float32 changes a 1e-2 gate's error in its 7th digit)
        t = self.torch.tensor([err], dtype=self.torch.float64)
        self.dist.all_reduce(t, op=self.dist.ReduceOp.MAX)
        return float(t.item())

    def time_steps(self, step, n: int) -> list[int]:
        """Warm-up, then n steps; each timed on rank 0 from a barrier before it to a barrier after it
        (every rank done), so one gloo barrier is part of every step, whatever the schedule."""
        for _ in range(2):  # pragma: no mutate (two or three warm-up steps: both warm)
            step()
        out = []
        for _ in range(n):
            self.dist.barrier()
            t0 = time.perf_counter_ns()
            step()
            self.dist.barrier()
            out.append(time.perf_counter_ns() - t0)
        return out

    def stage_times(self, schedule, mine, n_stages: int, M: int) -> tuple[dict, dict]:
        """Forward and backward seconds of each stage alone on one microbatch (median of 5),
        gathered from every rank: ({stage: forward s}, {stage: backward s})."""
        torch = self.torch
        chunks = 1 if schedule.name == "one-process" else M
        xm, ym = self.x.chunk(chunks)[0], self.y.chunk(chunks)[0]
        f, b = {}, {}
        for s, module, _ in mine:
            fs, bs = [], []
            for _ in range(6):
                inp = (
                    xm
                    if s == 0
                    else torch.randn(self.boundary(xm), device=self.device, requires_grad=True)
                )
                t0 = time.perf_counter_ns()
                out = module(inp)
                if s == n_stages - 1:
                    out = self.loss(out, ym)
                t1 = time.perf_counter_ns()
                # pragma: no mutate (a scalar loss: None and ones_like are the same gradient)
                out.backward(None if s == n_stages - 1 else torch.ones_like(out))
                t2 = time.perf_counter_ns()
                fs.append(t1 - t0)
                bs.append(t2 - t1)
            f[s], b[s] = (
                float(np.median(fs[1:])) / 1e9,
                float(np.median(bs[1:])) / 1e9,
            )  # pragma: no mutate (one more untimed sample, or 1e9 + 1: the same figure)
        for _, module, _ in mine:
            module.zero_grad(set_to_none=True)
        gathered = [None] * self.P
        self.dist.all_gather_object(gathered, (f, b))
        return (
            {k: v for fi, _ in gathered for k, v in fi.items()},
            {k: v for _, bi in gathered for k, v in bi.items()},
        )

    def comm_time(self, M: int) -> float:
        """One-way time of one microbatch's activation between ranks 0 and 1: half the fastest of 10
        ping-pongs (the ideal is a lower bound: a ping-pong between two otherwise idle ranks pays
        their wake-up, 0.8-1.9 ms on the 2-core VM in some rounds, which sends inside a step mostly
        do not); the other ranks wait."""
        torch, dist = self.torch, self.dist
        buf = torch.zeros(self.boundary(self.x.chunk(M)[0]), device=self.device)
        out = []
        for _ in range(11):
            dist.barrier()
            if self.rank == 0:
                t0 = time.perf_counter_ns()
                dist.send(buf, 1)
                dist.recv(buf, 1)
                out.append(time.perf_counter_ns() - t0)
            elif self.rank == 1:
                dist.recv(buf, 0)
                dist.send(buf, 0)
        t = torch.tensor(
            [float(np.min(out[1:])) / 2e9 if out else 0.0]
            # pragma: no mutate (out[2:], 2e9 + 1: the same figure; the 0.0 of other ranks is
            # overwritten by the broadcast)
        )
        dist.broadcast(t, 0)
        return float(t.item())
