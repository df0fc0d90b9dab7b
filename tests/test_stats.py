import numpy as np
import pytest
from scipy import stats as sps

from bench import stats


def test_pooled_known_values():
    s = stats.pooled(np.array([1.0, 2.0, 3.0, 4.0, 100.0]))
    assert s["pooled_median_s"] == 3.0
    assert s["min_s"] == 1.0
    assert s["mean_s"] == pytest.approx(22.0)
    assert s["iqr_s"] == pytest.approx(2.0)
    assert s["n_samples"] == 5
    assert s["cv"] == pytest.approx(np.std([1, 2, 3, 4, 100], ddof=1) / 22.0)


def test_pooled_empty_gives_nan_and_zero_count():
    s = stats.pooled(np.array([]))
    assert s["n_samples"] == 0 and np.isnan(s["pooled_median_s"])


def test_across_units_center_ci_and_drift():
    u = stats.across_units([1.0, 4.0], [0.1, 0.3])
    assert u["median_s"] == pytest.approx(2.0)  # geometric mean of 1 and 4
    assert u["round_sd"] == pytest.approx(np.log(4) / np.sqrt(2))  # sd of (0, log 4), ddof 1
    assert u["round_iqr_rel"] == pytest.approx(0.2)
    assert u["ci_low_s"] < 2.0 < u["ci_high_s"]


def test_iqr_rel():
    assert stats.iqr_rel(np.array([1.0, 2.0, 3.0, 4.0, 5.0])) == pytest.approx(2.0 / 3.0)


def test_ci_half_width_rule_uses_the_wider_side():
    row = {"median_s": 1.0, "ci_low_s": 0.96, "ci_high_s": 1.06, "round_iqr_rel": 0.0}
    assert "+-6%" in stats.noisy_reason(row)
    row = {"median_s": 1.0, "ci_low_s": 0.96, "ci_high_s": 1.04, "round_iqr_rel": 0.0}
    assert stats.noisy_reason(row) == ""


# Edge cases, each chosen so that a plausible slip in bench/stats.py changes the answer.


def test_pooled_cv_needs_two_samples_and_a_positive_mean():
    assert stats.pooled(np.array([2e-6]))["cv"] == 0.0  # one sample: no spread to speak of
    # sd 1.414e-6 / mean 2e-6
    assert stats.pooled(np.array([1e-6, 3e-6]))["cv"] == pytest.approx(np.sqrt(2) / 2)
    assert stats.pooled(np.array([0.0, 0.0, 0.0]))["cv"] == 0.0  # zero mean: no ratio, not NaN


def test_pooled_empty_names_every_statistic():
    s = stats.pooled(np.array([]))
    assert set(s) == {"pooled_median_s", "iqr_s", "min_s", "mean_s", "cv", "n_samples"}
    assert all(np.isnan(v) for k, v in s.items() if k != "n_samples")


def test_non_finite_medians_give_no_interval():
    assert all(np.isnan(v) for v in stats.log_t_interval(np.array([1.0, np.inf, 2.0])))
    assert all(np.isnan(v) for v in stats.log_t_interval(np.array([])))


def test_across_units_without_iqr_values_has_nan_spread():
    assert np.isnan(stats.across_units([1.0, 2.0], [])["round_iqr_rel"])
    assert np.isnan(stats.across_units([1.0], [0.1])["round_sd"])


def test_iqr_rel_of_a_zero_median_is_nan_not_infinite():
    assert np.isnan(stats.iqr_rel(np.array([0.0, 0.0, 0.0, 1.0, 1.0])))


def test_noisy_reason_messages_word_for_word():
    row = {
        "median_s": 2.0,
        "ci_low_s": 1.9,
        "ci_high_s": 2.3,
        "round_iqr_rel": 0.5,
    }  # CI +15% / -5%
    assert (
        stats.noisy_reason(row)
        == "median CI +-15% > 5%; within-process IQR 50% of the median > 25%"
    )
    one = {
        "median_s": 2.0,
        "ci_low_s": 1.9,
        "ci_high_s": float("nan"),
    }  # no round_iqr_rel key at all
    assert stats.noisy_reason(one) == "one process: CI unknown"
    low = {
        "median_s": 2.0,
        "ci_low_s": 1.6,
        "ci_high_s": 2.02,
        "round_iqr_rel": 0.0,
    }  # the low side is wider
    assert stats.noisy_reason(low) == "median CI +-20% > 5%"


def test_a_zero_or_missing_median_is_not_judged():
    assert (
        stats.noisy_reason(
            {"median_s": 0.0, "ci_low_s": 0.0, "ci_high_s": 0.0, "round_iqr_rel": 0.0}
        )
        == ""
    )
    assert stats.noisy_reason({"median_s": float("nan"), "ci_low_s": 1.0, "ci_high_s": 2.0}) == ""


def test_noisy_thresholds_are_strict(monkeypatch):
    monkeypatch.setattr(stats, "CI_NOISY", 0.25)  # exactly representable, unlike 5%
    at = {"median_s": 1.0, "ci_low_s": 1.0, "ci_high_s": 1.25, "round_iqr_rel": stats.IQR_NOISY}
    assert stats.noisy_reason(at) == ""  # a row exactly at both limits is not noisy
    over = {**at, "ci_high_s": 1.2500001, "round_iqr_rel": stats.IQR_NOISY + 1e-9}
    assert stats.noisy_reason(over).count(">") == 2


def test_welch_needs_two_processes_on_each_side():
    ratio, lo, hi, p = stats.welch_log([1.0], [1.0, 1.0])
    assert ratio == 1.0 and np.isnan(lo) and np.isnan(hi) and np.isnan(p)
    ratio, _, _, p = stats.welch_log([1.0, 1.0], [2.0])  # a ratio, but no test
    assert ratio == pytest.approx(2.0) and np.isnan(p)
    assert all(np.isnan(v) for v in stats.welch_log([], [1.0, 2.0]))
    _, lo, hi, p = stats.welch_log([1.0, 1.1], [1.2, 1.3])  # two each is enough
    assert 0 < p < 1 and lo < hi


def test_welch_on_constant_runs():
    assert stats.welch_log([1.0, 1.0, 1.0], [1.0, 1.0]) == (
        1.0,
        1.0,
        1.0,
        1.0,
    )  # identical: no change
    # different constants: certain change
    ratio, lo, hi, p = stats.welch_log([1.0, 1.0], [2.0, 2.0, 2.0])
    assert (lo, hi, p) == (ratio, ratio, 0.0) and ratio == pytest.approx(2.0)
    # one side varies: a real test
    ratio, lo, hi, p = stats.welch_log([1.0, 1.0, 1.0], [1.0, 1.1, 0.9])
    assert lo < ratio < hi and 0.5 < p < 1
    ratio, lo, hi, p = stats.welch_log([1.0, 1.1, 0.9], [1.0, 1.0, 1.0])  # the other side varies
    assert lo < ratio < hi and 0.5 < p < 1


def test_welch_is_welchs_test_not_students():
    a, b = (
        np.array([1.0, 1.01, 0.99, 1.02, 0.98, 1.0]),
        np.array([1.3, 0.8, 1.1]),
    )  # unequal sizes and spreads
    la, lb = np.log(a), np.log(b)
    va, vb = la.var(ddof=1) / a.size, lb.var(ddof=1) / b.size
    t = (lb.mean() - la.mean()) / np.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))  # Welch-Satterthwaite
    assert stats.welch_log(a, b)[3] == pytest.approx(2 * sps.t.sf(abs(t), dof))
