"""`bench pipeline`: the pipeline-parallel probe: torch.distributed, JAX and C over MPI.

Each round starts fresh processes (bench/pipeline/group.py) for each framework and runs every case
(framework x schedule x microbatches) in them; a round is the unit of replication. The pipelines
run P processes of one thread (JAX's shard_map form: one process of P one-thread devices); the
one-process baselines run one process of P threads on the same P CPUs. A rank that crashes or
hangs fails its case with the reason: the whole group is killed and a new group runs the
remaining cases. Every finished (case, round) is on disk at once: its raw result appended to
pipeline_results.jsonl, its steps to pipeline_samples.csv, and pipeline.csv rewritten; a stopped
probe is finished by `bench pipeline --resume DIR`.
"""

from __future__ import annotations

import json
import tempfile
import threading
import uuid
from dataclasses import asdict
from itertools import groupby

import numpy as np

from bench import campaign, frameworks, protocol
from bench.pipeline.group import Group
from bench.pipeline.nodes import NodeLost, group_endpoint
from bench.pipeline.rows import row
from bench.pipeline.settings import PipelineSettings, cases
from bench.results import append_csv, append_line
from bench.runmeta import RunMeta
from bench.schedules import SCHEDULES
from bench.schema import (
    PIPELINE_COLUMNS,
    PIPELINE_SAMPLE_COLUMNS,
    SCHEMA_VERSION,
    upgrade_pipeline_result,
)
from bench.stats import rounds_for

FAILING = (
    "timeout",
    "crashed",
    "error",
    "unavailable",
)  # a case that ends so is not run again in later rounds
# extra rounds aim a case's 95% CI half-width here (10% is the goal; Stein's interval is wider)
TARGET_CI = 0.08


def key(res: dict) -> tuple[str, str, int]:
    return res["framework"], res["schedule"], res["microbatches"]


def extra_rounds(s: PipelineSettings, results: list[dict]) -> dict[str, int]:
    """Rounds in all for each case whose base rounds leave its CI wider than TARGET_CI, decided
    once from them (Stein's two-stage rule, bench/stats.rounds_for; the CI then uses the base
    rounds' sd): {"framework|schedule|M": rounds}, within --max-rounds."""
    out = {}
    for c in cases(s):
        ok = sorted(
            (r for r in results if key(r) == c and r["status"] == "ok"), key=lambda r: r["round"]
        )
        n = rounds_for([float(np.median(r["step_ns"])) for r in ok], TARGET_CI, s.max_rounds)
        if n > s.rounds:
            out["|".join(map(str, c))] = n
    return out


def group_specs(
    s: PipelineSettings,
    fw: str,
    single: bool,
    todo: list[tuple[str, str, int]],
    rnd: int,
    addresses: dict[int, str] | None = None,
) -> list[protocol.RankSpec]:
    """The processes of one group, of every node: a pipeline's P ranks (JAX's shard_map form: one
    process for all; C: one mpiexec per node), or a baseline's one process of P threads. One node
    meets at a file store or a loopback port; several at a port of node 0's address (addresses:
    node -> its address, bench/pipeline/nodes.py)."""
    P, nnodes = s.stages, s.nnodes if not single else 1
    run = tuple(protocol.PipeCase(name, m, rnd, rnd == 0, s.steps) for _, name, m in todo)
    addresses = addresses or {0: "127.0.0.1"}
    per = P // nnodes

    def spec(rank: int, world: int, init: str, form: str, threads: int = 1) -> protocol.RankSpec:
        return protocol.RankSpec(
            rank,
            world,
            s.model,
            s.config,
            s.device,
            s.timeout_s,
            init,
            run,
            threads,
            form,
            nnodes=nnodes,
            bind=addresses[rank // per],
        )

    # no socket: loopback only
    store = f"file://{tempfile.gettempdir()}/bench-pipeline-store-{uuid.uuid4().hex}"
    form = frameworks.pipeline_forms()[fw]
    meet = group_endpoint(addresses[0]) if nnodes > 1 else ""
    if single:
        return [spec(0, 1, store, form.single, P)]
    if form.launch == "store":
        return [spec(r, P, f"tcp://{meet}" if meet else store, fw) for r in range(P)]
    if form.launch == "coordinator":
        coordinator = meet or group_endpoint("127.0.0.1")
        return [spec(r, P, coordinator, fw) for r in range(P)]
    threads = P if form.stage_threads else 1
    return [spec(k * per, P, meet, fw, threads) for k in range(nnodes)]


class Probe:
    """The rounds of one probe directory, new or resumed; `stop` (set by SIGINT) ends it cleanly."""

    def __init__(
        self, s: PipelineSettings, run_dir, argv: list[str], meta: RunMeta | None = None
    ) -> None:
        self.s, self.path, self.stop = s, run_dir.path, threading.Event()
        self.results: list[dict] = []  # protocol.PipeResult dicts, every finished (case, round)
        if meta is None:
            meta = RunMeta.new(self.path.name, "pipeline", asdict(s), argv)
            append_csv(self.path / "pipeline_samples.csv", [tuple(PIPELINE_SAMPLE_COLUMNS)])
        else:
            meta.resume(argv)
            self.results = [
                upgrade_pipeline_result(json.loads(line))
                for line in (self.path / "pipeline_results.jsonl").read_text().splitlines()
            ]
        self.meta, self.run_dir = meta, run_dir
        self.roster = None  # across nodes: bench/pipeline/nodes.Roster, set by the command
        self.lost = ""  # why the probe stopped when a node went away
        (self.path / "logs").mkdir(exist_ok=True)

    @classmethod
    def resume(cls, run_dir, argv: list[str]) -> Probe:
        """SchemaError when the directory is not an unfinished probe."""
        meta = run_dir.resumable("pipeline", "pipeline_results.jsonl")
        return cls(PipelineSettings(**meta.settings), run_dir, argv, meta)

    def done(self) -> set[tuple[str, str, int, int]]:
        return {(*key(r), r["round"]) for r in self.results}

    def failed(self) -> set[tuple[str, str, int]]:
        return {key(r) for r in self.results if r["status"] in FAILING}

    def run(self, progress=None) -> list[dict]:
        """Every (case, round) not yet on disk, base rounds then extra ones (bench/campaign.py);
        then the final files. Returns pipeline.csv's rows."""
        stages = campaign.Stages(
            lambda: self.base_rounds(progress),
            lambda: extra_rounds(self.s, self.results),
            lambda wanted: self.extra_rounds(wanted, progress),
            self.finish,
        )
        return campaign.run(self.run_dir, self.meta, self.stop, stages)

    def base_rounds(self, progress) -> None:
        self.write_table()
        for rnd in range(self.s.rounds):
            if self.stop.is_set():
                break
            self.run_round(rnd, progress)

    def extra_rounds(self, wanted: dict[str, int], progress) -> None:
        for rnd in range(self.s.rounds, max(wanted.values(), default=0)):
            if self.stop.is_set():
                break
            only = {c for c in cases(self.s) if wanted.get("|".join(map(str, c)), 0) > rnd}
            self.run_round(rnd, progress, only=only)

    def finish(self, stopped: bool) -> list[dict]:
        if self.roster is not None:
            self.roster.close()
        return self.write_table("interrupted" if stopped else "pending")

    def run_round(self, rnd: int, progress, only: set | None = None) -> None:
        """The round's cases not done or failed before (of `only`, when given), a framework's
        pipelines and its baselines each in a group of fresh processes; a failure kills the group,
        a new one runs the rest."""
        todo = [
            c
            for c in cases(self.s)
            if c not in self.failed()
            and (*c, rnd) not in self.done()
            and (only is None or c in only)
        ]
        for (fw, single), batch in groupby(
            todo, lambda c: (c[0], SCHEDULES[c[1]].kind == "single")
        ):
            batch = list(batch)
            why = frameworks.pipeline_unavailable(fw)
            if why:
                for f, name, m in batch:
                    self.record(
                        {
                            **asdict(protocol.PipeResult(name, m, rnd, "unavailable", why)),
                            "framework": f,
                        }
                    )
                continue
            while batch and not self.stop.is_set():
                group = self.start_group(
                    group_specs(self.s, fw, single, batch, rnd, self.addresses())
                )
                if group is None:
                    return
                try:
                    while batch:
                        f, name, m = batch.pop(0)
                        if progress:
                            progress(f"{f} {name} M={m}", rnd)
                        res = group.next_result(
                            2 * self.s.timeout_s + (60 if self.s.timeout_s >= 30 else 5), self.stop
                        )
                        if res.status == "interrupted":
                            return
                        self.record(
                            {
                                **asdict(res),
                                "framework": f,
                                "schedule": name,
                                "microbatches": m,
                                "round": rnd,
                            }
                        )
                        if res.status in FAILING:
                            break
                finally:
                    group.kill()
                    # between groups: no table rewrite competes with a timed step
                    self.write_table()

    def addresses(self) -> dict[int, str] | None:
        return self.roster.addresses if self.roster is not None else None

    def start_group(self, specs: list[protocol.RankSpec]) -> Group | None:
        """Node 0's ranks of a group, the other nodes' sent to them; None (the probe stops) when a
        node is gone."""
        group = Group([x for x in specs if x.node == 0], self.path / "logs")
        if self.roster is not None:
            try:
                self.roster.announce(specs, group.lines)
            except NodeLost as e:
                group.kill()
                self.lost = str(e)
                self.stop.set()
                return None
        return group

    def record(self, res: dict) -> None:
        """One finished (case, round) on disk: its raw result and its steps (two appends; the table
        is rewritten once the group is gone, since P ranks leave no CPU for anything else)."""
        self.results.append(res)
        append_line(self.path / "pipeline_results.jsonl", json.dumps(res))
        if res["status"] == "ok":
            append_csv(
                self.path / "pipeline_samples.csv",
                [
                    (
                        SCHEMA_VERSION,
                        res["framework"],
                        res["schedule"],
                        res["microbatches"],
                        res["round"],
                        i,
                        ns,
                    )
                    for i, ns in enumerate(res["step_ns"])
                ],
            )

    def write_table(self, unmeasured: str = "pending") -> list[dict]:
        rows = [
            row(
                self.s,
                fw,
                name,
                m,
                [r for r in self.results if key(r) == (fw, name, m)],
                unmeasured,
            )
            for fw, name, m in cases(self.s)
        ]
        self.run_dir.write_table(self.path / "pipeline.csv", rows, PIPELINE_COLUMNS)
        return rows
