"""A JAX process of `bench pipeline`: `python -m bench.pipeline.jax_rank SPEC_JSON` (a
protocol.RankSpec), started by bench/pipeline/group.py. Three forms (spec.form):

- jax: one process, P host devices (`--xla_force_host_platform_device_count`), each device's
  ops on one thread (`--xla_cpu_multi_thread_eigen=false`), the process on P CPUs;
- jax-dist: P processes of one device each, one CPU each, joined by `jax.distributed` at
  the spec's coordinator (process 0's, at its node's address) with gloo CPU collectives on the
  interface of the spec's address (across nodes too: bench/pipeline/nodes.py);
- jax-single: the one-process baseline, the whole model jitted on one device with P threads.

Process 0 prints one protocol.PipeResult line per case. The pipeline is bench/pipeline/jax_pipe.py.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from bench import frameworks, protocol
from bench.pipeline.rank import NO_GROUP, channel_reply
from models.gate import grad_rel_err

FORMS = ("jax", "jax-dist", "jax-single")


class JaxRank:
    def __init__(self, spec: protocol.RankSpec) -> None:
        import jax

        from models.registry import load, model_module, pipeline_hooks

        jax.config.update("jax_default_matmul_precision", "highest")
        if spec.form == "jax-dist":
            join(jax, spec)
        self.jax, self.spec, self.rank = jax, spec, spec.rank
        self.P = 1 if spec.form == "jax-single" else spec.world
        self.mod, self.hooks = model_module(spec.model), pipeline_hooks(spec.model)
        self.cfg = self.mod.Config(**spec.config)
        self.make_stages, self.loss = load(self.hooks.JAX_STAGES), load(self.hooks.JAX_LOSS)
        self.params = self.mod.init_params(self.cfg)
        self.x, self.y = self.mod.make_batch(self.cfg)
        if self.x.dtype == np.int64:
            self.x = self.x.astype(np.int32)
        self.y = self.y.astype(np.int32)

    def build(self, M: int):
        from bench.pipeline.jax_pipe import JaxGPipe, PipeShape

        stages = self.make_stages(self.cfg, self.P)
        shape = PipeShape(self.P, M, self.hooks.boundary_shape(self.cfg, self.cfg.batch // M))
        pipe = JaxGPipe(self.jax, stages, self.loss, shape, self.hooks.TIED, self.cfg.lr)
        return pipe, stages

    def case(self, c: protocol.PipeCase) -> protocol.PipeResult:
        from jax.experimental import multihost_utils

        M = 1 if self.spec.form == "jax-single" else c.microbatches
        pipe, stages = self.build(M)
        state = list(pipe.place(self.params, self.x, self.y))
        out = protocol.PipeResult(c.schedule, c.microbatches, c.round, "ok")
        if c.gate:
            _, g = pipe.grads(*state)
            g = multihost_utils.process_allgather(g, tiled=True)
            want = self.hooks.reference_grads(self.cfg)
            out.grad_rel_err = max(
                grad_rel_err(g[s][k][s], want[i])
                for s, (_, idx) in enumerate(stages)
                for k, i in enumerate(idx)
            )
        out.step_ns = self.time_steps(pipe, state, c.steps)
        drift = tied_drift(
            stages, self.hooks.TIED, multihost_utils.process_allgather(state[0], tiled=True)
        )
        if (
            drift > 1e-6
        ):  # the tied parameter is one parameter: its two copies must have moved together
            out.status, out.error = (
                "error",
                f"the tied parameter's two copies differ by {drift:.1e} after the steps",
            )
        out.stage_f_s, out.stage_b_s = self.stage_times(stages, M)
        shape = self.hooks.boundary_shape(self.cfg, self.cfg.batch // M)
        out.comm_s = comm_time(self.jax, pipe, shape, self.median_s) if self.P > 1 else 0.0
        return out

    def time_steps(self, pipe, state, n: int) -> list[int]:
        """Two warm-up steps (the first compiles), then n, each from its call until this process's
        shards of the new parameters are ready (the step's ppermutes tie the devices together)."""
        out = []
        for k in range(n + 2):
            t0 = time.perf_counter_ns()
            state[0], _ = pipe.step(*state)
            self.jax.block_until_ready(state[0])
            if k >= 2:
                out.append(time.perf_counter_ns() - t0)
        return out

    def stage_times(self, stages, M: int) -> tuple[dict, dict]:
        """Forward and backward seconds of each stage alone on one microbatch, jitted on one device
        (median of 5): backward = the vjp's time minus the forward's (a jitted vjp reruns the forward)."""
        from jax.experimental import multihost_utils

        jax, b = self.jax, self.cfg.batch // M
        mine = range(self.P) if self.spec.form != "jax-dist" else [self.rank]
        f, bk = np.zeros(self.P), np.zeros(self.P)
        for s in mine:
            fn, idx = stages[s]
            params = [jax.device_put(self.params[i], jax.local_devices()[0]) for i in idx]
            inp = (
                self.x[:b]
                if s == 0
                else np.ones(self.hooks.boundary_shape(self.cfg, b), np.float32)
            )
            last = s == len(stages) - 1
            fwd = jax.jit(
                lambda p, x, fn=fn, last=last: self.loss(fn(p, x), self.y[:b]) if last else fn(p, x)
            )
            if s == 0:
                vjp = jax.jit(
                    lambda p, x, fn=fwd: jax.vjp(lambda q: fn(q, x), p)[1](
                        jax.numpy.ones_like(fn(p, x))
                    )
                )
            else:
                vjp = jax.jit(
                    lambda p, x, fn=fwd: jax.vjp(fn, p, x)[1](jax.numpy.ones_like(fn(p, x)))
                )
            f[s], both = (self.median_s(g, params, inp) for g in (fwd, vjp))
            bk[s] = max(both - f[s], 0.0)
        if self.spec.form == "jax-dist":
            # each process filled its own
            f, bk = (multihost_utils.process_allgather(a).sum(axis=0) for a in (f, bk))
        return {s: float(f[s]) for s in range(self.P)}, {s: float(bk[s]) for s in range(self.P)}

    def median_s(self, fn, *args, fastest: bool = False) -> float:
        """Seconds of fn(*args) until ready: the median of 5 after one untimed call (fastest: the
        minimum of 10)."""
        ts = []
        for _ in range(11 if fastest else 6):
            t0 = time.perf_counter_ns()
            self.jax.block_until_ready(fn(*args))
            ts.append(time.perf_counter_ns() - t0)
        return float(np.min(ts[1:]) if fastest else np.median(ts[1:])) / 1e9

    def run(self, reply) -> None:
        for c in self.spec.cases:
            try:
                result = self.case(c)
            except Exception as e:  # this case fails; the peers fail or time out with it
                import traceback

                traceback.print_exc()
                why = f"process {self.rank}: {type(e).__name__}: {e}".splitlines()[0]
                result = protocol.PipeResult(
                    c.schedule, c.microbatches, c.round, "error", why[:300]
                )
                reply(result)
                sys.exit(3)
            if self.rank == 0:
                reply(result)
        if self.spec.form == "jax-dist":
            self.jax.distributed.shutdown()


def join(jax, spec: protocol.RankSpec) -> None:
    """jax.distributed at the spec's coordinator, bound to its address (not jax's default [::]),
    with gloo on the spec's address: jax names no host to gloo, which would take the address of
    the machine's hostname, so the one call that makes gloo's device is given it."""
    from functools import partial

    from jax._src import xla_bridge

    make = xla_bridge._jax.make_gloo_tcp_collectives
    xla_bridge._jax.make_gloo_tcp_collectives = partial(make, hostname=spec.bind)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            spec.init_method,
            num_processes=spec.world,
            process_id=spec.rank,
            initialization_timeout=int(spec.timeout_s),
            coordinator_bind_address=spec.init_method if spec.rank == 0 else None,
        )
    except Exception as e:  # no group formed: a process (across nodes: a node) did not come
        print(
            f"process {spec.rank}: no jax.distributed group at {spec.init_method}: {e}",
            file=sys.stderr,
        )
        sys.exit(NO_GROUP)


def tied_drift(stages, tied: tuple[int, ...], slots) -> float:
    """Largest difference between the copies of a tied parameter that two stages hold (each in its
    own slot), over its largest value; 0 without one."""
    worst = 0.0
    for index in tied:
        held = [
            np.asarray(slots[s][k][s])
            for s, (_, idx) in enumerate(stages)
            for k, i in enumerate(idx)
            if i == index
        ]
        for h in held[1:]:
            worst = max(worst, float(np.abs(h - held[0]).max() / max(np.abs(held[0]).max(), 1e-30)))
    return worst


def comm_time(jax, pipe, shape: tuple[int, ...], median_s) -> float:
    """One-way time of one microbatch's activation from device 0 to device 1: half of a jitted
    ppermute there and back (the fastest of 10, as the torch ranks' send)."""
    from jax.sharding import PartitionSpec as PS

    P = len(pipe.mesh.devices)
    buf = np.zeros((P, *shape), np.float32)
    a = jax.make_array_from_callback(buf.shape, pipe.split, lambda index: buf[index])
    perm = [(j, j + 1) for j in range(P - 1)]
    back = [(j + 1, j) for j in range(P - 1)]
    trip = jax.jit(
        jax.shard_map(
            lambda v: jax.lax.ppermute(jax.lax.ppermute(v, "pp", perm), "pp", back),
            mesh=pipe.mesh,
            in_specs=PS("pp"),
            out_specs=PS("pp"),
        )
    )
    return median_s(trip, a, fastest=True) / 2


def main(argv: list[str]) -> int:
    spec = protocol.RankSpec.decode(argv[0])
    threads = 1 if spec.form == "jax-dist" else spec.threads
    frameworks.pin_process(threads, "cpu", first=spec.rank if spec.form == "jax-dist" else 0)
    flags = [os.environ.get("XLA_FLAGS", "")]
    if spec.form == "jax":
        flags += [
            f"--xla_force_host_platform_device_count={spec.world}",
            "--xla_cpu_multi_thread_eigen=false",
        ]
    os.environ["XLA_FLAGS"] = " ".join(f for f in flags if f)
    reply = channel_reply()
    t0 = time.monotonic()
    JaxRank(spec).run(reply)
    reply(protocol.RankDone(time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
