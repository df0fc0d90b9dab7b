"""What torch.scan's first call costs in a fresh worker process, with torchinductor's persistent
caches as a run has them, and with the scan operator marked cacheable
(`torch._inductor.config.unsafe_marked_cacheable_functions`), which torch 2.13 does not do: its FX
graph and AOTAutograd caches bypass a graph that holds a higher-order operator unless it is marked.

For each setting, two fresh processes one after the other on one new cache directory (the second
finds what the first left), each building torch.scan at every size through the harness's own
build (bench/sweep/prepare.build: threads, K and the first call as a run has them). Prints each
process's first call per size and its cache hits, misses and bypasses.

    python studies/scan_cache.py MODEL [SIZES]     # MODEL: mlp or gpt; SIZES: a preset or custom sizes
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

SETTINGS = ("as torch ships it", "scan marked cacheable")
MARKED = (
    "torch.ops.higher_order.scan"  # the scan operator, as HigherOrderOperator.cacheable() names it
)


def child(model: str, sizes_text: str, mark: bool) -> None:
    """One worker-like process: build torch.scan at each size, print one JSON line per size."""
    from bench import frameworks
    from bench.sizes import parse_sizes
    from bench.sweep import prepare
    from models.registry import get

    impl = get(model, "torch.scan")
    frameworks.setup(impl.framework, 1, "cpu", False)
    import torch
    from torch._dynamo.utils import counters

    if mark:
        import torch._inductor.config as inductor_config

        # the version: part of the key
        inductor_config.unsafe_marked_cacheable_functions = {MARKED: torch.__version__}
    for size in parse_sizes(sizes_text, model):
        counters.clear()
        built = prepare.build(impl, size.config(), size.steps_per_call(), "cpu")
        ind, aot = dict(counters["inductor"]), dict(counters["aot_autograd"])
        print(
            json.dumps(
                {
                    "size": size.label,
                    "k": size.steps_per_call(),
                    "first_call_s": built.first_call_s,
                    "fx": [ind.get(f"fxgraph_cache_{w}", 0) for w in ("hit", "miss", "bypass")],
                    "aot": [aot.get(f"autograd_cache_{w}", 0) for w in ("hit", "miss", "bypass")],
                }
            ),
            flush=True,
        )


def rows(out: str) -> list[dict]:
    """The JSON lines of a child's stdout (anything else it printed is left out)."""
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def table(results: dict[tuple[str, int], list[dict]]) -> str:
    """Markdown: one line per setting, process and size."""
    lines = [
        "| setting | process | size | K | first call s | FX graph cache hit/miss/bypass | AOTAutograd cache hit/miss/bypass |",
        "|---|---|---|---|---|---|---|",
    ]
    for (setting, proc), got in results.items():
        for r in got:
            lines.append(
                f"| {setting} | {proc} | {r['size']} | {r['k']} | {r['first_call_s']:.2f} | "
                f"{'/'.join(map(str, r['fx']))} | {'/'.join(map(str, r['aot']))} |"
            )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        child(argv[1], argv[2], argv[3] == "mark")
        return 0
    from bench.sizes import parse_sizes

    if len(argv) not in (1, 2) or argv[0] not in ("mlp", "gpt"):
        print(
            "usage: python studies/scan_cache.py MODEL [SIZES]   (MODEL: mlp or gpt)",
            file=sys.stderr,
        )
        return 2
    sizes_text = argv[1] if len(argv) == 2 else "default"
    try:
        parse_sizes(sizes_text, argv[0])
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results: dict[tuple[str, int], list[dict]] = {}
    for setting, mark in zip(SETTINGS, ("plain", "mark"), strict=True):
        with tempfile.TemporaryDirectory(prefix="scan_cache_") as cache:
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
            for proc in (1, 2):
                done = subprocess.run(
                    [sys.executable, __file__, "--child", argv[0], sizes_text, mark],
                    env=env,
                    capture_output=True,
                    text=True,
                )
                if done.returncode != 0:
                    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
                    print(f"error: the {setting} process {proc} failed: {tail}", file=sys.stderr)
                    return 1
                results[(setting, proc)] = rows(done.stdout)
    print(table(results))
    for setting in SETTINGS:
        a, b = (sum(r["first_call_s"] for r in results[(setting, p)]) for p in (1, 2))
        print(
            f"\n{setting}: first calls {a:.1f} s in the first process, {b:.1f} s in the second",
            end="",
        )
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
