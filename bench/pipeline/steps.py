"""One training step of a pipeline schedule, on one rank: torch.distributed.pipelining's schedules,
the hand-written GPipe and 1F1B over the same process group's send/recv, and the one-process
baselines. Every variant ends with the tied-weight gradient sum (a parameter that two stages
hold, as the GPT's token embedding and head) and one SGD update of the rank's parameters.

A mixin of bench/pipeline/rank.Rank: `self` is the rank (torch, dist, cfg, hooks, x, y, ...)."""

from __future__ import annotations


class Steps:
    def build(self, schedule, M: int):
        """(step(), [(stage index, module, parameter map)] of this rank, number of stages)."""
        torch = self.torch
        S = schedule.n_stages(self.P)
        stages = self.make_stages(self.cfg, S)
        mine = [
            (s, stages[s][0].to(self.device), stages[s][1])
            for s in schedule.stages(self.rank, self.P)
        ]
        params = [p for _, m, _ in mine for p in m.parameters()]
        opt = torch.optim.SGD(params, lr=self.cfg.lr) if params else None
        run = {
            "torch": self.torch_schedule,
            "hand": self.hand_schedule,
            "single": self.single_process,
        }[schedule.kind](schedule, mine, S, M)

        def step() -> None:
            if opt:
                opt.zero_grad(set_to_none=False)
            run()
            self.sum_tied(mine)
            if opt:
                opt.step()

        step.pipeline_order = getattr(run, "pipeline_order", None)
        return step, mine, S

    def sum_tied(self, mine) -> None:
        """A parameter two stages hold (hooks.TIED) is one parameter: all ranks add their parts of
        its gradient (zeros where they hold none of it)."""
        for index in self.hooks.TIED:
            held = [p for _, _, pmap in mine for i, p, _ in pmap if i == index]
            total = self.torch.zeros(
                self.mod.init_params(self.cfg)[index].shape, device=self.device
            )
            for p in held:
                if p.grad is not None:
                    total += p.grad
            if self.P > 1:
                self.dist.all_reduce(total)
            for p in held:
                p.grad = total.clone()

    def torch_schedule(self, schedule, mine, S: int, M: int):
        from torch.distributed import pipelining

        from bench.schedules import TORCH_CLASSES

        stages = [pipelining.PipelineStage(m, s, S, self.device) for s, m, _ in mine]
        cls = getattr(pipelining, TORCH_CLASSES[schedule.name])
        sched = cls(stages[0] if schedule.layout == "one" else stages, M, loss_fn=self.loss)
        first, last = any(s == 0 for s, _, _ in mine), any(s == S - 1 for s, _, _ in mine)

        def run() -> None:
            args = (self.x,) if first else ()
            kwargs = {"target": self.y, "losses": []} if last else {}
            sched.step(*args, **kwargs)

        run.pipeline_order = getattr(sched, "pipeline_order", None)
        return run

    def hand_schedule(self, schedule, mine, S: int, M: int):
        """GPipe or 1F1B written by hand: blocking recv, non-blocking isend (two blocking sends
        facing each other would deadlock), every send waited for before the step ends."""
        from bench.schedules import hand_order

        ((_, module, _),) = mine
        dist, P, r = self.dist, self.P, self.rank
        xs, ys = self.x.chunk(M), self.y.chunk(M)

        def run() -> None:
            inputs, outputs, sends = {}, {}, []
            for action, m in hand_order(schedule.name, r, P, M):
                if action == "F":
                    inp = xs[m] if r == 0 else self.recv(self.boundary(xs[m]), r - 1, grad=True)
                    out = module(inp)
                    if r == P - 1:
                        out = self.loss(out, ys[m]) / M  # the mean over the whole batch
                    else:
                        sends.append(dist.isend(out.detach().contiguous(), r + 1))
                    inputs[m], outputs[m] = inp, out
                else:
                    if r == P - 1:
                        outputs[m].backward()
                    else:
                        outputs[m].backward(self.recv(outputs[m].shape, r + 1))
                    if r > 0:
                        sends.append(dist.isend(inputs[m].grad.contiguous(), r - 1))
                    del inputs[m], outputs[m]
            for h in sends:
                h.wait()

        return run

    def boundary(self, x_chunk) -> tuple[int, ...]:
        """The activation shape between two stages for a microbatch of x_chunk's rows."""
        return self.hooks.boundary_shape(self.cfg, x_chunk.shape[0])

    def recv(self, shape, src: int, grad: bool = False):
        t = self.torch.empty(shape, device=self.device)
        self.dist.recv(t, src)
        return t.requires_grad_() if grad else t

    def single_process(self, schedule, mine, S: int, M: int):
        """The whole model in rank 0 over the whole batch, or (accum) over M microbatches with the
        gradients accumulated: what pipelining changes, without any pipelining."""
        chunks = M if schedule.name.endswith("accum") else 1

        def run() -> None:
            if not mine:
                return
            ((_, module, _),) = mine
            for xm, ym in zip(self.x.chunk(chunks), self.y.chunk(chunks), strict=True):
                (self.loss(module(xm), ym) / chunks).backward()

        return run
