"""GPipe in JAX, the way JAX users write it: one jitted SPMD program, `jax.shard_map` over a
one-axis mesh ("pp") of P devices, a `lax.scan` over the M + P - 1 clock ticks in which device i
runs its stage on microbatch t - i (`lax.switch` on its axis index; `lax.cond` skips the bubble
ticks) and hands the activation to device i + 1 with `lax.ppermute`. `jax.grad` through the scan
gives the backward pass in reverse tick order with the reversed ppermutes: all forwards, then
all backwards, as GPipe. The same program runs on P host devices of one process
(`jax_num_cpu_devices`) and on P processes of one device each (`jax.distributed`, gloo).

Stage s's parameters live on device s: every parameter is a (P, ...) array sharded over "pp"
whose slot s holds the values and whose other slots hold zeros that no branch reads (a few MB at
this size). No parameter crosses devices; only the tied weight's two gradients are summed
(`psum`), as torch's ranks all-reduce it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PipeShape:
    """P stages, M microbatches, and the activation between two stages for one microbatch."""

    P: int
    M: int
    boundary: tuple[int, ...]


class JaxGPipe:
    def __init__(
        self, jax, stages, loss, shape: PipeShape, tied: tuple[int, ...], lr: float
    ) -> None:
        from jax.sharding import Mesh, NamedSharding
        from jax.sharding import PartitionSpec as PS

        P, M, boundary = shape.P, shape.M, shape.boundary
        self.jax, self.stages, self.loss, self.P, self.M = jax, stages, loss, P, M
        self.mesh = Mesh(np.array(jax.devices()[:P]), ("pp",))
        self.split, self.whole = NamedSharding(self.mesh, PS("pp")), NamedSharding(self.mesh, PS())
        self.boundary, self.tied, self.lr = boundary, tied, lr
        body = jax.shard_map(
            self.body, mesh=self.mesh, in_specs=(PS("pp"), PS(), PS()), out_specs=(PS(), PS("pp"))
        )
        self.grads = jax.jit(body)

        def step(slots, xs, ys):
            loss, g = body(slots, xs, ys)
            return jax.tree.map(lambda p, gi: p - lr * gi, slots, g), loss

        self.step = jax.jit(step, donate_argnums=0)

    def place(self, params: list[np.ndarray], x: np.ndarray, y: np.ndarray):
        """(slots, xs, ys) as global arrays: slots[s][k] (P, ...) holds stage s's k-th parameter in
        slot s; xs (M, b, ...), ys (M, b, ...) on every device."""
        jax, P, M = self.jax, self.P, self.M

        def put(a, sharding):
            return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])

        slots = []
        for s, (_, idx) in enumerate(self.stages):
            stage = []
            for i in idx:
                full = np.zeros((P, *params[i].shape), np.float32)
                full[s] = params[i]
                stage.append(put(full, self.split))
            slots.append(stage)
        xs, ys = (put(a.reshape(M, a.shape[0] // M, *a.shape[1:]), self.whole) for a in (x, y))
        return slots, xs, ys

    def varying(self, a):
        """a marked as differing between devices (what the branches of one switch must agree on)."""
        jax = self.jax
        return (
            a
            if "pp" in jax.typeof(a).manual_axis_type.varying
            else jax.lax.pcast(a, "pp", to="varying")
        )

    def body(self, slots, xs, ys):
        """Per device: (the loss summed over devices, this device's slot of every gradient)."""
        jax, jnp, P, M = self.jax, self.jax.numpy, self.P, self.M
        i = jax.lax.axis_index("pp")
        zero_act = jnp.zeros(self.boundary, jnp.float32)  # (b, ...): one microbatch's activation

        def local_loss(local):
            def branch(s):
                def run(act, m):
                    fn, _ = self.stages[s]
                    out = fn(local[s], xs[m] if s == 0 else act)
                    if s == P - 1:
                        return self.varying(zero_act), self.varying(self.loss(out, ys[m]) / M)
                    return self.varying(out), self.varying(jnp.float32(0))

                return run

            def tick(carry, t):
                act, total = carry
                m = t - i  # this device's microbatch at tick t
                out, part = jax.lax.cond(
                    (m >= 0) & (m < M),
                    lambda a: jax.lax.switch(
                        i, [branch(s) for s in range(P)], a, jnp.clip(m, 0, M - 1)
                    ),
                    lambda a: (self.varying(zero_act), self.varying(jnp.float32(0))),
                    act,
                )
                return (
                    jax.lax.ppermute(out, "pp", [(j, j + 1) for j in range(P - 1)]),
                    total + part,
                ), None

            start = (self.varying(zero_act), self.varying(jnp.float32(0)))
            (_, total), _ = jax.lax.scan(tick, start, jnp.arange(M + P - 1))
            return total

        local = [[a[0] for a in stage] for stage in slots]  # this device's slot of every parameter
        loss, g = jax.value_and_grad(local_loss)(local)
        for index in self.tied:  # a parameter two stages hold: one gradient, the sum of both parts
            held = [
                (s, k)
                for s, (_, idx) in enumerate(self.stages)
                for k, j in enumerate(idx)
                if j == index
            ]
            total = jax.lax.psum(sum(g[s][k] for s, k in held), "pp")
            for s, k in held:
                g[s][k] = total
        return jax.lax.psum(loss, "pp"), [[a[None] for a in stage] for stage in g]
