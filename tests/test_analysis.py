"""The analysis against known truth: a synthetic run drawn around t = a + FLOPs / r + per-op cost
(tests/fixture_run.py), with the expected numbers computed here from that truth, never from the
code's own formulas."""

import re

import numpy as np
import pandas as pd
import pytest
from fixture_run import CONTROL_S, PEAK_GFLOPS, TRUTH, WIDTH, make_run, true_time
from scipy import stats as sps

from bench import analysis, plots, report
from bench.results import read_results
from models.mlp.model import MLPConfig, flops_per_step

FLOOR = "c.ref"


def test_fit_recovers_known_fixed_cost_and_rate():
    F = np.geomspace(1e3, 1e10, 8)
    t = 30e-6 + F / 120e9
    a, c = analysis.fit_fixed_cost(F, t)
    assert a == pytest.approx(30e-6, rel=1e-3)
    assert 1 / c == pytest.approx(120e9, rel=1e-3)


def test_fit_is_robust_to_one_outlier():
    F = np.geomspace(1e3, 1e10, 8)
    t = 30e-6 + F / 120e9
    t[3] *= 3  # one disturbed size
    a, c = analysis.fit_fixed_cost(F, t)
    assert a == pytest.approx(30e-6, rel=0.05)
    assert 1 / c == pytest.approx(120e9, rel=0.05)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("fx") / "fixture")


@pytest.fixture(scope="module")
def reported(run_dir):
    report.write_report(run_dir)
    return run_dir


@pytest.fixture(scope="module")
def loaded(run_dir):
    res, rounds, meta = analysis.load(run_dir)
    return res, rounds, meta, analysis.shares(res, meta, rounds), {s.impl: s for s in analysis.summarize(res, rounds, meta)}


def width_cfgs():
    return [(f"B{b}-H{h}-L2", MLPConfig(batch=b, width=h, depth=2)) for b, h in WIDTH]


def test_summary_recovers_truth_from_samples(loaded):
    *_, by = loaded
    for impl, (a, r, per_op) in TRUTH.items():
        s = by[impl]
        assert s.fixed_us == pytest.approx(a * 1e6, rel=0.1), impl
        assert s.fixed_us_lo <= a * 1e6 * 1.1 and s.fixed_us_hi >= a * 1e6 * 0.9, impl
        assert s.rate_gflops == pytest.approx(r / 1e9, rel=0.1), impl
        assert s.us_per_op == pytest.approx(per_op * 1e6, rel=0.1), impl
    assert "null.noop" not in by
    assert by["jax.scan"].steps_per_call == 8 and by["numpy.loop"].steps_per_call == 1


def test_overhead_against_the_floor_is_the_true_difference(loaded):
    *_, sh, _ = loaded
    for label, cfg in width_cfgs():
        at = sh[sh["size"] == label].set_index("impl")
        assert (at["floor_impl"] == FLOOR).all()
        for impl in TRUTH:
            want = true_time(impl, cfg) - true_time(FLOOR, cfg)
            row = at.loc[impl]
            assert row["overhead_s"] == pytest.approx(want, abs=0.03 * true_time(impl, cfg)), (impl, label)
            assert row["overhead_lo_s"] <= row["overhead_s"] <= row["overhead_hi_s"]
            half = (row["overhead_hi_s"] - row["overhead_lo_s"]) / 2
            assert 0 < half < 0.05 * true_time(impl, cfg), (impl, label)  # a CI, and a narrow one
            assert row["share"] == pytest.approx(want / true_time(impl, cfg), abs=0.03)


def expected_crossover(impl: str) -> str:
    shares = [1 - true_time(FLOOR, cfg) / true_time(impl, cfg) for _, cfg in width_cfgs()]
    for i in range(len(shares)):
        if all(s < analysis.SHARE_THRESHOLD for s in shares[i:]):
            return width_cfgs()[i][0]
    return ""


def test_crossover_is_where_the_true_share_stays_under_5_percent(loaded):
    *_, by = loaded
    assert expected_crossover("torch.eager") == "B512-H512-L2" and expected_crossover("numpy.loop") == ""
    for impl in ("torch.eager", "numpy.loop", "jax.scan"):
        assert by[impl].crossover == expected_crossover(impl), impl
    assert by[FLOOR].crossover == ""  # the floor has no crossover of its own


def test_gflops_and_pct_peak_follow_from_flops_time_and_the_recorded_peak(run_dir):
    res = read_results(run_dir)
    ok = res[(res["status"] == "ok") & (res["impl"] != "null.noop")]
    assert ok["gflops"].notna().all() and ok["pct_peak"].notna().all()
    for _, r in ok.iterrows():
        cfg = MLPConfig(batch=int(r["batch"]), width=int(r["width"]), depth=int(r["depth"]))
        true_gflops = flops_per_step(cfg) / true_time(r["impl"], cfg) / 1e9
        assert r["gflops"] == pytest.approx(true_gflops, rel=0.03), r["impl"]
        assert r["pct_peak"] == pytest.approx(100 * true_gflops / PEAK_GFLOPS, rel=0.03), r["impl"]


def headline(text: str, title: str) -> str:
    return next(ln for ln in text.splitlines() if ln.startswith(f"- **{title}"))


def test_headlines_state_the_true_numbers_and_their_definitions(reported):
    text = (reported / "report.md").read_text()
    small_cfg = width_cfgs()[0][1]
    line = headline(text, "Overhead per step against the C floor at the smallest size")
    assert "t_impl - t_floor" in line
    m = re.search(r"torch\.eager ([\d.,]+) µs", line)
    want = (true_time("torch.eager", small_cfg) - true_time(FLOOR, small_cfg)) * 1e6
    assert float(m.group(1).replace(",", "")) == pytest.approx(want, rel=0.03)
    line = headline(text, "Percent of peak at the largest size")
    big_cfg = width_cfgs()[-1][1]
    for impl in TRUTH:
        pct = int(re.search(rf"{re.escape(impl)} (\d+)%", line).group(1))
        assert pct == pytest.approx(100 * flops_per_step(big_cfg) / true_time(impl, big_cfg) / 1e9 / PEAK_GFLOPS, abs=2)
    line = headline(text, "Largest slowdown")
    ratios = {(impl, label): true_time(impl, cfg) / min(true_time(i, cfg) for i in TRUTH)
              for label, cfg in width_cfgs() for impl in TRUTH}
    (impl, label), ratio = max(ratios.items(), key=lambda kv: kv[1])
    assert f"{impl} takes" in line and f"at {label}" in line
    assert int(re.search(r"(\d+)x the fastest", line).group(1)) == pytest.approx(ratio, rel=0.05)
    line = headline(text, "Harness cost per timed call")
    assert int(re.search(r"(\d+) ns", line).group(1)) == pytest.approx(CONTROL_S * 1e9, rel=0.05)
    for title in ("Fixed cost per call", "Cost per layer op", "Overhead share under 5%"):
        assert "(" in headline(text, title)  # each headline carries its definition


def test_every_plot_is_drawn_and_linked(reported):
    text = (reported / "report.md").read_text()
    for name in plots.PLOTS:
        assert f"({name}.png)" in text and (reported / f"{name}.png").stat().st_size > 10_000, name
    assert "not drawn" not in text


def test_analysis_csv_is_the_summary(reported, loaded):
    *_, by = loaded
    csv = pd.read_csv(reported / "analysis.csv").set_index("impl")
    for impl, s in by.items():
        assert csv.loc[impl, "fixed_us"] == pytest.approx(s.fixed_us)


def test_report_cli_regenerates_and_refuses_non_runs(reported, tmp_path):
    from bench.cli import main

    (reported / "report.md").unlink()
    assert main(["report", str(reported)]) == 0
    assert (reported / "report.md").is_file()
    assert main(["report", str(tmp_path)]) == 2


# Small statistics of the analysis, on hand examples (mutation testing found them unchecked).

def test_diff_ci_on_a_hand_example():
    # a: process medians 1 and 4 (geomean 2, log sd ln4 / sqrt 2); b: three identical medians of 1.
    # Delta method: var = (2 ln4 / sqrt 2)^2 / 2 = (ln 4)^2, one degree of freedom, t(0.975, 1) = 12.7062.
    d, lo, hi = analysis.diff_ci(np.array([1.0, 4.0]), np.array([1.0, 1.0, 1.0]))
    assert d == pytest.approx(1.0)
    assert (lo, hi) == pytest.approx((1 - 12.706205 * np.log(4), 1 + 12.706205 * np.log(4)))
    d, lo, hi = analysis.diff_ci(np.array([1.0, 1.0, 1.0]), np.array([1.0, 4.0]))  # the other way round
    assert (d, lo, hi) == pytest.approx((-1.0, -1 - 12.706205 * np.log(4), -1 + 12.706205 * np.log(4)))


def test_diff_ci_is_welch_satterthwaite_on_the_geometric_means():
    a, b = np.array([1.0, 1.2, 0.9]), np.array([0.5, 0.52, 0.49, 0.55, 0.47])
    parts = []
    for m in (a, b):
        g = np.exp(np.mean(np.log(m)))
        s2 = g**2 * np.var(np.log(m), ddof=1) / len(m)  # delta method: d exp(x) = exp(x) dx
        parts.append((g, s2, len(m) - 1))
    (ga, sa, na), (gb, sb, nb) = parts
    nu = (sa + sb) ** 2 / (sa**2 / na + sb**2 / nb)
    half = sps.t.ppf(0.975, nu) * np.sqrt(sa + sb)
    assert analysis.diff_ci(a, b) == pytest.approx((ga - gb, ga - gb - half, ga - gb + half))


def test_diff_ci_without_spread():
    assert analysis.diff_ci(np.array([2.0, 2.0]), np.array([1.0, 1.0])) == (1.0, 1.0, 1.0)  # exact
    d, lo, hi = analysis.diff_ci(np.array([2.0]), np.array([1.0, 1.5]))  # one process: CI unknown
    assert d == pytest.approx(2 - np.sqrt(1.5)) and np.isnan(lo) and np.isnan(hi)


def test_diff_ci_covers_the_true_difference_about_95_percent():
    rng = np.random.default_rng(3)
    covered = []
    for _ in range(400):
        a = np.exp(np.log(2e-3) + 0.1 * rng.standard_normal(8))  # true geometric mean 2 ms
        b = np.exp(np.log(1e-3) + 0.05 * rng.standard_normal(8))  # 1 ms
        _, lo, hi = analysis.diff_ci(a, b)
        covered.append(lo <= 1e-3 <= hi)
    assert 0.91 <= np.mean(covered) <= 0.99


def test_rel_rms_on_a_hand_example():
    # model a + c F = 1 + F at F = 1, 2 against t = 2, 4: relative errors 0 and -1/4
    assert analysis.rel_rms(np.array([1.0, 2.0]), np.array([2.0, 4.0]), 1.0, 1.0) == pytest.approx(np.sqrt(1 / 32))
    assert analysis.rel_rms(np.array([1.0, 2.0]), np.array([2.0, 2.0]), -1.0, 2.0) == pytest.approx(0.5)  # errors -1/2, +1/2


def test_crossover_labels_the_first_size_from_which_each_share_stays_under():
    rows = pd.DataFrame({
        "size": ["s1", "s2", "s3", "s4"], "flops_per_step": [4e3, 1e3, 2e3, 3e3],  # unsorted on purpose
        "share": [0.01, 0.5, 0.05, 0.02],  # exactly 5% is not under 5%
        "share_lo": [0.0, 0.5, 0.04, 0.01], "share_hi": [0.04, 0.6, 0.07, 0.06],
    })
    assert analysis.crossover(rows) == ("s4", 3e3, "s3", "s1")
    never = rows.assign(share_hi=0.5, share=0.5)
    label, flops, lo, hi = analysis.crossover(never)
    assert (label, lo, hi) == ("", "s3", "") and np.isnan(flops)
