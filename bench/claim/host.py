"""What the host costs, from this project's own committed runs: the framework's CPU time per op
and its schedule's cost per pipeline action, scaled to the target host.

- Per kernel: the framework's cost per layer op (analysis.csv us_per_op of the committed MLP
  sweep) less the bare C floor's (c.ref), on this project's machine. Assumption: one layer op
  launches about one GPU kernel.
- Per pipeline action (one microbatch's forward or backward on one stage): the residual of the
  framework's 1F1B schedule against its simulated ideal (pipeline.csv residual_s of the committed
  GPT probe), over the 2 M actions of a rank, median over M. Assumption: that residual is host time.
- Host speed: xeon 1.0 (this project's AMD EPYC counts as a Xeon-class host), grace 2.7 (host CPU
  time per Linear forward: 13.5 µs on an H100's Xeon, 37 µs on GB200's Grace; NVIDIA
  TransformerEngine issue 2053).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import pandas as pd

from bench import frameworks, reference
from bench.results import read_pipeline

ROOT = reference.ROOT
SWEEP_RUN = reference.runs()["mlp"]  # the MLP default sweep (results/reference.toml)
PIPELINE_RUN = reference.runs()["pipeline_gpt"]  # the GPT pipeline probe
FLOOR = "c.ref"
HOST_FACTOR = {"xeon": 1.0, "grace": 2.7}


@dataclass(frozen=True)
class HostCost:
    us_per_kernel: float  # on the target host
    us_per_action: float  # the schedule's residual per pipeline action, on the target host
    factor: float
    source: str


@cache  # the sweep asks at every grid point: read each committed file once
def per_op_us(framework: str, run: str = SWEEP_RUN) -> float:
    """us_per_op of an implementation less the floor's, from a committed sweep's analysis.csv."""
    df = pd.read_csv(ROOT / run / "analysis.csv").set_index("impl")
    if framework not in df.index:
        raise ValueError(
            f"[software] framework: {framework!r} has no row in {run}/analysis.csv "
            f"(known: {', '.join(df.index)})"
        )
    return max(0.0, float(df.loc[framework, "us_per_op"]) - float(df.loc[FLOOR, "us_per_op"]))


@cache
def schedule_us_per_action(framework: str, run: str = PIPELINE_RUN) -> float:
    """The framework's 1F1B residual per action, median over M (0 without a probe of its own)."""
    fw = framework.split(".")[0]  # its schedule in the probe, by its record (bench/frameworks.py)
    name = frameworks.known()[fw].schedule_cost if fw in frameworks.known() else ""
    if not name:
        return 0.0
    df = read_pipeline(ROOT / run)
    rows = df[(df["schedule"] == name) & (df["status"] == "ok") & (df["framework"] == fw)]
    per = (rows["residual_s"] / (2 * rows["microbatches"])).clip(lower=0) * 1e6
    return float(per.median()) if len(per) else 0.0


NONE = HostCost(0.0, 0.0, 1.0, "no host cost")


def host_cost(framework: str, host: str, host_factor: float = 0.0) -> HostCost:
    factor = host_factor or HOST_FACTOR[host]
    op, action = per_op_us(framework), schedule_us_per_action(framework)
    src = (
        f"{framework} {op:.3g} µs per op over {FLOOR} ({SWEEP_RUN}/analysis.csv), schedule "
        "residual "
        f"{action:.3g} µs per action ({PIPELINE_RUN}/pipeline.csv), x {factor:g} for a {host} host"
    )
    return HostCost(op * factor, action * factor, factor, src)
