"""Chunked sampling (--chunks): a case's sampling in a process is split into turns that its round's
other cases take in between, and the round is still one process median over every chunk's samples."""

import pandas as pd
import pytest

from bench import protocol
from bench.results import RunDir
from bench.runmeta import RunMeta
from bench.sizes import parse_sizes
from bench.sweep import runner as runner_mod
from bench.sweep.cases import CaseState
from bench.sweep.plan import chunked, plan
from bench.sweep.settings import RunOptions, new_settings
from bench.timing import Budget, chunk_budget
from models.registry import REGISTRY


def states(impls, sizes="1x1x1,4x8x2"):
    return [CaseState(REGISTRY["mlp"][i], z) for z in parse_sizes(sizes) for i in impls]


def names(todo):
    return [(r, st.impl.name, st.size.label, c) for r, st, c in todo]


def test_chunks_take_turns_within_a_round_and_never_cross_into_the_next():
    sts = states(["numpy.loop", "c.ref"])
    got = names(chunked(plan(sts, 2), 2))
    # plan's order of round 0 (rotated in round 1)
    one_round = [(st.impl.name, st.size.label) for st in sts]
    assert [(i, z) for r, i, z, c in got[:4]] == [
        (i, z) for i, z in [one_round[k] for k in (0, 1, 2, 3)]
    ]
    assert [c for *_, c in got[:8]] == [
        0,
        0,
        0,
        0,
        1,
        1,
        1,
        1,
    ]  # every case's first chunk, then every second
    assert [r for r, *_ in got] == [0] * 8 + [1] * 8
    assert sorted(got[:8]) == sorted((0, i, z, c) for i, z in one_round for c in (0, 1))


def test_with_one_live_worker_chunks_take_turns_within_each_framework_only():
    sts = states(["numpy.loop", "c.ref"])
    got = names(chunked(plan(sts, 1, by_framework=True), 3, by_framework=True))
    fws = [REGISTRY["mlp"][i].framework for _, i, _, _ in got]
    # a framework's worker is never closed mid-turns
    assert fws == [fws[0]] * 6 + [fws[6]] * 6 and fws[0] != fws[6]
    assert [c for *_, c in got[:6]] == [0, 0, 1, 1, 2, 2]


def test_one_chunk_is_the_plan_itself():
    sts = states(["numpy.loop", "c.ref"])
    assert names(chunked(plan(sts, 2), 1)) == [
        (r, st.impl.name, st.size.label, 0) for r, st in plan(sts, 2)
    ]


def test_a_chunk_has_its_share_of_the_time_and_of_the_fewest_samples():
    b = chunk_budget(Budget(seconds=0.05, min_samples=5, max_samples=5000, warmup_s=0.05), 3)
    assert (
        b.seconds == pytest.approx(0.05 / 3)
        and b.min_samples == 2
        and b.max_samples == 1666
        and b.warmup_s == 0.05
    )
    assert chunk_budget(Budget(min_samples=5), 10).min_samples == 1
    assert chunk_budget(Budget(), 1) == Budget()


class FakePool:
    """Answers every case request with one sample per chunk: 1000 ns x (chunk + 1), so the round's
    median over its chunks is known; c.ref at B4 says its round is complete after its first chunk
    (the runner follows the worker's word). Records what was asked (asked: the case requests;
    log: every request, descriptions too, and every worker stopped)."""

    def __init__(self, *a, **kw):
        self.asked, self.info, self.start_s, self.base_env = [], {}, {}, None
        self.log, self.alive = [], set()

    def ask(self, fw, msg, reply_type, timeout_s):
        if msg.op == "peak":
            return protocol.PeakReply(result={"gflops": 1.0, "n": msg.n})
        self.alive.add(fw)
        if msg.op == "describe":
            self.log.append(("describe", msg.impl, msg.config["batch"]))
            return protocol.DescribeReply(
                status="ok", ops_per_step=3, info={"op_unit": f"{fw} calls"}
            )
        self.log.append(("case", msg.impl, msg.config["batch"], msg.chunk))
        self.asked.append(
            (msg.impl, msg.config["batch"], msg.chunk, msg.chunks, msg.budget["seconds"])
        )
        whole = msg.impl == "c.ref" and msg.config["batch"] == 4
        return protocol.CaseReply(
            status="ok",
            samples_ns=[7000] * 5 if whole else [1000 * (msg.chunk + 1)],
            steps_per_call=1,
            pid=100,
            first_call_s=0.5 if msg.chunk == 0 else None,
            last=whole or msg.chunk == msg.chunks - 1,
        )

    def live(self):
        return sorted(self.alive)

    def close(self, keep=None):
        self.log += [("stop", fw) for fw in sorted(self.alive - {keep})]
        self.alive &= {keep}


@pytest.mark.parametrize("live", ["all", "one"])
def test_the_runner_asks_each_chunk_in_turn_and_writes_one_round_of_every_chunk(
    tmp_path, monkeypatch, live
):
    monkeypatch.setattr(runner_mod, "WorkerPool", FakePool)
    s = new_settings(
        RunOptions(
            "mlp",
            "numpy.loop,c.ref",
            "1x1x1,4x8x2",
            rounds=2,
            budget_s=0.06,
            min_samples=5,
            live_workers=live,
            chunks=3,
        )
    )
    run = runner_mod.Runner(s, RunDir.create(tmp_path / "run"), ["test"])
    said = []
    run.run(lambda desc, rnd, done, total: said.append((desc, total)))
    asked = run.pool.asked
    # each turn counted and named
    assert said[-1][1] == 2 * 2 * 2 * 3 and said[-1][0].endswith("(turn 3/3)")
    # the round's budget; the worker samples a third of it a turn
    assert {(a[3], a[4]) for a in asked} == {(3, 0.06)}
    whole = [a for a in asked if a[:2] == ("c.ref", 4)]
    assert [a[2] for a in whole] == [
        0,
        0,
    ]  # a case that took its round at once is not asked again in it
    assert len(asked) == (2 * 2 - 1) * 2 * 3 + 2  # the other cases: every chunk of both rounds
    if live == "all":  # every case's first turn, then every second, then every third
        assert [a[2] for a in asked[:10]] == [0] * 4 + [1] * 3 + [2] * 3
    else:  # framework by framework: a worker is never closed between its cases' turns
        fws = [REGISTRY["mlp"][a[0]].framework for a in asked[:8]]
        assert len({fws[0], fws[-1]}) == 2 and fws == sorted(fws, key=fws.index)
    rounds = pd.read_csv(tmp_path / "run" / "rounds.csv")
    assert len(rounds) == 2 * 2 * 2  # one row per case and round
    turns = rounds[~((rounds["impl"] == "c.ref") & (rounds["size"] == "B4-H8-L2"))]
    # every chunk's
    assert (turns["n_samples"] == 3).all() and list(turns["median_s"]) == pytest.approx([2e-6] * 6)
    assert list(
        rounds.loc[rounds["size"] == "B4-H8-L2"].query("impl == 'c.ref'")["median_s"]
    ) == pytest.approx([7e-6] * 2)
    assert (rounds["first_call_s"] == 0.5).all()
    samples = pd.read_csv(tmp_path / "run" / "samples.csv.gz")
    assert (
        samples.groupby(["impl", "size", "round"])["i"]
        .apply(list)
        .map(sorted)
        .map(lambda i: i == list(range(len(i))))
    ).all()
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    assert (results["rounds"] == 2).all()
    assert run.meta.settings["chunks"] == 3
    assert all(len(v) == 2 for v in run.cost_s.values())  # a round's cost: its chunks together
    described = [e[1:] for e in run.pool.log if e[0] == "describe"]
    # every case once, in its first round
    assert sorted(described) == sorted({(a[0], a[1]) for a in asked})
    assert (results["framework_ops_per_step"] == 3).all() and set(results["framework_op"]) == {
        "numpy calls",
        "c calls",
    }
    assert run.meta.case_info["c.ref"]["B4-H8-L2"] == {"op_unit": "c calls"}
    for fw in (
        "numpy",
        "c",
    ):  # after every turn of its round in its worker, before that worker stops
        mine = [
            i
            for i, e in enumerate(run.pool.log)
            if e[0] != "stop" and REGISTRY["mlp"][e[1]].framework == fw
        ]
        first_stop = run.pool.log.index(("stop", fw))
        turns = [i for i in mine if run.pool.log[i][0] == "case" and i < first_stop]
        assert [run.pool.log[i][0] for i in mine if i < first_stop] == ["case"] * len(turns) + [
            "describe"
        ] * 2


def test_a_round_whose_worker_was_replaced_between_its_turns_keeps_only_the_new_process_samples():
    st = states(["numpy.loop"], "4x8x2")[0]
    reply = lambda pid, ns, first=None, last=False: protocol.CaseReply(  # noqa: E731
        status="ok", samples_ns=ns, steps_per_call=1, pid=pid, first_call_s=first, last=last
    )
    assert st.fold(reply(100, [1000, 1000], 0.5), 0, 0, False) is None
    assert st.fold(reply(100, [1000]), 0, 1, False) is None
    # another case crashed the framework's worker; a new one (pid 200) built this case afresh
    assert st.fold(reply(200, [9000, 9000], 0.7), 0, 2, False) is None
    made, ns = st.fold(reply(200, [9000], last=True), 0, 3, True)
    assert ns == [9000, 9000, 9000] and made.pid == 200 and made.first_call_s == 0.7  # the new one
    assert st.rounds.medians == pytest.approx([9e-6])
    # a new round starts at its first chunk
    assert st.fold(reply(300, [2000], 0.4), 1, 0, False) is None
    made, ns = st.fold(reply(300, [4000], last=True), 1, 1, True)
    assert ns == [2000, 4000] and made.pid == 300


def test_the_report_header_says_how_the_sampling_was_split_only_when_it_was():
    from bench.report.render import header

    meta = RunMeta.from_json(
        {
            "run_id": "r",
            "kind": "sweep",
            "created_utc": "2026-12-03T00:00:00Z",
            "status": "complete",
            "machine": {
                "cpu_model": "cpu",
                "cores_logical": 2,
                "memory_total_gb": 1,
                "os": "os",
                "python": "3",
                "versions": {},
            },
            "settings": {"model": "mlp", "threads": 1, "rounds": 5, "budget": {"seconds": 0.05}},
        }
    )
    line = lambda m: next(x for x in header(m) if "sampling per case" in x)  # noqa: E731
    assert "0.05 s sampling per case and round;" in line(meta)  # a run before --chunks
    meta.settings["chunks"] = 5
    assert (
        "0.05 s sampling per case and round in 5 chunks, the process's cases taking turns;"
        in line(meta)
    )


def test_a_worker_warms_a_case_fully_once_then_briefly_and_checks_its_loss_after_the_last_chunk(
    monkeypatch,
):
    from dataclasses import asdict

    import bench.timing as timing
    from bench.sweep import prepare
    from bench.sweep.worker import Worker

    warm, checked, real = [], [], timing.warm_up
    monkeypatch.setattr(
        timing,
        "warm_up",
        lambda call, b, min_calls=2: (
            warm.append((b.warmup_s, min_calls)) or real(call, b, min_calls)
        ),
    )
    monkeypatch.setattr(prepare, "still_finite", lambda step: checked.append(1) or "")
    wk = Worker("numpy", 1, "cpu", False)
    size = parse_sizes("4x8x2")[0]
    budget = asdict(Budget(seconds=0.03, min_samples=2, warmup_s=0.01))

    def ask(chunk, gate=False, chunks=3):
        return wk.case(
            protocol.CaseRequest(
                model="mlp",
                impl="numpy.loop",
                device="cpu",
                config=asdict(size.config()),
                steps_per_call=1,
                gate=gate,
                budget=budget,
                chunks=chunks,
                chunk=chunk,
            )
        )

    replies = [ask(0, gate=True), ask(1), ask(2)]
    assert [r.status for r in replies] == ["ok"] * 3 and all(
        len(r.samples_ns) >= 1 for r in replies
    )
    assert [r.last for r in replies] == [False, False, True]
    assert replies[0].first_call_s > 0 and replies[1].first_call_s is None  # built once, in chunk 0
    assert warm == [(0.01, 2), (timing.REWARM_S, 1), (timing.REWARM_S, 1)]
    assert checked == [1]  # the loss after timing: once, after the last chunk
    wk.steps.clear()  # a worker that lost its build (a crash mid-round) warms a later chunk fully
    assert ask(1).last is False and warm[-1] == (0.01, 2)
    one = ask(0, chunks=1)  # no chunks: the whole round at once
    assert one.last and len(checked) == 2
    budget["seconds"] = 1e-7  # a round bound by its fewest samples still takes turns, a sample each
    slow = [ask(c) for c in range(3)]
    assert [len(r.samples_ns) for r in slow] == [1, 1, 1] and [r.last for r in slow] == [
        False,
        False,
        True,
    ]


@pytest.mark.parametrize("sizes", ["default", "quick", "1x1x1"])
def test_every_preset_samples_in_five_turns_unless_told_and_an_old_run_json_in_one(sizes):
    from bench.sweep.settings import Settings

    s = new_settings(RunOptions("mlp", "numpy.loop", sizes, min_samples=5))
    assert s.chunks == 5
    assert new_settings(RunOptions("mlp", "numpy.loop", sizes, min_samples=5, chunks=1)).chunks == 1
    old = s.to_json()
    del old["chunks"]  # a run.json written before --chunks: resumed as it was made, in one stretch
    assert Settings.from_json(old).chunks == 1 and Settings.from_json(s.to_json()).chunks == 5


def ask_case(wk, impl, size, chunk, chunks=2, gate=False):
    from dataclasses import asdict

    budget = asdict(Budget(seconds=0.02, min_samples=2, warmup_s=0.01))
    return wk.case(
        protocol.CaseRequest(
            model="mlp",
            impl=impl,
            device="cpu",
            config=asdict(size.config()),
            steps_per_call=size.steps_per_call(),
            gate=gate,
            budget=budget,
            chunks=chunks,
            chunk=chunk,
        )
    )


def ask_description(wk, impl, size):
    from dataclasses import asdict

    return wk.handle(protocol.DescribeRequest(model="mlp", impl=impl, config=asdict(size.config())))


def test_the_worker_describes_a_case_it_built_when_asked_and_only_then(monkeypatch):
    """Describing a torch step resets Dynamo, so a case's replies bring no description: the runner
    asks for it once the round's timing is done; a case whose gate failed is described as well, a
    case the process never built is absent, and a description that raises is an error reply."""
    from bench.sweep import prepare
    from bench.sweep.worker import Worker

    wk, size = Worker("numpy", 1, "cpu", False), parse_sizes("4x8x2")[0]
    calls = []
    monkeypatch.setattr(
        prepare,
        "describe_step",
        lambda built, real=prepare.describe_step: calls.append(1) or real(built),
    )
    replies = [ask_case(wk, "numpy.loop", size, c, chunks=3, gate=c == 0) for c in range(3)]
    assert all(r.status == "ok" and r.samples_ns for r in replies) and not calls
    # a case reply has no description to carry
    assert not {"ops_per_step", "info"} & set(vars(replies[0]))
    got = ask_description(wk, "numpy.loop", size)
    assert (got.status, got.info["op_unit"], calls) == (
        "ok",
        "NumPy calls",
        [1],
    ) and got.ops_per_step > 0
    assert ask_description(wk, "numpy.loop", parse_sizes("8x8x2")[0]).status == "absent"
    monkeypatch.setattr(
        prepare, "gate", lambda step, model, cfg: prepare.GateResult("mismatch", 0.5, 0.5, "off")
    )
    failed = ask_case(wk, "numpy.loop", parse_sizes("8x8x2")[0], 0, gate=True)
    assert failed.status == "mismatch" and not failed.samples_ns
    assert (
        ask_description(wk, "numpy.loop", parse_sizes("8x8x2")[0]).info["op_unit"] == "NumPy calls"
    )
    monkeypatch.setattr(prepare, "describe_step", lambda built: 1 / 0)
    err = ask_description(wk, "numpy.loop", size)
    assert (type(err).__name__, err.status, err.error) == (
        "DescribeReply",
        "error",
        "ZeroDivisionError: division by zero",
    )


class DescribingPool:
    """A live worker per framework that answers descriptions: ok, absent or error by impl name, or
    dies (c.step)."""

    def __init__(self):
        self.asked = []

    def ask(self, fw, msg, reply_type, timeout_s):
        from bench.supervisor import ChildFailure

        self.asked.append(msg.impl)
        if msg.impl == "c.step":
            raise ChildFailure("crashed", "segfault in describe")
        status = {"torch.eager": "ok", "torch.compile": "absent"}.get(msg.impl, "error")
        return protocol.DescribeReply(
            status=status,
            error="boom" if status == "error" else "",
            ops_per_step=4 if status == "ok" else None,
            info={"op_unit": "ATen ops"} if status == "ok" else {},
        )


def test_describe_cases_asks_its_frameworks_undescribed_cases_and_records_each_answer():
    from bench.sweep.runner import describe_cases

    sts = {
        st.impl.name: st
        for st in states(
            [
                "torch.eager",
                "torch.compile",
                "torch.fullgraph",
                "torch.scan",
                "torch.cudagraphs",
                "c.ref",
                "c.step",
            ],
            "4x8x2",
        )
    }
    for st in sts.values():
        st.status = "ok"
    sts["torch.scan"].status = "pending"  # never measured: nothing built to describe
    sts["torch.cudagraphs"].status, sts["torch.cudagraphs"].error = (
        "mismatch",
        "loss off",
    )  # its gate failed
    meta, pool = RunMeta("r", "sweep", {}, {}), DescribingPool()
    changed = describe_cases(pool, "torch", list(sts.values()), 5.0, meta)
    assert pool.asked == [
        "torch.eager",
        "torch.compile",
        "torch.fullgraph",
        "torch.cudagraphs",
    ]  # torch's measured cases, none of c's
    assert [st.impl.name for st in changed] == [
        "torch.eager",
        "torch.fullgraph",
    ]  # the rows an answer changed
    assert (sts["torch.eager"].framework_ops_per_step, sts["torch.eager"].info) == (
        4,
        {"op_unit": "ATen ops"},
    )
    assert meta.case_info == {"torch.eager": {"B4-H8-L2": {"op_unit": "ATen ops"}}}
    assert (sts["torch.compile"].status, sts["torch.compile"].info) == (
        "ok",
        {},
    )  # asked again after a later round
    assert (sts["torch.fullgraph"].status, sts["torch.fullgraph"].error) == ("error", "boom")
    assert (sts["torch.cudagraphs"].status, sts["torch.cudagraphs"].error) == (
        "mismatch",
        "loss off",
    )  # the gate's word
    # no row changes again
    assert describe_cases(pool, "torch", list(sts.values()), 5.0, meta) == []
    assert pool.asked[4:] == [
        "torch.compile",
        "torch.cudagraphs",
    ]  # a failed gate's description: asked again
    pool.asked.clear()
    changed = describe_cases(pool, "c", [sts["c.step"], sts["c.ref"]], 5.0, meta)
    # the worker is gone: no more asked
    assert pool.asked == ["c.step"] and [st.status for st in changed] == ["crashed"]


def test_described_after_the_round_no_compiled_case_compiles_again(monkeypatch):
    """Two compiled torch cases take turns in one worker, then are described, as the runner asks.
    Nothing compiles in their last turns (a description in a turn would reset Dynamo, and the
    other case would compile again in its next one), and each description says one graph."""
    pytest.importorskip("torch")
    from torch._dynamo.utils import counters

    from bench.sweep.worker import Worker

    wk, (a, b) = Worker("torch", 1, "cpu", False), parse_sizes("4x8x2,8x16x2")
    assert ask_case(wk, "torch.fullgraph", a, 0, gate=True).status == "ok"
    assert ask_case(wk, "torch.fullgraph", b, 0, gate=True).status == "ok"
    built = counters["stats"]["unique_graphs"]
    assert (
        ask_case(wk, "torch.fullgraph", a, 1).status
        == ask_case(wk, "torch.fullgraph", b, 1).status
        == "ok"
    )
    assert counters["stats"]["unique_graphs"] == built  # no compile in the last turns
    got = [ask_description(wk, "torch.fullgraph", z) for z in (a, b)]
    assert [(d.status, d.info["graphs"], d.info["graph_breaks"]) for d in got] == [("ok", 1, 0)] * 2
