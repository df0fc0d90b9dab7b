"""The C pipeline of `bench pipeline`: `python -m bench.pipeline.c_rank SPEC_JSON` (a
protocol.RankSpec of form c: P MPI ranks of one thread each; c-single: one rank, the whole model
on P BLAS threads). It builds the program (bench/pipeline/cprog.py), writes the shared start
(float32 parameters, then the batch) to a file, runs it under the mpich wheel's mpiexec, and
relays rank 0's result lines, adding the gate's error from the gradient file the program wrote.
Nothing of Python runs between the stages: this process only waits on mpiexec's output. Across
nodes each node's c_rank starts that node's ranks, which join the others' (models/cjoin.c) at
the spec's rendezvous; only node 0's prints."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import frameworks, protocol
from bench.pipeline import cprog
from bench.pipeline.nodes import interface_of
from bench.pipeline.rank import NO_GROUP, channel_reply
from bench.supervisor import run_program
from models.gate import grad_rel_err


def write_data(path: Path, params: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> None:
    """The start every rank reads: float32 parameters in order, x (float32, or int64 token ids), y int64."""
    with open(path, "wb") as f:
        for p in params:
            f.write(np.ascontiguousarray(p, np.float32).tobytes())
        f.write(np.ascontiguousarray(x, np.float32 if x.dtype.kind == "f" else np.int64).tobytes())
        f.write(np.ascontiguousarray(y, np.int64).tobytes())


def grad_error(path: Path, want: list[np.ndarray]) -> float:
    """Largest relative error of any parameter's gradient in the program's flat float32 file."""
    flat, err, off = np.fromfile(path, np.float32), 0.0, 0
    for w in want:
        err = max(err, grad_rel_err(flat[off : off + w.size].reshape(w.shape), w))
        off += w.size
    return err


def local_ranks(spec: protocol.RankSpec) -> int:
    return 1 if spec.form == "c-single" else spec.world // spec.nnodes


def program_env(spec: protocol.RankSpec) -> dict[str, str]:
    """The BLAS threads, MPI on the interface of the spec's address, and across nodes where the
    ranks meet (models/cjoin.c)."""
    env = {
        **os.environ,
        "OPENBLAS_NUM_THREADS": str(spec.threads),
        **cprog.network_env(interface_of(spec.bind)),
    }
    if spec.nnodes > 1:
        join = (spec.node, spec.nnodes, spec.init_method, spec.timeout_s)
        env["BENCH_CPIPE_JOIN"] = " ".join(map(str, join))
    return env


def run(spec: protocol.RankSpec, reply) -> int:
    from models.registry import model_module, pipeline_hooks

    mod, hooks = model_module(spec.model), pipeline_hooks(spec.model)
    cfg = mod.Config(**spec.config)
    ranks = local_ranks(spec)
    prog = cprog.build(Path(hooks.C_STAGE))
    work = Path(tempfile.mkdtemp(prefix="bench-cpipe-"))
    write_data(work / "data.bin", mod.init_params(cfg), *mod.make_batch(cfg))
    pipeline = spec.form != "c-single" and spec.world > 1
    cases = [f"{c.schedule}:{c.microbatches if pipeline else 1}" for c in spec.cases]
    dims = [str(d) for d in hooks.c_dims(cfg)]
    c0 = spec.cases[0]
    cmd = [
        *cprog.launcher(ranks),
        str(prog),
        str(work / "data.bin"),
        str(work / "grads"),
        str(c0.round),
        str(c0.steps),
        str(int(c0.gate)),
        repr(cfg.lr),
        str(len(dims)),
        *dims,
        *cases,
    ]
    print(" ".join(cmd), file=sys.stderr, flush=True)
    # before the ranks start: nothing runs beside them
    want = hooks.reference_grads(cfg) if c0.gate and spec.node == 0 else None
    # the gate is judged once the ranks are done, for the same reason; a hang ends at gloo's own
    # timeout x cases
    code, out = run_program(cmd, program_env(spec), spec.timeout_s * (2 + len(spec.cases)))
    for line, c, arg in zip(out.splitlines(), spec.cases, cases, strict=False):
        res = protocol.decode_rank_line(line)
        res.microbatches = c.microbatches
        if want is not None:
            name, _, mb = arg.partition(":")
            res.grad_rel_err = grad_error(work / f"grads.{name}.{mb}.bin", want)
        reply(res)
    for f in work.iterdir():
        f.unlink()
    work.rmdir()
    return code


def main(argv: list[str]) -> int:
    spec = protocol.RankSpec.decode(argv[0])
    ranks = local_ranks(spec)
    cpus = spec.threads if spec.form == "c-single" else ranks
    frameworks.pin_process(cpus, "cpu", first=spec.node * ranks)
    reply = channel_reply()
    t0 = time.monotonic()
    code = run(spec, reply)
    if code == NO_GROUP:
        print("the nodes' ranks did not all meet (models/cjoin.c)", file=sys.stderr)
        return NO_GROUP
    if code != 0:
        print(f"mpiexec exited {code}", file=sys.stderr)
        return 3
    reply(protocol.RankDone(time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
