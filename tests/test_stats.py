import numpy as np
import pytest

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
