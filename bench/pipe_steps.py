"""One training step of a pipeline schedule, on one rank: torch.distributed.pipelining's schedules,
the hand-written GPipe and 1F1B over the same process group's send/recv, and the one-process
baselines. Every variant ends with the tied-weight gradient sum (the GPT's head and embedding
live on different stages) and one SGD update of the rank's parameters."""

from __future__ import annotations


def build(rank, schedule, M: int):
    """(step(), [(stage index, module, parameter map)] of this rank, number of stages)."""
    import torch

    S = schedule.n_stages(rank.P)
    stages = rank.impl.pipeline_stages(rank.cfg, S)
    mine = [(s, stages[s][0].to(rank.device), stages[s][1]) for s in schedule.stages(rank.rank, rank.P)]
    params = [p for _, m, _ in mine for p in m.parameters()]
    opt = torch.optim.SGD(params, lr=rank.cfg.lr) if params else None
    if schedule.kind == "torch":
        run = torch_schedule(rank, schedule, mine, S, M)
    elif schedule.kind == "hand":
        run = hand_schedule(rank, schedule, mine, M)
    else:
        run = single_process(rank, schedule, mine, M)

    def step() -> None:
        if opt:
            opt.zero_grad(set_to_none=False)
        run()
        sum_tied(rank, mine)
        if opt:
            opt.step()

    step.pipeline_order = getattr(run, "pipeline_order", None)
    return step, mine, S


def sum_tied(rank, mine) -> None:
    """The GPT's head weight (last stage) and token embedding (first stage) are one parameter:
    all ranks add their parts of its gradient (zeros where they hold neither)."""
    if rank.spec["model"] != "gpt":
        return
    import torch

    tied = [p for _, _, pmap in mine for i, p, _ in pmap if i == 0]
    total = torch.zeros(rank.cfg.vocab, rank.cfg.n_embd, device=rank.device)
    for p in tied:
        if p.grad is not None:
            total += p.grad
    if rank.P > 1:
        rank.dist.all_reduce(total)
    for p in tied:
        p.grad = total.clone()


def torch_schedule(rank, schedule, mine, S: int, M: int):
    from torch.distributed import pipelining

    from bench.pipe_schedules import TORCH_CLASSES

    stages = [pipelining.PipelineStage(m, s, S, rank.device) for s, m, _ in mine]
    cls = getattr(pipelining, TORCH_CLASSES[schedule.name])
    sched = cls(stages[0] if schedule.layout == "one" else stages, M, loss_fn=rank.impl.pipeline_loss)
    first, last = any(s == 0 for s, _, _ in mine), any(s == S - 1 for s, _, _ in mine)

    def run() -> None:
        args = (rank.x,) if first else ()
        kwargs = {"target": rank.y, "losses": []} if last else {}
        sched.step(*args, **kwargs)

    run.pipeline_order = getattr(sched, "pipeline_order", None)
    return run


def hand_schedule(rank, schedule, mine, M: int):
    """GPipe or 1F1B written by hand: blocking recv, non-blocking isend (two blocking sends
    facing each other would deadlock), every send waited for before the step ends."""
    from bench.pipe_schedules import hand_order

    (s, module, _), = mine
    dist, P, r = rank.dist, rank.P, rank.rank
    xs, ys = rank.x.chunk(M), rank.y.chunk(M)
    loss = rank.impl.pipeline_loss

    def run() -> None:
        inputs, outputs, sends = {}, {}, []
        for action, m in hand_order(schedule.name, r, P, M):
            if action == "F":
                inp = xs[m] if r == 0 else recv(rank, boundary_shape(rank, xs[m]), r - 1, grad=True)
                out = module(inp)
                if r == P - 1:
                    out = loss(out, ys[m]) / M  # the mean over the whole batch
                else:
                    sends.append(dist.isend(out.detach().contiguous(), r + 1))
                inputs[m], outputs[m] = inp, out
            else:
                if r == P - 1:
                    outputs[m].backward()
                else:
                    outputs[m].backward(recv(rank, outputs[m].shape, r + 1))
                if r > 0:
                    sends.append(dist.isend(inputs[m].grad.contiguous(), r - 1))
                del inputs[m], outputs[m]
        for h in sends:
            h.wait()

    return run


def boundary_shape(rank, x_chunk) -> tuple[int, ...]:
    """The activation shape between two stages for a microbatch of x_chunk's rows."""
    if rank.spec["model"] == "gpt":
        return (x_chunk.shape[0], rank.cfg.seq_len, rank.cfg.n_embd)  # (b, T, C)
    return (x_chunk.shape[0], rank.cfg.width)  # (b, H)


def recv(rank, shape, src: int, grad: bool = False):
    t = rank.torch.empty(shape, device=rank.device)
    rank.dist.recv(t, src)
    return t.requires_grad_() if grad else t


def single_process(rank, schedule, mine, M: int):
    """The whole model in rank 0 over the whole batch, or (accum) over M microbatches with the
    gradients accumulated: what pipelining changes, without any pipelining."""
    loss = rank.impl.pipeline_loss
    chunks = M if schedule.name.endswith("accum") else 1

    def run() -> None:
        if not mine:
            return
        (_, module, _), = mine
        for xm, ym in zip(rank.x.chunk(chunks), rank.y.chunk(chunks), strict=True):
            (loss(module(xm), ym) / chunks).backward()

    return run
