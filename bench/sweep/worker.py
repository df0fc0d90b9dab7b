"""Worker process: runs the cases of one framework. JSON lines in on stdin, JSON lines out
(bench/protocol.py).

Started by the runner as `python -m bench.sweep.worker FRAMEWORK THREADS DEVICE fp32|tf32 CPUS`. The CPU
affinity (CPUS, comma-separated: bench/frameworks.cpu_layout) is set before any framework is imported, then each framework's own thread setting
(bench/frameworks.py). Anything the framework prints goes to stderr: the reply channel is a
private copy of the original stdout.
"""

from __future__ import annotations

import faulthandler
import os
import resource
import sys
import traceback

from bench import frameworks, protocol


def rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def error_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".splitlines()[0]


class Worker:
    def __init__(self, framework: str, threads: int, device: str, tf32: bool) -> None:
        self.framework, self.threads, self.device, self.tf32 = framework, threads, device, tf32
        self.steps: dict = {}  # (impl, config) -> prepare.Built, kept across rounds
        self.keep = None  # the framework's thread limits, alive as long as the worker

    def hello(self, msg: protocol.Hello) -> protocol.HelloReply:
        try:
            info, self.keep = frameworks.setup(self.framework, self.threads, self.device, self.tf32)
        except Exception as e:  # a framework that fails to import makes its rows unavailable
            traceback.print_exc()
            return protocol.HelloReply(ok=False, error=error_line(e))
        return protocol.HelloReply(ok=True, info=info)

    def peak(self, msg: protocol.PeakRequest) -> protocol.PeakReply:
        from bench.sweep import peak
        from bench.timing import Budget

        return protocol.PeakReply(
            result=peak.measure(self.framework, msg.n, Budget(**msg.budget), self.device)
        )

    def case(self, msg: protocol.CaseRequest) -> protocol.CaseReply:
        from bench.sweep import prepare
        from bench.timing import REWARM_S, Budget, chunk_budget, sample, warm_up
        from models.registry import get, model_module

        impl = get(msg.model, msg.impl)
        cfg = model_module(msg.model).Config(**msg.config)
        out = protocol.CaseReply(status="ok", pid=os.getpid())
        built = self.steps.get((impl.name, cfg))
        fresh = built is None
        if fresh:
            try:
                built = prepare.build(impl, cfg, msg.steps_per_call, msg.device)
            except ImportError as e:
                return protocol.CaseReply(status="unavailable", error=error_line(e))
            out.first_call_s = built.first_call_s
            self.steps[(impl.name, cfg)] = built
        step = built.step
        if msg.gate and step.gate:
            g = prepare.gate(step, msg.model, cfg)
            out.loss_rel_err, out.update_rel_err = g.loss_rel_err, g.update_rel_err
            if g.status != "ok":
                out.status, out.error = g.status, g.error
                return out
        budget = Budget(**msg.budget)
        if fresh or msg.chunk == 0:
            warm_up(step.call, budget)
        else:  # a later chunk, after the process's other cases: their caches, not this case's
            warm_up(step.call, Budget(warmup_s=REWARM_S), min_calls=1)
        out.samples_ns = sample(step.call, chunk_budget(budget, msg.chunks))
        out.steps_per_call, out.last = step.steps_per_call, msg.chunk == msg.chunks - 1
        if step.gate and out.last:
            why = prepare.still_finite(step)
            if why:
                out.status, out.error = "diverged", why
        return out

    def describe(self, msg: protocol.DescribeRequest) -> protocol.DescribeReply:
        """The op count and description of a case this process built (its gate failed or its round's
        timing is done: prepare.describe_step resets Dynamo, so the runner asks after the round)."""
        from bench.sweep import prepare
        from models.registry import model_module

        built = self.steps.get((msg.impl, model_module(msg.model).Config(**msg.config)))
        if built is None:  # a new process since (its worker died): described after a later round
            return protocol.DescribeReply(status="absent")
        prepare.describe_step(built)
        return protocol.DescribeReply(status="ok", ops_per_step=built.ops_per_step, info=built.info)

    def handle(self, msg):
        """The reply to one request (exceptions become an error reply of the right type)."""
        handler = {
            "hello": self.hello,
            "peak": self.peak,
            "case": self.case,
            "describe": self.describe,
        }[msg.op]
        try:
            return handler(msg)
        except Exception as e:
            traceback.print_exc()
            if msg.op == "peak":
                return protocol.PeakReply(error=error_line(e))
            reply_type = protocol.DescribeReply if msg.op == "describe" else protocol.CaseReply
            return reply_type(status="error", error=error_line(e))


def main(argv: list[str]) -> int:
    framework, threads = argv[0], int(argv[1])
    device = argv[2] if len(argv) > 2 else "cpu"
    tf32 = len(argv) > 3 and argv[3] == "tf32"
    cpus = [int(c) for c in argv[4].split(",")] if len(argv) > 4 else None  # the runner's layout
    reply_to = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # framework prints land in stderr, never in the reply channel
    faulthandler.enable()  # a segfault leaves its Python stack in stderr, for the case's reason
    frameworks.pin_process(threads, device, cpus=cpus)
    worker = Worker(framework, threads, device, tf32)
    for line in sys.stdin:
        msg = protocol.decode_request(line)
        if msg.op == "exit":
            break
        reply = worker.handle(msg)
        reply.peak_rss_mb = rss_mb()
        reply_to.write(protocol.encode(reply) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
