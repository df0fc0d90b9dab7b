"""The results schema, written down once, and the one chain that lifts an older run to it (asv's
update_to_N): readers refuse a version they do not know, call the upgrade of their file once,
and hand the current schema to everything after them. `bench upgrade RUN_DIR` rewrites a run."""

from __future__ import annotations

# 2: gpt columns seq_len, heads, vocab; 3: per-process statistics, rounds.csv; 4: role; 5: pipeline
# framework; 6: a pipeline row's nodes, ranks per node and sends between nodes
SCHEMA_VERSION = 6
READABLE_VERSIONS = (
    3,
    4,
    5,
    6,
    # a schema-3 run reads as schema 4 with the roles of that harness (LEGACY_ROLES); 5 added the
    # pipeline framework
)
# The roles every schema-3 harness gave (its registry's, frozen here): an old run reports the same
# whatever today's registry says. Rows with steps_per_call > 1 and no other role were fused.
LEGACY_ROLES = {"c.ref": "floor", "null.noop": "control"}
ADDED_IN = {
    "role": 4,
    "pct_machine_peak": 4,
    "framework": 5,
    "nodes": 6,
    "ranks_per_node": 6,
    "cross_node_sends": 6,
}  # result columns and the version that added them

# results.csv: one row per case (implementation x size). Each round of a case runs in its own
# worker process; median_s, its CI and the noisy flag come from the per-process medians
# (bench/stats.py), the pooled columns describe all samples together.
RESULT_COLUMNS: dict[str, str] = {
    "schema_version": "version of this column list",
    "run_id": "run directory name",
    "model": "mlp or gpt",
    "impl": "registry name, e.g. torch.eager",
    "framework": "the worker that ran it: numpy, torch, jax, c, null",
    "mode": "loop (numpy), eager, compile, fullgraph, cudagraphs, scan (torch), eager, jit, scan "
    "(jax), ref, step (c), noop (null)",
    "role": "floor (the bare reference every overhead is measured against: c.ref), control (the "
    "harness's own cost: null.noop), fused (K steps per call), or empty; recorded when "
    "the run is made",
    "device": "cpu or cuda: where the implementation ran (NumPy, C and the control stay on the "
    "CPU)",
    "size": "size label, e.g. B64-H256-L2",
    "sweep": "width, depth or custom: which sweep the size belongs to",
    "batch": "B",
    "width": "H (mlp) or n_embd (gpt)",
    "depth": "L hidden layers (mlp) or n_layer (gpt)",
    "d_in": "D input features (mlp only)",
    "classes": "C classes (mlp only)",
    "seq_len": "T context length (gpt only)",
    "heads": "n_head (gpt only)",
    "vocab": "vocabulary size (gpt only)",
    "flops_per_step": "matrix-product FLOPs of one training step (flops_per_step in "
    "models/<model>/model.py)",
    "other_flops_per_step": "FLOPs outside the matrix products (elementwise layers, softmax, "
    "loss, optimizer): an estimate, other_flops_per_step in model.py",
    "bytes_per_step": "bytes one step moves (parameters, gradients, optimizer state, "
    "activations): an estimate, bytes_per_step in model.py",
    "params": "number of parameters",
    "threads": "threads every framework was given (--threads)",
    "threads_used": "threads the worker reported using: torch.get_num_threads, OpenBLAS's count "
    "(numpy, c), CPUs in the affinity mask (jax, null)",
    "status": "ok, mismatch, diverged, error, crashed, timeout, unavailable, interrupted",
    "error": "why the status is not ok (one line), else empty",
    "noisy": "True when the 95% CI of median_s is wider than +-5% (or unknown: one process), or "
    "round_iqr_rel > 25%",
    "noisy_reason": "which of those rules the row broke",
    "n_samples": "timed calls, all rounds together",
    "rounds": "rounds that produced samples; each round is one worker process, the unit of "
    "replication",
    "steps_per_call": "training steps per timed call: K for the fused rows (jax.scan, torch.scan, "
    "c.ref), else 1",
    "median_s": "seconds per training step (per call / steps_per_call): geometric mean of the "
    "per-process medians",
    "ci_low_s": "95% CI of median_s, low: exp(mean - t sd / sqrt(R)) of the log per-process "
    "medians; empty with one process",
    "ci_high_s": "95% CI of median_s, high: exp(mean + t sd / sqrt(R)) of the log per-process "
    "medians",
    "pooled_median_s": "median of all samples of all processes together (descriptive), seconds "
    "per step",
    "iqr_s": "interquartile range of all samples pooled (descriptive), seconds per step",
    "min_s": "fastest sample, seconds per step",
    "mean_s": "mean of all samples pooled, seconds per step",
    "cv": "standard deviation / mean of all samples pooled (describes the tail, not the median's "
    "precision)",
    "median_call_s": "median_s x steps_per_call: seconds per timed call",
    "round_sd": "standard deviation of the log per-process medians: drift between processes (0.05 "
    "= about 5%)",
    "round_iqr_rel": "median over processes of the within-process IQR / median",
    "ops_per_step": "layer ops of one step, the model's one definition shared by every row "
    "(ops_per_step in model.py); µs/op divides by it",
    "framework_ops_per_step": "ops of one step as the implementation counts them (framework_op): "
    "descriptive, not comparable across rows",
    "framework_op": "what framework_ops_per_step counts: ATen ops (torch), jaxpr equations (jax), "
    "NumPy calls (numpy mlp), layer-function calls (numpy gpt), C layer-function "
    "calls (c), none (null)",
    "graphs": "compiled torch rows: graphs Dynamo makes of one step (torch._dynamo.explain); "
    "empty for the others",
    "graph_breaks": "compiled torch rows: graph breaks in one step (reasons in run.json "
    "case_info); 0 for torch.fullgraph",
    "gflops": "achieved GFLOP/s: flops_per_step / median_s",
    "pct_peak": "gflops as % of this framework's measured float32 matmul peak (run.json peaks)",
    "pct_machine_peak": "gflops as % of the machine's peak: the fastest float32 matmul any "
    "framework measured on this device in this run (run.json peaks)",
    "first_call_s": "first call on a fresh build in the first process: tracing, compilation, lazy "
    "loads (not in median_s)",
    "first_call_later_s": "median first call of the later processes (persistent compile caches "
    "warm); each in rounds.csv",
    "loss_rel_err": "equivalence gate: max relative loss error vs the float64 reference",
    "update_rel_err": "equivalence gate: max relative error of the parameter updates",
    "peak_rss_mb": "peak resident memory of the worker process so far, MiB",
}

SIZE_COLUMNS = (
    "batch",
    "width",
    "depth",
    "d_in",
    "classes",
    "seq_len",
    "heads",
    "vocab",
)  # each model
# fills its own (models/<model>/__init__.py SPEC.size_columns); the schema pads the others with
# empty


def result_columns(size_columns: tuple[str, ...] = ()) -> dict[str, str]:
    """results.csv's columns for runs whose models fill these size columns: the schema's, with a
    model's size columns the schema does not name yet after the others."""
    new = [c for c in size_columns if c not in RESULT_COLUMNS]
    if not new:
        return RESULT_COLUMNS
    cols = list(RESULT_COLUMNS.items())
    at = [c for c, _ in cols].index(SIZE_COLUMNS[-1]) + 1
    return dict(
        cols[:at]
        + [(c, "a size column of its model (models/<model>/model.py describe)") for c in new]
        + cols[at:]
    )


# samples.csv: every raw timed call, long format.
SAMPLE_COLUMNS: dict[str, str] = {
    "schema_version": "version of this column list",
    "impl": "registry name",
    "size": "size label",
    "round": "round index, from 0",
    "i": "sample index within the round",
    "call_ns": "perf_counter_ns duration of one call (steps_per_call steps)",
    "steps_per_call": "training steps in that call",
}

# rounds.csv: one row per (case, round): each round is one worker process.
ROUND_COLUMNS: dict[str, str] = {
    "schema_version": "version of this column list",
    "impl": "registry name",
    "size": "size label",
    "round": "round index, from 0",
    "pid": "the worker process that ran this round",
    "first_call_s": "first call of the step built in this process (compilation, with the "
    "persistent caches)",
    "n_samples": "timed calls in this round",
    "median_s": "median seconds per training step in this process: the unit of every CI and test",
    "iqr_rel": "IQR / median of this process's samples",
    "steps_per_call": "training steps per timed call",
}

# pipeline.csv (bench pipeline): one row per (schedule, microbatches).
PIPELINE_COLUMNS: dict[str, str] = {
    "schema_version": "version of this column list",
    "run_id": "run directory name",
    "model": "mlp or gpt",
    "framework": "torch (torch.distributed), jax (shard_map over P host devices of one process), "
    "jax-dist (the same, one process per stage over jax.distributed), c (C + BLAS "
    "stages, schedule in C, MPI)",
    "schedule": "gpipe, 1f1b, interleaved-1f1b, zb, zbv, dualpipev "
    "(torch.distributed.pipelining); hand-gpipe, hand-1f1b (ours over send/recv); "
    "one-process, one-process-accum (no pipeline)",
    "stages": "P: ranks in the pipeline (processes; JAX's shard_map form: devices of one process)",
    "virtual_stages": "stages per rank (2 for the interleaved and V-shaped schedules)",
    "nodes": "machines the ranks ran on (--nnodes); node k holds ranks k x ranks_per_node onwards",
    "ranks_per_node": "ranks (processes) on each machine",
    "cross_node_sends": "activation and gradient sends per step whose two stages sit on different "
    "machines (2 x M per stage boundary that crosses one)",
    "microbatches": "M",
    "batch": "B: examples per step, split into M microbatches",
    "status": "ok, mismatch (gradients off the reference), error, crashed, timeout, unavailable "
    "(its framework, compiler or MPI is missing: the reason in error); pending (not "
    "measured yet) or interrupted (the probe was stopped first)",
    "error": "why the status is not ok (one line), else empty",
    "rounds": "process groups (rounds) that produced samples: the unit of replication",
    "step_s": "seconds per training step: geometric mean of the per-round medians",
    "ci_low_s": "95% CI of step_s, low (t-interval on the log round medians)",
    "ci_high_s": "95% CI of step_s, high",
    "stage_f_s": "forward of the slowest stage alone on one microbatch, seconds",
    "stage_b_s": "backward of the slowest stage alone on one microbatch, seconds",
    "compute_s": "compute of the busiest rank in one step: M x its stages' forward and backward, "
    "seconds",
    "comm_s": "one-way send of one microbatch's activation between two ranks: half the fastest of "
    "10 ping-pongs, seconds",
    "ideal_s": "the schedule's own action order simulated with the measured stage and send times, "
    "seconds",
    "theory_bubble": "the schedule's idle share in theory (bench/schedules.py: (P-1)/(M+P-1) for "
    "GPipe/1F1B, ...)",
    "measured_bubble": "1 - compute_s / step_s: the busiest rank's idle share, measured",
    "residual_s": "step_s - ideal_s: what running the schedule costs beyond compute, sends and "
    "its bubble",
    "grad_rel_err": "gate: largest relative gradient error of any tensor after one step, vs the "
    "float64 reference",
}

# pipeline_samples.csv: every timed pipeline step.
PIPELINE_SAMPLE_COLUMNS: dict[str, str] = {
    "schema_version": "version of this column list",
    "framework": "torch, jax, jax-dist or c",
    "schedule": "schedule name",
    "microbatches": "M",
    "round": "round (a fresh process group), from 0",
    "i": "step index within the round",
    "step_ns": "one training step on rank 0, from a barrier before it to a barrier after it (JAX: "
    "from its call until its parameters are ready), ns",
}

STATUSES: dict[str, str] = {
    "ok": "equivalent to the reference and timed",
    "mismatch": "failed the equivalence gate; never timed",
    "diverged": "produced a non-finite loss",
    "error": "raised an exception (message in error)",
    "crashed": "the worker process died (tail of its stderr in error)",
    "timeout": "exceeded --case-timeout; the worker was killed and replaced",
    "unavailable": "its framework is not installed or fails to import",
    "interrupted": "the run was stopped before this case finished",
}
# Columns that hold text (every other column of the three tables is numeric, or the bool `noisy`).
TEXT_COLUMNS = (
    "run_id",
    "model",
    "impl",
    "framework",
    "mode",
    "role",
    "device",
    "size",
    "sweep",
    "status",
    "error",
    "noisy_reason",
    "framework_op",
    "schedule",
)
FAILED_STATUSES = ("mismatch", "diverged", "error", "crashed", "timeout")


class SchemaError(ValueError):
    """A file written by an unknown schema version or not a run at all."""


def check_version(found: object, what: str) -> None:
    if found in READABLE_VERSIONS:
        return
    if isinstance(found, int) and found > SCHEMA_VERSION:
        raise SchemaError(
            f"{what} has schema version {found}, from a newer harness; this one reads "
            f"{SCHEMA_VERSION}"
        )
    raise SchemaError(
        f"{what} has schema version {found!r}; this harness reads "
        f"{', '.join(map(str, READABLE_VERSIONS))}"
    )


def markdown_table(columns: dict[str, str]) -> str:
    """The README's table of a file's columns, generated from the dict above."""
    return "\n".join(
        ["| column | meaning |", "|---|---|"] + [f"| `{c}` | {m} |" for c, m in columns.items()]
    )


if __name__ == "__main__":  # python -m bench.schema: the README's tables
    for name, cols in (
        ("results.csv", RESULT_COLUMNS),
        ("samples.csv.gz", SAMPLE_COLUMNS),
        ("rounds.csv", ROUND_COLUMNS),
        ("pipeline.csv", PIPELINE_COLUMNS),
        ("pipeline_samples.csv", PIPELINE_SAMPLE_COLUMNS),
    ):
        print(f"`{name}` columns:\n\n{markdown_table(cols)}\n")


# The upgrade chain. Each function takes a file of any readable version, as read, and returns it in
# the current schema; the version steps are the comments.


def table_version(df) -> int:
    """The oldest schema version among a table's rows (the current one for an empty table)."""
    if "schema_version" not in df.columns or not len(df):
        return SCHEMA_VERSION
    return min(int(v) for v in df["schema_version"].unique())


def required_columns(columns: dict[str, str], versions: set) -> list[str]:
    """The columns a table whose rows have these versions must have: the schema's, less those a
    later version added."""
    older = {
        c
        for c, v in ADDED_IN.items()
        if versions and all(isinstance(x, int) and x < v for x in versions)
    }
    return [c for c in columns if c not in older]


def _current(df, columns: dict[str, str]):
    df["schema_version"] = SCHEMA_VERSION
    return df[[c for c in columns if c in df.columns] + [c for c in df.columns if c not in columns]]


def upgrade_results(df, columns: dict[str, str] = RESULT_COLUMNS):
    """results.csv. 3 -> 4: each row's role as that harness gave it (LEGACY_ROLES; fused where a
    call held several steps), not today's registry's; no machine peak was measured."""
    if table_version(df) < 4:
        if "role" not in df.columns:
            fused = df["steps_per_call"].fillna(1) > 1
            df["role"] = [
                LEGACY_ROLES.get(i, "fused" if f else "")
                for i, f in zip(df["impl"], fused, strict=True)
            ]
        if "pct_machine_peak" not in df.columns:
            df["pct_machine_peak"] = float("nan")
    df["role"] = df["role"].fillna("")
    return _current(df, columns)


def upgrade_rounds(df):
    """rounds.csv: unchanged since it came, in 3."""
    return _current(df, ROUND_COLUMNS)


def upgrade_samples(df):
    """samples.csv(.gz): unchanged since 3."""
    return _current(df, SAMPLE_COLUMNS)


def upgrade_pipeline(df, nnodes: int = 1):
    """pipeline.csv (nnodes: its run.json's). 3, 4 -> 5: the probe ran torch only, so every row
    is torch's. 5 -> 6: the node columns (the sends between nodes unknown for several)."""
    version = table_version(df)
    if version < 5 and "framework" not in df.columns:
        df["framework"] = "torch"
    if version < 6 and "nodes" not in df.columns:
        df["nodes"], df["ranks_per_node"] = nnodes, df["stages"] // nnodes
        df["cross_node_sends"] = 0 if nnodes == 1 else float("nan")
    return _current(df, PIPELINE_COLUMNS)


def upgrade_pipeline_samples(df):
    """pipeline_samples.csv. 3, 4 -> 5: torch's, as pipeline.csv."""
    if table_version(df) < 5 and "framework" not in df.columns:
        df["framework"] = "torch"
    return _current(df, PIPELINE_SAMPLE_COLUMNS)


def upgrade_pipeline_result(d: dict) -> dict:
    """One line of pipeline_results.jsonl. Before 5: torch's (the line names no framework)."""
    return {"framework": "torch", **d}


def upgrade_meta(raw: dict) -> dict:
    """run.json (its schema_version stays the one it was written with). A sweep's and an import's
    named no kind (a probe's did); before 5 a probe's settings named no frameworks: it ran torch
    only."""
    if "kind" not in raw:
        argv = raw.get("argv") or [""]
        raw["kind"] = "import" if argv[0] == "import-pytest" else "sweep"
    if raw["kind"] == "pipeline" and isinstance(raw.get("settings"), dict):
        raw["settings"].setdefault("frameworks", ["torch"])
    return raw
