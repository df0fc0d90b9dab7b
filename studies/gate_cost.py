"""What the equivalence gate costs and how far float32 strays over its steps: for each implementation
and size, in this process, build the case (its first call), time bench/sweep/prepare.gate, and
report its status and errors; for an unfused implementation also the loss and update errors after
all the steps a fused row's gate runs at that size (K x ceil(5 / K)): the loss error grows with
the steps, which is why the gate compares only the first 5. Ends with each implementation's total gate time.

    python studies/gate_cost.py MODEL IMPL[,IMPL...] [SIZES]     # SIZES: default (default), quick, BxHxL,...

From another tree (PYTHONPATH=TREE) it times that tree's gate: before 13dc4b8, 5 steps whatever K.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np


def main(argv: list[str]) -> int:
    from bench import frameworks
    from bench.sizes import parse_sizes
    from bench.sweep import prepare
    from models.registry import model_module, select

    if len(argv) not in (2, 3):
        print("usage: python studies/gate_cost.py MODEL IMPL[,IMPL...] [SIZES]", file=sys.stderr)
        return 2
    model = argv[0]
    try:
        impls, sizes = (
            select(model, argv[1]),
            parse_sizes(argv[2] if len(argv) == 3 else "default", model),
        )
    except (KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        "| impl | size | K | steps | first call s | gate s | status | loss err (5) | update err | loss err (all steps) | update err (all steps) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    totals = {}
    for impl in impls:
        frameworks.setup(impl.framework, 1, "cpu", False)
        for size in sizes:
            cfg, k = size.config(), size.steps_per_call()
            n = k * math.ceil(prepare.GATE_STEPS / k)
            built = prepare.build(impl, cfg, k if impl.fused else 1, "cpu")
            if not built.step.gate:  # the control computes nothing: no gate, as in a run
                print(
                    f"| {impl.name} | {size.label} | {k} | | {built.first_call_s:.2f} | | no gate | | | | |"
                )
                continue
            t0 = time.perf_counter()
            g = prepare.gate(built.step, model, cfg)
            gate_s = time.perf_counter() - t0
            totals[impl.name] = totals.get(impl.name, 0.0) + gate_s
            over_all = (math.nan, math.nan)
            if built.step.steps_per_call == 1:  # n single steps: no other program
                built.step.reset()
                *over_all, _ = model_module(model).compare(
                    cfg,
                    np.asarray(built.step.losses(n)),
                    built.step.params(),
                    prepare.reference(model, cfg, n),
                )
            print(
                f"| {impl.name} | {size.label} | {k} | {n} | {built.first_call_s:.2f} | {gate_s:.2f} | {g.status} | "
                f"{g.loss_rel_err:.1e} | {g.update_rel_err:.1e} | {over_all[0]:.1e} | {over_all[1]:.1e} |",
                flush=True,
            )
    print("\n" + "; ".join(f"{name}: gate {s:.1f} s in all" for name, s in totals.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
