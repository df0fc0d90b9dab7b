"""The timed loop and one case's row, on inputs whose answers are known."""

import math
import time

import numpy as np
import pandas as pd
import pytest

from bench import frameworks, timing
from bench.runmeta import RunMeta
from bench.sizes import mlp
from bench.sweep.cases import CaseState, case_row
from bench.sweep.settings import Settings
from bench.timing import Budget
from models.registry import REGISTRY


class VirtualClock:
    """bench.timing's clock, advanced only by sleep(): calls of a known time whatever the host's load."""

    def __init__(self):
        self.ns = 10**12

    def perf_counter_ns(self) -> int:
        return self.ns

    def perf_counter(self) -> float:
        return self.ns / 1e9

    def sleep(self, s: float) -> None:
        self.ns += round(s * 1e9)


@pytest.fixture
def vclock(monkeypatch):
    clock = VirtualClock()
    monkeypatch.setattr(timing, "time", clock)
    return clock


def test_sample_times_each_call_and_respects_the_budget(vclock):
    ns = timing.sample(
        lambda: vclock.sleep(0.002), Budget(seconds=0.03, min_samples=3, max_samples=100)
    )
    assert ns == [2_000_000] * 15  # 30 ms of 2 ms calls: the 15th ends on the deadline


def test_sample_times_each_call_on_the_real_clock():
    ns = timing.sample(
        lambda: time.sleep(0.002), Budget(seconds=0.01, min_samples=3, max_samples=100)
    )
    # each sample holds one call, never less than its sleep
    assert len(ns) >= 3 and all(v >= 2e6 for v in ns)


def test_sample_keeps_its_minimum_and_maximum():
    assert len(timing.sample(lambda: time.sleep(0.01), Budget(seconds=0.001, min_samples=4))) == 4
    assert len(timing.sample(lambda: None, Budget(seconds=10, min_samples=1, max_samples=50))) == 50


def test_warm_up_runs_at_least_twice_and_for_its_time():
    calls = []
    assert timing.warm_up(lambda: calls.append(1), Budget(warmup_s=0.0)) == 2 and len(calls) == 2
    t0 = time.perf_counter()
    n = timing.warm_up(lambda: time.sleep(0.001), Budget(warmup_s=0.02))
    assert time.perf_counter() - t0 >= 0.02 and n >= 2


def test_per_step_and_back():
    assert timing.per_step_s(8e9, 8) == 1.0
    assert timing.call_ns(0.5, 4) == 2e9


def test_the_row_cache_computes_again_the_changed_case_and_all_when_the_workers_report_changes():
    from bench.sweep.cases import RowCache

    size = mlp(2, 3, 1, "custom")
    a, b = (CaseState(REGISTRY["mlp"][n], size, status="ok") for n in ("numpy.loop", "c.ref"))
    for st in (a, b):
        st.add_round(0, [1000, 1000], 1)
    settings = Settings("mlp", ["numpy.loop", "c.ref"], [size], 2, 2, Budget(), 60.0)
    meta = RunMeta("run", "sweep", {}, {}, workers={"numpy": {"threads_used": 1}})
    cache = RowCache()
    assert [r["rounds"] for r in cache.rows([a, b], settings, meta)] == [1, 1]
    a.add_round(1, [3000], 1)
    b.add_round(1, [3000], 1)
    after = cache.rows([a, b], settings, meta, changed=a)  # one round of a: b's row as it was
    assert [r["rounds"] for r in after] == [2, 1]
    assert after[0] == case_row(a, settings, {}, meta.workers)
    meta.workers["numpy"]["threads_used"] = 2  # a worker's report: every row computed again
    cache.invalidate()
    again = cache.rows([a, b], settings, meta, changed=a)
    assert [r["rounds"] for r in again] == [2, 2] and again[0]["threads_used"] == 2


def test_a_case_row_from_known_rounds():
    """Two processes, K = 4 steps per call: the row's numbers from the definitions, by hand."""
    size = mlp(2, 3, 1, "custom")
    st = CaseState(REGISTRY["mlp"]["jax.scan"], size, status="ok")
    # per step: 1000, 1000, 2000 ns
    st.add_round(0, [4000, 4000, 8000], 4, first_call_s=2.0, pid=11)
    st.add_round(1, [16000, 16000, 16000], 4, first_call_s=0.5, pid=12)  # per step: 4000 ns
    st.first_call_s = 2.0  # as fold() sets it from the first process
    settings = Settings("mlp", ["jax.scan"], [size], 2, 2, Budget(), 60.0)
    row = case_row(st, settings, {"jax": {"gflops": 100.0}})
    # geometric mean of the process medians
    assert row["median_s"] == pytest.approx(math.sqrt(1e-6 * 4e-6))
    assert row["pooled_median_s"] == pytest.approx(3e-6)  # median of 1, 1, 2, 4, 4, 4 µs
    assert row["median_call_s"] == pytest.approx(4 * row["median_s"])
    assert row["rounds"] == 2 and row["n_samples"] == 6 and row["steps_per_call"] == 4
    logs = np.log([1e-6, 4e-6])
    half = 12.706204736174707 * logs.std(ddof=1) / math.sqrt(2)  # t(0.975, 1)
    assert row["ci_low_s"] == pytest.approx(math.exp(logs.mean() - half))
    assert row["ci_high_s"] == pytest.approx(math.exp(logs.mean() + half))
    assert row["round_sd"] == pytest.approx(logs.std(ddof=1))
    assert row["noisy"] and "median CI" in row["noisy_reason"]
    flops = 6 * 2 * (784 * 3 + 3 * 10) - 2 * 2 * 784 * 3
    assert row["flops_per_step"] == flops
    assert row["gflops"] == pytest.approx(flops / row["median_s"] / 1e9)
    assert row["pct_peak"] == pytest.approx(row["gflops"])  # a peak of 100 GFLOP/s
    assert row["first_call_s"] == 2.0 and row["first_call_later_s"] == 0.5
    assert row["min_s"] == pytest.approx(1e-6) and row["mean_s"] == pytest.approx(16e-6 / 6)


def test_a_rounds_row_and_the_rounds_it_records():
    st = CaseState(REGISTRY["mlp"]["numpy.loop"], mlp(2, 3, 1, "custom"))
    row = st.add_round(3, [2000, 4000, 6000], 1).row()  # no pid given: 0
    assert row[3:5] == (3, 0) and math.isnan(row[5])  # round, pid, first call unknown
    assert row[6:] == (3, pytest.approx(4e-6), pytest.approx(0.5), 1)  # IQR (5 - 3) / 4 µs
    assert st.rounds.done == {3}


def test_row_device_keeps_cpu_only_frameworks_on_the_cpu():
    assert frameworks.run_device(REGISTRY["mlp"]["torch.eager"], "cuda") == "cuda"
    assert frameworks.run_device(REGISTRY["mlp"]["numpy.loop"], "cuda") == "cpu"
    assert frameworks.run_device(REGISTRY["mlp"]["torch.eager"], "cpu") == "cpu"


def test_case_row_carries_the_workers_and_the_compilers_facts():
    size = mlp(2, 3, 1, "custom")
    st = CaseState(REGISTRY["mlp"]["torch.fullgraph"], size, status="ok")
    st.add_round(0, [3000], 1, first_call_s=9.0)  # one process, one sample
    st.info = {"op_unit": "graph", "graphs": 1, "graph_breaks": 0}
    settings = Settings("mlp", ["torch.fullgraph"], [size], 2, 1, Budget(), 60.0, device="cuda")
    row = case_row(st, settings, {"torch": {"gflops": 50.0}}, {"torch": {"threads_used": 2}})
    assert row["device"] == "cuda" and row["threads_used"] == 2
    assert (row["framework_op"], row["graphs"], row["graph_breaks"]) == ("graph", 1, 0)
    flops = 6 * 2 * (784 * 3 + 3 * 10) - 2 * 2 * 784 * 3
    # a single sample is measured
    assert row["gflops"] == pytest.approx(flops / 3e-6 * 1e-9, rel=1e-12)
    assert row["pct_peak"] == pytest.approx(2 * row["gflops"], rel=1e-12)
    assert row["noisy_reason"] == "one process: CI unknown" and row["noisy"]
    assert math.isnan(row["first_call_later_s"])  # no later process


def test_case_row_of_a_control_and_of_a_failed_case():
    size = mlp(2, 3, 1, "custom")
    settings = Settings("mlp", ["null.noop", "torch.eager"], [size], 2, 1, Budget(), 60.0)
    st = CaseState(REGISTRY["mlp"]["null.noop"], size, status="ok")
    st.add_round(0, [500, 500], 1)
    row = case_row(st, settings, {"null": {"gflops": 1.0}})
    assert (
        row["median_s"] == pytest.approx(5e-7)
        and math.isnan(row["gflops"])
        and math.isnan(row["pct_peak"])
    )
    failed = CaseState(REGISTRY["mlp"]["torch.eager"], size, status="error", error="boom")
    row = case_row(failed, settings, {"torch": {"gflops": 50.0}})
    assert (row["noisy"], row["noisy_reason"], row["n_samples"], row["rounds"]) == (False, "", 0, 0)
    assert (
        math.isnan(row["gflops"])
        and math.isnan(row["pct_peak"])
        and math.isnan(row["threads_used"])
    )
    assert (row["framework_op"], row["device"]) == ("", "cpu")
    assert math.isnan(row["graphs"]) and math.isnan(row["graph_breaks"])


def test_fold_keeps_the_first_processs_build_and_gate_and_each_processs_samples():
    from bench.protocol import CaseReply

    st = CaseState(REGISTRY["mlp"]["jax.scan"], mlp(2, 3, 1, "custom"))
    first = CaseReply(
        "ok",
        first_call_s=2.0,
        loss_rel_err=1e-6,
        update_rel_err=2e-6,
        samples_ns=[4000, 8000],
        steps_per_call=4,
        pid=7,
        peak_rss_mb=100.0,
    )
    row, ns = st.fold(first, 0)
    row = row.row()  # its rounds.csv row
    assert row[3:8] == (0, 7, 2.0, 2, pytest.approx(1.5e-6)) and ns == [
        4000,
        8000,
    ]  # round, pid, first call, n, median
    later = CaseReply(
        "ok", first_call_s=0.5, samples_ns=[4000], steps_per_call=4, pid=8, peak_rss_mb=120.0
    )
    st.fold(later, 1)
    assert (st.first_call_s, st.rounds.first_calls) == (2.0, [2.0, 0.5])
    assert (st.loss_rel_err, st.update_rel_err, st.peak_rss_mb, st.steps_per_call) == (
        1e-6,
        2e-6,
        120.0,
        4,
    )
    row, _ = st.fold(CaseReply("ok", samples_ns=[8000], steps_per_call=4, pid=9), 2)
    row = row.row()  # its rounds.csv row
    assert math.isnan(row[5]) and math.isnan(st.rounds.first_calls[-1])  # no build in this process
    assert st.fold(CaseReply("error", error="boom", first_call_s=1.0), 3) is None
    assert (st.status, st.error, st.rounds.medians) == ("error", "boom", [1.5e-6, 1e-6, 2e-6])
    assert st.first_call_s == 2.0


def test_a_round_in_chunks_is_one_process_median_over_every_chunk_and_nothing_before_its_last():
    from bench.protocol import CaseReply

    st = CaseState(REGISTRY["mlp"]["numpy.loop"], mlp(2, 3, 1, "custom"))
    assert (
        st.fold(
            CaseReply("ok", first_call_s=3.0, samples_ns=[1000, 9000], steps_per_call=1, pid=5),
            0,
            chunk=0,
            last=False,
        )
        is None
    )
    assert (
        st.fold(CaseReply("ok", samples_ns=[2000], steps_per_call=1, pid=5), 0, chunk=1, last=False)
        is None
    )
    assert st.rounds.medians == [] and st.rounds.done == set()  # not a round until its last chunk
    row, ns = st.fold(
        CaseReply("ok", samples_ns=[3000, 4000], steps_per_call=1, pid=5), 0, chunk=2, last=True
    )
    row = row.row()  # its rounds.csv row
    assert ns == [1000, 9000, 2000, 3000, 4000] and row[5:8] == (
        3.0,
        5,
        pytest.approx(3e-6),
    )  # first call, n, median
    assert st.rounds.medians == [pytest.approx(3e-6)] and st.rounds.done == {0}
    # a round cut short (its worker crashed before the last chunk) leaves nothing in the next round
    st.fold(CaseReply("ok", samples_ns=[50_000], steps_per_call=1, pid=6), 1, chunk=0, last=False)
    row, ns = st.fold(
        CaseReply("ok", samples_ns=[7000], steps_per_call=1, pid=7), 2, chunk=0, last=True
    )
    row = row.row()  # its rounds.csv row
    assert (
        ns == [7000] and st.rounds.medians[-1] == pytest.approx(7e-6) and st.rounds.done == {0, 2}
    )


def test_restore_rebuilds_case_states_from_the_files_of_an_interrupted_run():
    from bench.sweep.cases import RESTORED, restore

    size = mlp(2, 3, 1, "custom")
    states = [
        CaseState(REGISTRY["mlp"][name], size)
        for name in ("jax.scan", "numpy.loop", "torch.eager", "c.step")
    ]
    base = {name: 0.25 for name in RESTORED} | {"size": size.label}
    results = pd.DataFrame(
        [
            base | {"impl": "jax.scan", "status": "ok", "error": float("nan"), "steps_per_call": 4},
            base
            | {
                "impl": "numpy.loop",
                "status": "interrupted",
                "error": "stopped",
                "steps_per_call": 1,
            },
            base
            | {
                "impl": "torch.compile",
                "status": "ok",
                "error": "",
                "steps_per_call": 1,
            },  # not in this run
            base | {"impl": "c.step", "status": "error", "error": "boom", "steps_per_call": 1},
        ]
    )
    samples = pd.DataFrame(
        {  # rounds out of order; torch.eager has samples but no results row
            "impl": ["jax.scan"] * 3 + ["numpy.loop", "torch.eager", "torch.compile"],
            "size": [size.label] * 6,
            "round": [1, 0, 0, 0, 0, 0],
            "call_ns": [8000, 4000, 4000, 3000, 1000, 1000],
            "steps_per_call": [4, 4, 4, 1, 1, 1],
        }
    )
    rounds = pd.DataFrame(
        {
            "impl": ["jax.scan", "jax.scan"],
            "size": [size.label] * 2,
            "round": [0, 1],
            "first_call_s": [3.0, 0.5],
            "pid": [1, 2],
        }
    )
    restore(states, results, samples, rounds, {"jax.scan": {size.label: {"op_unit": "scan"}}})
    scan, loop, eager, failed = states
    assert (
        scan.rounds.medians == [1e-6, 2e-6]
        and scan.rounds.first_calls == [3.0, 0.5]
        and scan.rounds.done == {0, 1}
    )
    assert (scan.status, scan.error, scan.steps_per_call, scan.info) == (
        "ok",
        "",
        4,
        {"op_unit": "scan"},
    )
    assert all(getattr(scan, name) == 0.25 for name in RESTORED)
    assert (loop.status, loop.error, loop.rounds.medians, loop.info) == ("pending", "", [3e-6], {})
    assert math.isnan(loop.rounds.first_calls[0])  # no rounds.csv row for it
    assert (eager.status, eager.rounds.medians) == ("pending", [])
    assert (failed.status, failed.error, failed.rounds.medians) == ("error", "boom", [])


def test_the_matmul_peak_counts_2n3_flops_of_a_known_time(monkeypatch, vclock):
    """A matmul that takes a known 5 ms: n = 500 is 2 x 500^3 = 2.5e8 FLOP, so 50 GFLOP/s (not 25)."""
    from dataclasses import replace

    from bench.sweep import peak

    def slow_matmul(a, b, device):
        assert a.shape == b.shape == (500, 500)
        return lambda: vclock.sleep(0.005)

    real = dict(peak.frameworks.FRAMEWORKS)
    monkeypatch.setattr(
        peak.frameworks,
        "get",
        lambda name: replace(real[name], matmul=slow_matmul if name == "torch" else None),
    )
    out = peak.measure("torch", 500, Budget(seconds=0.05, min_samples=5, warmup_s=0.01))
    assert out["device"] == "cpu"  # the default
    assert out["flops"] == 2.5e8
    assert out["median_s"] == pytest.approx(0.005, rel=1e-12)
    assert out["gflops"] == pytest.approx(50, rel=1e-12) and out["gflops_best"] == pytest.approx(
        50, rel=1e-12
    )
    assert "copy_gbytes_per_s" not in out  # torch on a CPU: the bandwidth comes from numpy's worker


@pytest.mark.parametrize(
    "framework, device, copy_bytes",
    [("numpy", "cpu", 1 << 28), ("torch", "cuda", 1 << 30), ("jax", "cpu", None)],
)
def test_the_peak_record_by_hand(monkeypatch, vclock, framework, device, copy_bytes):
    """Known-time fakes: a 2 ms matmul of n = 100 (2e6 FLOP: 1 GFLOP/s) and a 4 ms copy (read + write
    of nbytes: 2 nbytes / 4 ms). The copy is the device's memory: numpy on the CPU (256 MiB), a GPU
    framework on CUDA (1 GiB); jax on the CPU has none."""
    from dataclasses import replace

    from bench.sweep import peak

    seen = {}

    def matmul(a, b, dev):
        seen["mm"] = (a.copy(), b.copy(), dev)
        return lambda: vclock.sleep(0.002)

    def copy_call(fw, nbytes, dev):
        seen["copy"] = (fw, nbytes)
        return lambda: vclock.sleep(0.004)

    real = dict(peak.frameworks.FRAMEWORKS)
    monkeypatch.setattr(peak.frameworks, "get", lambda name: replace(real[name], matmul=matmul))
    monkeypatch.setattr(peak.frameworks, "copy_call", copy_call)
    out = peak.measure(framework, 100, Budget(seconds=0.03, min_samples=5, warmup_s=0.005), device)
    a, b, dev = seen["mm"]
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(a, rng.standard_normal((100, 100), dtype=np.float32))
    np.testing.assert_array_equal(b, rng.standard_normal((100, 100), dtype=np.float32))
    assert a.dtype == b.dtype == np.float32 and dev == device
    assert (out["n"], out["flops"], out["device"]) == (100, 2e6, device)
    # 30 ms of 2 ms calls
    assert out["median_s"] == pytest.approx(0.002, rel=1e-12) and out["n_samples"] == 15
    assert out["gflops"] == pytest.approx(1.0, rel=1e-12) and out["gflops_best"] == pytest.approx(
        1.0, rel=1e-12
    )
    if copy_bytes is None:
        assert "copy_gbytes_per_s" not in out and "copy" not in seen
    else:
        assert seen["copy"] == (framework, copy_bytes)
        # read + write
        assert out["copy_gbytes_per_s"] == pytest.approx(2 * copy_bytes / 0.004 / 1e9, rel=1e-12)


def test_a_framework_without_a_matmul_has_no_peak(monkeypatch):
    from types import SimpleNamespace

    from bench.sweep import peak

    monkeypatch.setattr(peak.frameworks, "get", lambda name: SimpleNamespace(matmul=None))
    with pytest.raises(ValueError, match="no matmul peak for framework 'null'"):
        peak.measure("null", 10, Budget())


class _Fake:
    """A step whose losses are NaN from the nth on; it records the lengths asked."""

    gate = True

    def __init__(self, steps_per_call: int) -> None:
        self.steps_per_call, self.asked = steps_per_call, []

    def losses(self, n: int):
        self.asked.append(n)
        return np.array([1.0] * (n - 1) + [float("nan")])


def test_the_check_after_timing_runs_1_step_or_one_fused_call():
    from bench.sweep import prepare

    plain, fused = _Fake(1), _Fake(16)
    assert prepare.still_finite(plain) == "non-finite loss after timing: [nan]"
    assert prepare.still_finite(fused).startswith("non-finite loss after timing: [1.0,")
    assert (plain.asked, fused.asked) == ([1], [16])
