"""The analysis against known truth: a synthetic run drawn around t = a + FLOPs / r + per-op cost
(tests/fixture_run.py), with the expected numbers computed here from that truth, never from the
code's own formulas."""

import re

import numpy as np
import pandas as pd
import pytest
from conftest import shared_scope
from fixture_run import CONTROL_S, PEAK_GFLOPS, TRUTH, WIDTH, make_run, true_time
from scipy import stats as sps

from bench.report import analysis, plots
from bench.report import render as report
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
    assert a == pytest.approx(30e-6, rel=0.02)  # with f_scale = 1 instead of 0.05: 4.7% off
    assert 1 / c == pytest.approx(120e9, rel=0.02)


@pytest.mark.parametrize("start", [(30e-6, 1 / 120e9), (1e-3, 1e-9), (0.0, 0.0)])
def test_a_start_point_shortens_the_fit_but_does_not_move_it(start):
    """The bootstrap starts each refit from the point fit's (a, c): near, far, or at the bounds,
    the robust fit lands where it lands from its own start."""
    F = np.geomspace(1e3, 1e10, 8)
    t = (30e-6 + F / 120e9) * np.random.default_rng(1).lognormal(0, 0.1, F.size)
    cold = analysis.fit_fixed_cost(F, t)
    assert analysis.fit_fixed_cost(F, t, start) == pytest.approx(cold, rel=1e-5)


@pytest.fixture(scope=shared_scope)
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("fx") / "fixture")


@pytest.fixture(scope=shared_scope)
def reported(run_dir):
    report.write_report(run_dir)
    return run_dir


@pytest.fixture(scope=shared_scope)
def loaded(run_dir):
    res, rounds, meta = analysis.load(run_dir)
    return (
        res,
        rounds,
        meta,
        analysis.shares(res, rounds),
        {s.impl: s for s in analysis.summarize(res, rounds, meta.peaks)},
    )


def width_cfgs():
    return [(f"B{b}-H{h}-L2", MLPConfig(batch=b, width=h, depth=2)) for b, h in WIDTH]


def test_summary_recovers_truth_from_samples(loaded):
    *_, by = loaded
    for impl, (a, r, per_op) in TRUTH.items():
        s = by[impl]
        assert s.fit.fixed.value == pytest.approx(a * 1e6, rel=0.1), impl
        assert s.fit.fixed.lo <= a * 1e6 * 1.1 and s.fit.fixed.hi >= a * 1e6 * 0.9, impl
        assert s.fit.rate.value == pytest.approx(r / 1e9, rel=0.1), impl
        assert s.per_op.value == pytest.approx(per_op * 1e6, rel=0.1), impl
    assert "null.noop" not in by
    assert by["jax.scan"].fit.steps_per_call == 8 and by["numpy.loop"].fit.steps_per_call == 1


def test_overhead_against_the_floor_is_the_true_difference(loaded):
    *_, sh, _ = loaded
    for label, cfg in width_cfgs():
        at = sh[sh["size"] == label].set_index("impl")
        assert (at["floor_impl"] == FLOOR).all()
        for impl in TRUTH:
            want = true_time(impl, cfg) - true_time(FLOOR, cfg)
            row = at.loc[impl]
            assert row["overhead_s"] == pytest.approx(want, abs=0.03 * true_time(impl, cfg)), (
                impl,
                label,
            )
            assert row["overhead_lo_s"] <= row["overhead_s"] <= row["overhead_hi_s"]
            half = (row["overhead_hi_s"] - row["overhead_lo_s"]) / 2
            if impl == FLOOR:  # paired by round with itself: exactly no difference
                assert (row["overhead_s"], half) == (0.0, 0.0)
            else:
                assert 0 < half < 0.05 * true_time(impl, cfg), (
                    impl,
                    label,
                )  # a CI, and a narrow one
            assert row["share"] == pytest.approx(want / true_time(impl, cfg), abs=0.03)


def test_unpaired_overhead_ci_on_request_treats_the_rounds_as_independent(loaded):
    res, rounds, _, sh, _ = loaded
    un = analysis.shares(res, rounds, paired=False)
    floor = un[un["impl"] == FLOOR]
    assert (
        floor["overhead_hi_s"] > floor["overhead_lo_s"]
    ).all()  # the floor against itself, unpaired: a CI
    assert (un["overhead_s"] == sh["overhead_s"]).all()  # the same differences, other intervals
    assert not np.allclose(un["overhead_hi_s"], sh["overhead_hi_s"])


def expected_crossover(impl: str) -> str:
    shares = [1 - true_time(FLOOR, cfg) / true_time(impl, cfg) for _, cfg in width_cfgs()]
    for i in range(len(shares)):
        if all(s < analysis.SHARE_THRESHOLD for s in shares[i:]):
            return width_cfgs()[i][0]
    return ""


def test_crossover_is_where_the_true_share_stays_under_5_percent(loaded):
    *_, by = loaded
    assert (
        expected_crossover("torch.eager") == "B512-H512-L2"
        and expected_crossover("numpy.loop") == ""
    )
    for impl in ("torch.eager", "numpy.loop", "jax.scan"):
        assert by[impl].ends.crossover == expected_crossover(impl), impl
    assert by[FLOOR].ends.crossover == ""  # the floor has no crossover of its own


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
        assert pct == pytest.approx(
            100 * flops_per_step(big_cfg) / true_time(impl, big_cfg) / 1e9 / PEAK_GFLOPS, abs=2
        )
    line = headline(text, "Largest slowdown")
    ratios = {
        (impl, label): true_time(impl, cfg) / min(true_time(i, cfg) for i in TRUTH)
        for label, cfg in width_cfgs()
        for impl in TRUTH
    }
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
        assert csv.loc[impl, "fixed_us"] == pytest.approx(s.fit.fixed.value)


def test_report_cli_regenerates_and_refuses_non_runs(reported, tmp_path):
    from bench.commands import main

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
    # the other way round
    d, lo, hi = analysis.diff_ci(np.array([1.0, 1.0, 1.0]), np.array([1.0, 4.0]))
    assert (d, lo, hi) == pytest.approx(
        (-1.0, -1 - 12.706205 * np.log(4), -1 + 12.706205 * np.log(4))
    )


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


def test_paired_diff_ci_on_hand_examples():
    # b = a / 2 round by round (one slow host stretch slows both): z_r = A log a_r - B log b_r
    # = 2 log a_r - (log a_r - ln 2) = log a_r + ln 2, so var = var(log a) / 3 = (ln 2)^2 / 3 exactly
    a = pd.Series([1.0, 2.0, 4.0], index=[0, 1, 2])
    d, lo, hi = analysis.paired_diff_ci(a, a / 2)
    half = sps.t.ppf(0.975, 2) * np.log(2) / np.sqrt(3)
    assert (d, lo, hi) == pytest.approx((1.0, 1 - half, 1 + half))
    # rounds in another order are matched by their index, not their position
    assert analysis.paired_diff_ci(a.iloc[::-1], a / 2) == pytest.approx((d, lo, hi))
    # the unpaired interval of the same rows is wider: it adds both variances
    _, ulo, uhi = analysis.diff_ci(a.to_numpy(), (a / 2).to_numpy())
    assert uhi - ulo > 1.5 * (hi - lo)
    # the same medians in opposite rounds (anti-correlated): the covariance widens the interval
    b = pd.Series([2.0, 1.0, 0.5], index=[0, 1, 2])
    d, lo, hi = analysis.paired_diff_ci(a, b)
    s = np.log(2)  # sd of log a and of log b; their covariance -s^2
    half = sps.t.ppf(0.975, 2) * np.sqrt((4 * s**2 + 1 * s**2 + 2 * 2 * 1 * s**2) / 3)
    assert (d, lo, hi) == pytest.approx((1.0, 1 - half, 1 + half))


def test_paired_diff_ci_with_extra_rounds_and_too_few_shared_ones():
    rng = np.random.default_rng(1)
    la, lb = rng.normal(0, 0.1, 9), rng.normal(-0.7, 0.1, 5)
    a, b = pd.Series(np.exp(la), index=range(9)), pd.Series(np.exp(lb), index=range(5))
    # a got 4 extra rounds; the base rounds set the sd
    d, lo, hi = analysis.paired_diff_ci(a, b, first=5)
    ga, gb = np.exp(la.mean()), np.exp(lb.mean())
    c = np.cov(la[:5], lb, ddof=1)
    var = ga**2 * c[0, 0] / 9 + gb**2 * c[1, 1] / 5 - 2 * ga * gb * c[0, 1] * 5 / (9 * 5)
    half = sps.t.ppf(0.975, 4) * np.sqrt(var)
    assert (d, lo, hi) == pytest.approx((ga - gb, ga - gb - half, ga - gb + half))
    # two shared rounds are too few to pair: the unpaired interval
    a2, b2 = (
        pd.Series([1.0, 1.1, 0.9], index=[0, 1, 2]),
        pd.Series([0.5, 0.6, 0.4], index=[1, 2, 3]),
    )
    assert analysis.paired_diff_ci(a2, b2) == pytest.approx(
        analysis.diff_ci(a2.to_numpy(), b2.to_numpy())
    )
    same = pd.Series([1.0, 2.0, 4.0])
    assert analysis.paired_diff_ci(same, same) == (0.0, 0.0, 0.0)  # no spread in the difference


@pytest.mark.parametrize("common, own", [(0.0, 0.04), (0.0, 0.15), (0.13, 0.075), (0.15, 0.02)])
@pytest.mark.parametrize("n_a", [5, 9])
def test_paired_diff_ci_covers_the_true_difference_about_95_percent(common, own, n_a):
    # a host effect shared by the round (sd `common`) on top of each process's own (sd `own`): the
    # round_sd of each row is about 0.04 to 0.15, as measured; a row with 4 extra rounds as well
    rng = np.random.default_rng(7)
    covered, width_p, width_u = [], [], []
    for _ in range(800):
        host = common * rng.standard_normal(n_a)
        a = pd.Series(np.exp(np.log(2e-3) + host + own * rng.standard_normal(n_a)))
        b = pd.Series(np.exp(np.log(1.8e-3) + host[:5] + own * rng.standard_normal(5)))
        _, lo, hi = analysis.paired_diff_ci(a, b, first=5)
        _, ulo, uhi = analysis.diff_ci(a.to_numpy(), b.to_numpy(), first=5)
        covered.append(lo <= 0.2e-3 <= hi)
        width_p.append(hi - lo)
        width_u.append(uhi - ulo)
    assert 0.92 <= np.mean(covered) <= 0.98
    if common > own:  # a shared host effect: pairing narrows the interval a lot
        assert np.median(width_p) < 0.75 * np.median(width_u)


def test_rel_rms_on_a_hand_example():
    # model a + c F = 1 + F at F = 1, 2 against t = 2, 4: relative errors 0 and -1/4
    assert analysis.rel_rms(np.array([1.0, 2.0]), np.array([2.0, 4.0]), 1.0, 1.0) == pytest.approx(
        np.sqrt(1 / 32)
    )
    assert analysis.rel_rms(np.array([1.0, 2.0]), np.array([2.0, 2.0]), -1.0, 2.0) == pytest.approx(
        0.5
    )  # errors -1/2, +1/2


def test_crossover_labels_the_first_size_from_which_each_share_stays_under():
    rows = pd.DataFrame(
        {
            "size": ["s1", "s2", "s3", "s4"],
            "flops_per_step": [4e3, 1e3, 2e3, 3e3],  # unsorted on purpose
            "share": [0.01, 0.5, 0.05, 0.02],  # exactly 5% is not under 5%
            "share_lo": [0.0, 0.5, 0.04, 0.01],
            "share_hi": [0.04, 0.6, 0.07, 0.06],
        }
    )
    assert analysis.crossover(rows) == ("s4", 3e3, "s3", "s1")
    never = rows.assign(share_hi=0.5, share=0.5)
    label, flops, lo, hi = analysis.crossover(never)
    assert (label, lo, hi) == ("", "s3", "") and np.isnan(flops)


def _width(t, flops, bytes_, device="cpu"):
    sizes = [f"s{i}" for i in range(len(t))]
    return pd.DataFrame(
        {
            "size": sizes,
            "flops_per_step": flops,
            "median_s": t,
            "bytes_per_step": bytes_,
            "device": device,
            "steps_per_call": 1,
        }
    )


def _units(impl, width, spread=0.01):
    three = np.array([1 - spread, 1.0, 1 + spread])  # three processes around each median
    return {(impl, z): t * three for z, t in zip(width["size"], width["median_s"], strict=True)}


F_EXACT = np.array([1e3, 1e6, 1e8, 1e9, 1e10])


def test_both_fits_recover_an_exact_line():
    # t = 20 µs + F / (100 GFLOP/s) + bytes / (10 GB/s): the second fit takes the bytes out first
    bytes_ = np.array([2e5, 2e5, 2e5, 1e7, 1e8])  # 20 µs of traffic at the small sizes
    t = 20e-6 + F_EXACT / 100e9 + bytes_ / 10e9
    width = _width(t, F_EXACT, bytes_)
    meta = {
        "peaks": {
            "numpy": {"gflops": 1.0, "copy_gbytes_per_s": 10.0, "device": "cpu"},
            "torch": {"gflops": 1.0, "copy_gbytes_per_s": 99.0, "device": "cuda"},
        }
    }
    s = analysis.fit_summary(
        "x", width, _units("x", width), meta["peaks"], np.random.default_rng(0)
    )
    assert s.fixed_minus_bytes_us == pytest.approx(20.0, rel=1e-3) and s.fit_bytes_rms < 1e-4
    assert s.fixed.value > 30 and s.fit_rms > 1e-3  # the first fit does not know the bytes
    assert s.fixed.lo <= s.fixed.value <= s.fixed.hi
    assert s.rate.lo <= s.rate.value <= s.rate.hi < 1.1 * s.rate.lo


def test_the_first_fit_and_its_cis_without_a_bandwidth():
    t = 20e-6 + F_EXACT / 100e9
    width = _width(t, F_EXACT, np.zeros(5))
    s = analysis.fit_summary("x", width, _units("x", width), {}, np.random.default_rng(0))
    assert s.fixed.value == pytest.approx(20.0, rel=1e-3) and s.rate.value == pytest.approx(
        100.0, rel=1e-3
    )
    assert s.fit_rms < 1e-4 and np.isnan(s.fixed_minus_bytes_us) and np.isnan(s.fit_bytes_rms)
    assert 19.0 < s.fixed.lo < 20.0 < s.fixed.hi < 21.0  # +-1% process spread
    assert 97.0 < s.rate.lo < 100.0 < s.rate.hi < 103.0


def test_no_second_fit_when_the_bytes_alone_exceed_a_step():
    t = 20e-6 + F_EXACT / 100e9
    width = _width(t, F_EXACT, np.array([1e3, 1e5, 1e6, 1e7, 1e12]))  # 1 TB at 10 GB/s: 100 s > t
    s = analysis.fit_summary(
        "x",
        width,
        _units("x", width),
        {"c": {"copy_gbytes_per_s": 10.0}},
        np.random.default_rng(0),
    )
    assert np.isnan(s.fixed_minus_bytes_us) and s.fixed.value == pytest.approx(20.0, rel=1e-3)


def test_a_zero_slope_gives_an_unbounded_rate(monkeypatch):
    # c at its bound
    monkeypatch.setattr(
        analysis, "fit_fixed_cost", lambda F, t, start=None: (float(np.min(t)), 0.0)
    )
    width = _width(np.full(5, 1e-3), F_EXACT, np.zeros(5))
    s = analysis.fit_summary("x", width, _units("x", width), {}, np.random.default_rng(0))
    assert s.rate.value == s.rate.lo == s.rate.hi == np.inf


def test_overhead_summary_reads_the_smallest_and_largest_rows():
    width = pd.DataFrame(
        {
            "size": ["small", "mid", "large"],
            "pct_peak": [1.0, 50.0, 90.0],
            "floor_impl": ["c.ref"] * 3,
            "t_floor": [1e-6, 1e-5, 1e-3],
            "overhead_s": [2e-6, 3e-6, 4e-6],
            "overhead_lo_s": [1e-6, 2e-6, 3e-6],
            "overhead_hi_s": [3e-6, 4e-6, 5e-6],
            "flops_per_step": [1e3, 1e6, 1e9],
            "share": [0.5, 0.2, 0.01],
            "share_lo": [0.4, 0.1, 0.0],
            "share_hi": [0.6, 0.3, 0.02],
        }
    )
    s = analysis.overhead_summary("x", width)
    assert (s.smallest_size, s.largest_size, s.pct_peak_largest) == ("small", "large", 90.0)
    assert (s.overhead_small.value, s.overhead_small.lo, s.overhead_small.hi) == pytest.approx(
        (2.0, 1.0, 3.0), rel=1e-12
    )
    assert (s.overhead_large.value, s.overhead_large.lo, s.overhead_large.hi) == pytest.approx(
        (4.0, 3.0, 5.0), rel=1e-12
    )
    assert s.crossover == "large"
    floor = analysis.overhead_summary("c.ref", width)  # the floor has no overhead against itself
    assert (
        np.isnan(floor.overhead_small.value)
        and np.isnan(floor.overhead_large.value)
        and floor.crossover == ""
    )
    # no floor in the run
    none = analysis.overhead_summary("x", width.assign(floor_impl=None, t_floor=np.nan))
    assert (
        np.isnan(none.overhead_small.value)
        and np.isnan(none.overhead_large.value)
        and none.crossover == ""
    )


def test_peak_and_bandwidth_are_the_best_on_the_rows_device():
    meta = {
        "peaks": {
            "numpy": {"gflops": 330.0, "copy_gbytes_per_s": 12.0},
            "c": {"gflops": 320.0, "device": "cpu"},
            "torch": {"gflops": 5e4, "copy_gbytes_per_s": 3e3, "device": "cuda"},
            "jax": {"error": "x"},
        }
    }
    assert (
        analysis.best_peak_gflops(meta["peaks"]) == 330.0
        and analysis.best_peak_gflops(meta["peaks"], "cuda") == 5e4
    )  # no device: cpu
    assert (
        analysis.copy_bandwidth(meta["peaks"]) == 12.0
        and analysis.copy_bandwidth(meta["peaks"], "cuda") == 3e3
    )
    assert np.isnan(analysis.best_peak_gflops({"jax": {"error": "x"}}))
    assert np.isnan(analysis.best_peak_gflops({})) and np.isnan(analysis.copy_bandwidth({}))


# shares() and summarize() on a hand-made run: every number below follows from the rows written here.


def _hand_run():
    """Width sweep (3 sizes, exact lines) and depth sweep (3 depths) for x; y with a depth sweep only;
    c.ref the floor; a control; a failed row. Each row's process medians are 0.98, 1.00 and 1.02 of its median."""
    rows, rounds = [], []

    def add(impl, size, sweep, flops, t, ops=10, status="ok", first=0.1, k=1, batch=8, width=8):
        role = {"c.ref": "floor", "null.noop": "control"}.get(impl, "")
        rows.append(
            {
                "model": "mlp",
                "impl": impl,
                "role": role,
                "size": size,
                "sweep": sweep,
                "device": "cpu",
                "status": status,
                "flops_per_step": flops,
                "median_s": t,
                "ops_per_step": ops,
                "first_call_s": first,
                "steps_per_call": k,
                "batch": batch,
                "width": width,
                "pct_peak": 50.0,
                "bytes_per_step": 0.0,
            }
        )
        if status == "ok":
            rounds.extend(
                {"impl": impl, "size": size, "median_s": t * f} for f in (0.98, 1.0, 1.02)
            )

    for i, F in enumerate([1e6, 1e8, 1e10]):
        add(
            "x",
            f"w{i}",
            "width",
            F,
            50e-6 + F / 100e9,
            first=2.0 if i == 1 else 0.5,
            k=4,
            width=2**i,
        )
        add("c.ref", f"w{i}", "width", F, 10e-6 + F / 100e9, width=2**i)
        add("null.noop", f"w{i}", "width", F, 1e-7, width=2**i)
        add("jax.jit", f"w{i}", "width", F, 1.0, status="error", first=99.0, width=2**i)
    for d in (3, 4, 5):  # two extra layers of 1e6 FLOPs and 2 ops each: 5 µs per op beyond compute
        add(
            "x",
            f"d{d}",
            "depth",
            1e6 * (d - 2),
            50e-6 + 1e6 * (d - 2) / 100e9 + 5e-6 * 2 * d,
            ops=2 * d,
        )
        add(
            "y",
            f"d{d}",
            "depth",
            1e6 * (d - 2),
            50e-6 + 1e6 * (d - 2) / 100e9 + 5e-6 * 2 * d,
            ops=2 * d,
        )
    return pd.DataFrame(rows), pd.DataFrame(rounds)


def test_shares_against_the_floor_on_a_hand_made_run():
    results, rounds = _hand_run()
    sh = analysis.shares(results, rounds).set_index(["impl", "size"])
    assert set(sh.index.get_level_values("impl")) == {
        "x",
        "y",
        "c.ref",
    }  # no control, no failed row
    row = sh.loc[("x", "w0")]
    t, floor = 50e-6 + 1e6 / 100e9, 10e-6 + 1e6 / 100e9
    assert (row["floor_impl"], row["t_floor"]) == ("c.ref", pytest.approx(floor))
    assert row["overhead_s"] == pytest.approx(t - floor) and row["share"] == pytest.approx(
        (t - floor) / t
    )
    _, lo, hi = analysis.diff_ci(
        np.array([0.98, 1.0, 1.02]) * t, np.array([0.98, 1.0, 1.02]) * floor
    )
    assert (row["overhead_lo_s"], row["overhead_hi_s"]) == pytest.approx((lo, hi))
    assert (row["share_lo"], row["share_hi"]) == pytest.approx((lo / t, hi / t))
    assert row["slowdown"] == pytest.approx(t / floor) and row["fastest_impl"] == "c.ref"
    assert sh.loc[("c.ref", "w0"), "overhead_s"] == 0 and sh.loc[("c.ref", "w0"), "slowdown"] == 1
    no_rounds = analysis.shares(results, None)
    assert no_rounds["overhead_s"].notna().any() and no_rounds["overhead_lo_s"].isna().all()
    no_floor = analysis.shares(results[results["impl"] != "c.ref"], rounds)
    assert no_floor["floor_impl"].isna().all() and no_floor["t_floor"].isna().all()
    assert (no_floor["fastest_impl"] == "x").all()


def test_summarize_on_a_hand_made_run():
    results, rounds = _hand_run()
    by = {s.impl: s for s in analysis.summarize(results, rounds, {})}
    assert set(by) == {
        "x",
        "c.ref",
        "jax.jit",
        "y",
    }  # the control is left out, not the rows after it
    x = by["x"]
    assert x.fit.fixed.value == pytest.approx(50.0, rel=1e-3) and x.fit.rate.value == pytest.approx(
        100.0, rel=1e-3
    )
    assert (x.per_op.value, x.per_op.lo, x.per_op.hi) == pytest.approx(
        (5.0, 5.0, 5.0), rel=1e-3
    )  # exact data
    assert (x.fit.steps_per_call, x.first_call_s_max) == (
        4,
        2.0,
    )  # its own rows only (jax.jit's is 99 s)
    assert (
        x.ends.overhead_small.value == pytest.approx(40.0)
        and x.ends.smallest_size == "w0"
        and x.ends.largest_size == "w2"
    )
    # the CI comes from the process medians
    assert x.ends.overhead_small.lo < 40.0 < x.ends.overhead_small.hi
    assert np.isnan(by["jax.jit"].fit.fixed.value) and by["jax.jit"].first_call_s_max == 99.0
    # y has no width sweep, so no rate to take compute out with: 1e-5 s per depth step over 2 ops
    y = by["y"]
    assert np.isnan(y.fit.rate.value) and (
        y.per_op.value,
        y.per_op.lo,
        y.per_op.hi,
    ) == pytest.approx((10.0,) * 3, rel=1e-9)
    again = {s.impl: s for s in analysis.summarize(results, rounds, {})}
    # the bootstrap is seeded: reports regenerate exactly
    assert again["x"].fit.fixed.lo == x.fit.fixed.lo
    frame = analysis.summary_frame(list(by.values()))
    assert list(frame["impl"]) == list(by) and frame.loc[0, "fixed_us"] == x.fit.fixed.value


def test_roles_come_from_the_runs_own_role_column_not_the_registry():
    results = pd.DataFrame(
        {
            "model": ["mlp"] * 4,
            "impl": ["c.ref", "jax.scan", "null.noop", "x"],
            "role": ["", "fused", "control", "floor"],
        }
    )  # not what today's registry says
    r = analysis.roles(results)
    assert r.floor == {"x"} and r.control == {"null.noop"}
    assert analysis.roles(results.assign(role="")) == analysis.Roles(frozenset(), frozenset())


def test_an_old_runs_report_does_not_change_when_a_registry_role_changes(
    run_dir, tmp_path, monkeypatch
):
    import dataclasses
    import shutil

    from models import registry

    before = report.write_report(shutil.copytree(run_dir, tmp_path / "a")).read_text()
    for (
        model
    ) in registry.REGISTRY:  # the floor demoted and the control promoted, after the run was made
        impls = registry.REGISTRY[model]
        monkeypatch.setitem(impls, "c.ref", dataclasses.replace(impls["c.ref"], role=""))
        monkeypatch.setitem(
            impls, "null.noop", dataclasses.replace(impls["null.noop"], role="floor")
        )
    after = report.write_report(shutil.copytree(run_dir, tmp_path / "b")).read_text()
    assert after.replace(str(tmp_path / "b"), "RUN") == before.replace(str(tmp_path / "a"), "RUN")
    assert "Overhead per step against the C floor" in after


def test_bootstrap_cis_are_the_2_5_and_97_5_percentiles_of_the_refits(monkeypatch):
    calls = iter(range(analysis.N_BOOT + 2))

    def fake_fit(
        F, t, start=None
    ):  # the point fit: 5 µs and 1 ps/FLOP; refit k: k µs and k ps/FLOP; the bytes fit: 301
        k = next(calls)
        return (k or 5) * 1e-6, (k or 1) * 1e-12

    monkeypatch.setattr(analysis, "fit_fixed_cost", fake_fit)
    width = _width(20e-6 + F_EXACT / 100e9, F_EXACT, np.zeros(5))
    s = analysis.fit_summary(
        "x",
        width,
        _units("x", width),
        {"c": {"copy_gbytes_per_s": 10.0}},
        np.random.default_rng(0),
    )
    k = np.arange(1, analysis.N_BOOT + 1)
    lo, hi = np.percentile(k, 2.5), np.percentile(k, 97.5)  # 8.475 and 292.525 for 300 refits
    assert (s.fixed.value, s.fixed.lo, s.fixed.hi) == pytest.approx((5.0, lo, hi), rel=1e-12)
    assert s.rate.value == pytest.approx(1e3, rel=1e-12)  # 1 / (1 ps) in GFLOP/s
    assert (s.rate.lo, s.rate.hi) == pytest.approx((1e3 / hi, 1e3 / lo), rel=1e-12)
    assert s.fixed_minus_bytes_us == pytest.approx(analysis.N_BOOT + 1.0, rel=1e-12)


def test_the_bytes_fit_uses_the_bandwidth_of_the_rows_device():
    bytes_ = np.array([2e5, 2e5, 2e5, 1e7, 1e8])
    t = 20e-6 + F_EXACT / 100e9 + bytes_ / 10e9
    width = _width(t, F_EXACT, bytes_, device="cuda")
    meta = {
        "peaks": {
            "numpy": {"copy_gbytes_per_s": 99.0},
            "torch": {"copy_gbytes_per_s": 10.0, "device": "cuda"},
        }
    }
    s = analysis.fit_summary(
        "x", width, _units("x", width), meta["peaks"], np.random.default_rng(0)
    )
    assert s.fixed_minus_bytes_us == pytest.approx(20.0, rel=1e-3)


def test_the_first_fit_is_bounded_at_zero():
    F = np.geomspace(1e6, 1e10, 5)
    a, c = analysis.fit_fixed_cost(F, -1e-6 + F / 1e11)  # the best line has a negative intercept
    assert 0 <= a < 1e-12 and c > 0  # at the bound, not at -1 µs


def test_width_rows_are_the_width_and_custom_sizes_by_flops():
    df = pd.DataFrame(
        {
            "size": ["a", "b", "c", "d"],
            "sweep": ["width", "depth", "custom", "width"],
            "flops_per_step": [3.0, 1.0, 2.0, 1.0],
        }
    )
    assert list(analysis.width_rows(df)["size"]) == ["d", "c", "a"]


def test_depth_points_keep_one_row_per_size():
    rows = pd.DataFrame(
        {
            "size": ["s2", "s2", "s4", "s8", "other"],
            "sweep": ["width", "depth", "depth", "depth", "width"],
            "batch": [8, 8, 8, 8, 16],
            "width": [8, 8, 8, 8, 8],
            "ops_per_step": [2, 2, 4, 8, 2],
        }
    )
    assert list(analysis.depth_points(rows)["size"]) == ["s2", "s4", "s8"]


def test_slow_share_counts_processes_slowed_against_their_rows_fastest():
    from bench.stats import slow_share

    # hand-made: a row of 4 processes (1.0, 1.1, 1.35, 2.0: two at 1.3x or more), one of 2 (2.0, 2.58:
    # 1.29x, none); a 1-process row tells nothing and is left out
    assert slow_share([[1.0, 1.1, 1.35, 2.0], [2.0, 2.58], [5.0]]) == pytest.approx(2 / 6)
    assert slow_share([[1.0, 2.6], [3.0, 3.0]]) == pytest.approx(1 / 4)
    assert np.isnan(slow_share([[3.0]])) and np.isnan(slow_share([]))


def test_precision_headline_names_the_slow_processes(tmp_path, monkeypatch):
    # a fixture run with a process drift of 0.3, so that some processes are slow and the share can be wrong
    monkeypatch.setattr("fixture_run.PROCESS_SD", 0.3)
    run = make_run(tmp_path / "run")
    report.write_report(run)
    line = headline((run / "report.md").read_text(), "Precision")
    share = re.search(r"(\d+)% of the processes 1\.3x or more their row's fastest", line)
    r = pd.read_csv(run / "rounds.csv")
    r = r[r["impl"] != "null.noop"]
    want = (r["median_s"] / r.groupby(["impl", "size"])["median_s"].transform("min") >= 1.3).mean()
    assert share and 0 < want and int(share.group(1)) == round(100 * want)
