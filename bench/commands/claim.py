"""`bench claim`: the step-time model of a GPU cluster (bench/claim/), validated on published runs."""

from __future__ import annotations

import json
from pathlib import Path

from bench.commands.common import EXIT_OK, UsageError

HELP = "the step-time model of a GPU cluster: which terms dominate, and what removing the framework would save"


def add_arguments(p) -> None:
    p.add_argument("config", type=Path, nargs="?", default=None, help="a TOML config ([model], [parallel], "
                   "[hardware], [software]); or --preset")
    p.add_argument("--preset", default=None, help="seed, or a published run's name (--list-presets)")
    p.add_argument("--json", action="store_true", help="print one JSON object (step_s, mfu, breakdown_s, ...)")
    p.add_argument("--sweep", action="store_true", help="also find where the framework-free share passes 5%% and 20%%")
    p.add_argument("--validate", action="store_true", help="predict the published A100 runs and this project's "
                   "pipeline probe")
    p.add_argument("--refit", action="store_true", help="with --validate: fit the named parameters again")
    p.add_argument("--list-hardware", action="store_true", help="print the GPU table with its sources")
    p.add_argument("--list-presets", action="store_true", help="print the preset names")


def run(args) -> int:
    from bench.claim import hardware, presets

    if args.list_hardware:
        print(hardware.table())
        return EXIT_OK
    if args.list_presets:
        print("\n".join(presets.presets()))
        return EXIT_OK
    if args.validate:
        return validate(args.refit, args.json)
    c = load(args)
    from bench.claim import answer, render

    try:
        s = answer.evaluate(c)
    except ValueError as e:  # a framework without a measured host cost
        raise UsageError(str(e)) from None
    rows = answer.sweep(c) if args.sweep else None
    print(json.dumps(render.as_json(s, rows), indent=2) if args.json else render.markdown(s, rows))
    return EXIT_OK


def load(args):
    from bench.claim import config, presets
    from bench.claim.formulas import check_memory

    if (args.config is None) == (args.preset is None):
        raise UsageError("give a CONFIG.toml or --preset NAME (one of them)")
    try:
        if args.preset is not None:
            known = presets.presets()
            if args.preset not in known:
                raise UsageError(f"--preset {args.preset!r}: unknown (known: {', '.join(known)})")
            c = known[args.preset]
        else:
            c = config.load(args.config)
        return check_memory(c)
    except config.ConfigError as e:
        raise UsageError(str(e)) from None


def validate(refit: bool, as_json: bool) -> int:
    from bench.claim import validate as v
    from bench.claim.host import host_cost

    host = host_cost("torch.eager", "xeon")  # Megatron-LM: PyTorch eager on DGX A100's Xeon hosts
    pr, df = v.refit(host) if refit else (None, v.predict(host))
    mae, worst = v.summary(df)
    probe = v.probe()
    if as_json:
        print(json.dumps({"published": df.to_dict("records"), "mae": mae, "max_abs_error": worst,
                          "probe": probe.to_dict("records"), **({"refit": pr.__dict__} if pr else {})}, indent=2))
        return EXIT_OK
    print("| run | measured s | predicted s | error | MFU |\n|---|---:|---:|---:|---:|")
    for r in df.itertuples():
        print(f"| {r.run} | {r.measured_s:.2f} | {r.predicted_s:.2f} | {100 * r.error:+.1f}% | {100 * r.mfu:.1f}% |")
    print(f"\nmean absolute error {100 * mae:.2f}%, largest {100 * worst:.2f}% (goal: <= 3.5% and <= 8.5%; Calculon "
          "3.65% and 8.87%); source: Korthikanti et al. 2022 (arXiv 2205.05198) Table 5")
    if pr:
        print(f"refit: {pr}")
    print("\nThis project's P = 2 CPU pipeline probe: measured step [95% CI] against the simulation of the "
          "schedule's order with its measured stage times and send; the difference is the schedule's cost.\n")
    print("| schedule | M | measured ms [CI] | predicted ms | within CI | schedule cost ms |\n|---|---:|---:|---:|---|---:|")
    for r in probe.itertuples():
        print(f"| {r.schedule} | {r.M} | {1e3 * r.measured_s:.2f} [{1e3 * r.ci_low_s:.2f}, {1e3 * r.ci_high_s:.2f}] | "
              f"{1e3 * r.predicted_s:.2f} | {'yes' if r.within_ci else 'no'} | {1e3 * r.schedule_cost_s:.2f} |")
    return EXIT_OK
