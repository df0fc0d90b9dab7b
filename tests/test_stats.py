import numpy as np
import pytest

from bench import stats


def test_summarize_known_values():
    s = stats.summarize(np.array([1.0, 2.0, 3.0, 4.0, 100.0]))
    assert s["median_s"] == 3.0
    assert s["min_s"] == 1.0
    assert s["mean_s"] == pytest.approx(22.0)
    assert s["iqr_s"] == pytest.approx(2.0)
    assert s["n_samples"] == 5
    assert s["cv"] == pytest.approx(np.std([1, 2, 3, 4, 100], ddof=1) / 22.0)


def test_summarize_empty_gives_nan_and_zero_count():
    s = stats.summarize(np.array([]))
    assert s["n_samples"] == 0 and np.isnan(s["median_s"])


@pytest.mark.parametrize("n", [10, 31, 200])
def test_median_ci_covers_true_median_at_least_95_percent(n):
    rng = np.random.default_rng(n)
    hits = sum(
        lo <= np.log(2) <= hi
        for lo, hi in (stats.median_ci(rng.exponential(size=n)) for _ in range(2000))
    )
    assert hits / 2000 >= 0.935  # 95% nominal, binomial sampling error of 2000 draws


def test_median_ci_is_symmetric_in_ranks_and_brackets_median():
    x = np.arange(50, dtype=float)
    lo, hi = stats.median_ci(x)
    assert lo < np.median(x) < hi
    assert (lo - x[0]) == pytest.approx(x[-1] - hi)


def test_median_ci_small_n_falls_back_to_range():
    assert stats.median_ci(np.array([3.0, 1.0, 2.0])) == (1.0, 3.0)


def test_noisy_flags_wide_spread_and_not_steady():
    steady = stats.summarize(np.random.default_rng(0).normal(1.0, 0.01, 500))
    assert stats.noisy_reason(steady) == ""
    wild = stats.summarize(np.random.default_rng(0).lognormal(0, 1.0, 500))
    assert "cv" in stats.noisy_reason(wild)


def test_round_spread():
    assert stats.round_spread([1.0, 1.1, 0.9]) == pytest.approx(0.2)
    assert stats.round_spread([2.0]) == 0.0


def test_noisy_flags_rounds_that_disagree():
    steady = stats.summarize(np.random.default_rng(0).normal(1.0, 0.01, 500))
    assert "round medians" in stats.noisy_reason(steady, spread=0.3)
    assert stats.noisy_reason(steady, spread=0.05) == ""
