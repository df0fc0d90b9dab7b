import re

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from fixture_run import PEAK_GFLOPS, TRUTH, make_run

from bench import analysis, plots, report
from bench.results import read_results


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
    path = make_run(tmp_path_factory.mktemp("fx") / "fixture")
    report.write_report(path)
    return path


def test_summary_recovers_truth_from_samples(run_dir):
    res, samples, meta = analysis.load(run_dir)
    by = {s.impl: s for s in analysis.summarize(res, samples, meta)}
    for impl, (a, r, per_op) in TRUTH.items():
        s = by[impl]
        assert s.fixed_us == pytest.approx(a * 1e6, rel=0.1), impl
        assert s.fixed_us_lo <= a * 1e6 * 1.1 and s.fixed_us_hi >= a * 1e6 * 0.9, impl
        assert s.rate_gflops == pytest.approx(r / 1e9, rel=0.1), impl
        assert s.us_per_op == pytest.approx(per_op * 1e6, rel=0.1), impl
    assert "null.noop" not in by


def test_crossover_is_where_share_first_stays_under_5_percent(run_dir):
    res, samples, meta = analysis.load(run_dir)
    sh = analysis.shares(res, meta)
    by = {s.impl: s for s in analysis.summarize(res, samples, meta)}
    # torch.eager has the floor's rate: its share falls under 5% inside the sweep
    w = sh[(sh["impl"] == "torch.eager") & (sh["sweep"] == "width")].sort_values("flops_per_step")
    under = (w["share"] < 0.05).to_numpy()
    first = next(i for i in range(len(under)) if under[i:].all())
    assert 0 < first < len(under) - 1
    assert by["torch.eager"].crossover == w["size"].iloc[first]
    assert by["torch.eager"].crossover_earliest and by["torch.eager"].crossover_latest
    # numpy.loop computes at 2/3 of the floor's rate: a third of the step stays overhead
    assert by["numpy.loop"].crossover == ""
    assert by["jax.scan"].crossover == ""  # the floor has no crossover of its own


def test_share_is_zero_for_the_floor_and_positive_above_it(run_dir):
    res, _, meta = analysis.load(run_dir)
    sh = analysis.shares(res, meta)
    assert (sh.loc[sh["impl"] == "jax.scan", "share"] == 0).all()
    tiny = sh[(sh["size"] == "B1-H1-L2") & (sh["impl"] == "torch.eager")].iloc[0]
    assert tiny["share"] == pytest.approx(1 - tiny["t_floor"] / tiny["median_s"])
    assert tiny["share"] > 0.9


def test_report_and_plots_exist_and_are_not_blank(run_dir):
    assert (run_dir / "report.md").stat().st_size > 1000
    for name in plots.PLOTS:
        img = mpimg.imread(run_dir / f"{name}.png")
        assert img.shape[0] > 200 and img.shape[1] > 200
        assert img[..., :3].std() > 0.05, name  # something was drawn
    assert (run_dir / "analysis.csv").is_file()


def test_headline_numbers_equal_what_the_csv_gives(run_dir):
    text = (run_dir / "report.md").read_text()
    res = read_results(run_dir)
    w = res[(res["sweep"] == "width") & (res["impl"] != "null.noop")]
    big = w[w["flops_per_step"] == w["flops_per_step"].max()]
    for _, r in big.iterrows():
        assert f"{r['impl']} {r['pct_peak']:.0f}%" in text
        assert r["pct_peak"] == pytest.approx(100 * r["flops_per_step"] / r["median_s"] / 1e9 / PEAK_GFLOPS)
    m = re.search(r"Largest slowdown: (\S+) takes [\d.,]+ µs per step at (\S+), (\d+)x", text)
    impl, size, ratio = m.group(1), m.group(2), int(m.group(3))
    at = w[w["size"] == size]
    assert ratio == round(at.loc[at["impl"] == impl, "median_s"].iloc[0] / at["median_s"].min())
    assert (w["median_s"] / w.groupby("size")["median_s"].transform("min")).max() == pytest.approx(
        at.loc[at["impl"] == impl, "median_s"].iloc[0] / at["median_s"].min())
    summary = pd.read_csv(run_dir / "analysis.csv")
    for _, s in summary.iterrows():
        assert f"{s['impl']} {s['fixed_us']:.1f} µs [" in text
    null = res[res["impl"] == "null.noop"]["median_s"].median()
    assert f"null.noop, median over sizes): {null * 1e9:.0f} ns" in text


def test_report_cli_regenerates_and_refuses_non_runs(run_dir, tmp_path):
    from bench.cli import main

    (run_dir / "report.md").unlink()
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "report.md").is_file()
    assert main(["report", str(tmp_path)]) == 2
