"""A pipeline probe's settings: what it runs (cases), and the checks that refuse what cannot run."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench import frameworks
from bench.options import DEFAULT_MODEL
from bench.schedules import SCHEDULES
from models.registry import model_module, pipeline_hooks

FRAMEWORKS: dict[str, tuple[str, ...]] = {  # --framework value -> the schedules it runs
    name: form.schedules for name, form in frameworks.pipeline_forms().items()
}


@dataclass
class PipelineSettings:
    model: str
    config: dict
    stages: int
    microbatches: list[int]
    schedules: list[str]
    rounds: int
    steps: int  # timed steps per case and round
    device: str = "cpu"
    timeout_s: float = 60.0  # gloo's own timeout; a case gets twice that before its group is killed
    grad_rtol: float = (
        1e-2  # the gate: the model's UPDATE_RTOL (an SGD update is lr x the gradient)
    )
    notes: list[str] = field(default_factory=list)
    # --framework values (an old probe's: schema.upgrade_meta)
    frameworks: list[str] = field(default_factory=list)
    max_rounds: int = (
        0  # extra rounds up to this many for a case whose base rounds leave its CI wide (0: none)
    )
    nnodes: int = (
        1  # machines; node 0 records, the others serve its process groups (bench/pipeline/nodes.py)
    )
    node_rank: int = 0
    rdzv_endpoint: str = ""  # node 0's HOST:PORT when nnodes > 1 (bench/pipeline/nodes.py)


def cases(s: PipelineSettings) -> list[tuple[str, str, int]]:
    """(framework, schedule, M): per framework its schedules that were asked for, one-process once
    (M does not apply), the others at every M they take."""
    out, batch = [], s.config["batch"]
    for fw in s.frameworks:
        for name in (n for n in FRAMEWORKS[fw] if n in s.schedules):
            fewest = SCHEDULES[name].fewest_microbatches(s.stages)
            ms = (
                [1]
                if name == "one-process"
                else [m for m in s.microbatches if m >= fewest and batch % m == 0]
            )
            out += [(fw, name, m) for m in ms]
    return out


@dataclass(frozen=True)
class ProbeOptions:
    """`bench pipeline`'s options as given (bench/commands/pipeline.py)."""

    model: str = DEFAULT_MODEL
    batch: int | None = None  # None: the model's probe config
    stages: int = 2
    microbatches: str | None = None  # comma-separated; None: 2,4,8,16, skipping what cannot run
    schedules: str = "all"
    rounds: int = 8
    steps: int = 10
    device: str = "cpu"
    timeout_s: float = 60.0
    frameworks: str = "all"
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str = ""
    max_rounds: int = 0


def validate(
    opts: ProbeOptions, config: dict, ms: list[int], names: list[str], cores: int, gpus: int = 0
) -> list[str]:
    """ValueError (one line) for settings that cannot run; else notes worth recording. A schedule
    skips the M values it cannot take unless both it and the M values were named explicitly."""
    model, P, device = opts.model, opts.stages, opts.device
    explicit_ms, explicit_names = opts.microbatches is not None, opts.schedules != "all"
    notes = [f"--stages {P} exceeds the {cores} cores: ranks share CPUs"] if P > cores else []
    if P < 1:
        raise ValueError(f"--stages {P}: need at least 1")
    unknown = [n for n in names if n not in SCHEDULES]
    if unknown:
        raise ValueError(f"unknown schedule {', '.join(unknown)}; allowed: {', '.join(SCHEDULES)}")
    cfg = model_module(model).Config(**config)
    units = pipeline_hooks(model).n_units(cfg)
    for n in names:
        need = SCHEDULES[n].n_stages(P)
        if need > units:
            raise ValueError(
                f"{n} needs {need} stages for --stages {P}; the {model} has {units} to split"
            )
        fewest = SCHEDULES[n].fewest_microbatches(P)
        low = [m for m in ms if m < fewest]
        if low and explicit_ms and explicit_names:
            raise ValueError(
                f"{n} needs at least {fewest} microbatches with --stages {P}: --microbatches "
                f"{low[0]}"
            )
        if low:
            notes.append(
                f"{n} needs at least {fewest} microbatches with {P} stages: M = "
                f"{', '.join(map(str, low))} not run"
            )
    bad = [m for m in ms if m < 1 or cfg.batch % m]
    if bad and (explicit_ms or len(bad) == len(ms)):
        raise ValueError(f"--microbatches {bad[0]}: must divide the batch {cfg.batch}")
    if bad:
        notes.append(
            f"M = {', '.join(map(str, bad))} does not divide the batch {cfg.batch}: not run"
        )
    if device == "cuda" and gpus < max(P, 2):
        raise ValueError(
            f"--device cuda needs one GPU per stage and this machine has {gpus}: a single GPU "
            "is not a pipeline (NCCL runs where torch sees at least --stages GPUs, at least 2)"
        )
    return notes


def gpu_count() -> int:
    """GPUs torch sees (asked in a subprocess: this process never imports torch)."""
    from bench.supervisor import python_query

    code, out = python_query("import torch; print(torch.cuda.device_count())", 300)
    return int(out.strip() or 0) if code == 0 else 0


def parse_frameworks(text: str, device: str, nnodes: int) -> list[str]:
    """--framework: `all` (every form that can run on this device and node count: on CPU every
    one; on CUDA or across nodes those whose record says so) or a comma-separated list of
    FRAMEWORKS; ValueError for anything else."""
    forms = frameworks.pipeline_forms()
    fit = [n for n, f in forms.items() if (device == "cpu" or f.gpu) and (nnodes == 1 or f.nodes)]
    if text == "all":
        return fit
    names = [n.strip() for n in text.split(",")]
    unknown = [n for n in names if n not in FRAMEWORKS]
    if unknown:
        raise ValueError(
            f"unknown framework {', '.join(unknown)}; allowed: {', '.join(FRAMEWORKS)}, all"
        )
    if any(n not in fit for n in names):
        where = "--device cuda" if device != "cpu" else "--nnodes > 1"
        raise ValueError(
            f"with {where} the probe drives {', '.join(fit)} only (the others run on "
            "the CPU, on one node)"
        )
    return names


def new_settings(opts: ProbeOptions, cores: int) -> PipelineSettings:
    """The settings of a new probe from the command's options; ValueError naming the problem."""
    from models.registry import MODELS

    model, batch, stages, device, nnodes = (
        opts.model,
        opts.batch,
        opts.stages,
        opts.device,
        opts.nnodes,
    )
    microbatches, schedules = opts.microbatches, opts.schedules

    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; allowed: {', '.join(MODELS)}")
    config = dict(pipeline_hooks(model).CONFIG, **({"batch": batch} if batch else {}))
    fws = parse_frameworks(opts.frameworks, device, nnodes)
    offered = [n for n in SCHEDULES if any(n in FRAMEWORKS[f] for f in fws)]
    names = offered if schedules == "all" else [n.strip() for n in schedules.split(",")]
    if nnodes > 1:  # a one-process baseline is one node's: run it with a one-node probe
        names = [n for n in names if SCHEDULES.get(n) is None or SCHEDULES[n].kind != "single"]
    try:
        ms = [int(m) for m in (microbatches or "2,4,8,16").split(",")]
    except ValueError:
        raise ValueError(f"--microbatches takes whole numbers, got {microbatches!r}") from None
    gpus = gpu_count() if device == "cuda" else 0
    notes = validate(opts, config, ms, names, cores if nnodes == 1 else stages, gpus)
    s = PipelineSettings(
        model,
        config,
        stages,
        ms,
        names,
        opts.rounds,
        opts.steps,
        device,
        timeout_s=opts.timeout_s,
        grad_rtol=model_module(model).UPDATE_RTOL,
        notes=notes,
        frameworks=fws,
        nnodes=nnodes,
        node_rank=opts.node_rank,
        rdzv_endpoint=opts.rdzv_endpoint,
        max_rounds=opts.max_rounds,
    )
    if not cases(s):
        runs = "; ".join(f"{f} runs {', '.join(FRAMEWORKS[f])}" for f in fws)
        raise ValueError(
            f"no case to run: --schedules {schedules} with --framework {opts.frameworks} ({runs})"
        )
    return s
