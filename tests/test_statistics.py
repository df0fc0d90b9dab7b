"""The error bars and the change test, validated the way users use them: on synthetic runs with
the noise structure of real ones (a per-process offset, lognormal per-sample noise, rare large
outliers), A/A pairs must rarely be called changed, a planted 10% slowdown must be found, and the
95% CI must cover the truth about 95% of the time. Wave 1's method (Mann-Whitney on pooled
samples, all rounds in one process) fails the same check: shown below, so the check can fail."""

import numpy as np
import pytest
from scipy import stats as sps

from bench import stats
from bench.report.compare import THRESHOLD, verdict
from bench.sizes import DEFAULT_ROUNDS

PROCESS_SD = 0.025  # log-scale offset shared by every sample of one worker process
ROUND_SD = 0.035  # ... and by every sample of one round (in wave 1, several rounds shared a process)
SAMPLE_SD = 0.08  # per-sample lognormal noise
OUTLIERS, OUTLIER_X = 0.01, 4.0  # 1% of samples are 4x slower (interrupts, GC)
N_SAMPLES = 60  # samples per round
PAIRS = 300


def run(rng, rounds: int, slowdown: float = 1.0, shared_process: bool = False) -> list[np.ndarray]:
    """One synthetic run of one case: per-step samples of each round. Fresh process per round,
    or (wave 1) every round inside one process that shares its offset."""
    process = rng.normal(0, PROCESS_SD)
    out = []
    for _ in range(rounds):
        offset = (process if shared_process else rng.normal(0, PROCESS_SD)) + rng.normal(0, ROUND_SD)
        x = slowdown * np.exp(offset + rng.normal(0, SAMPLE_SD, N_SAMPLES))
        x[rng.random(N_SAMPLES) < OUTLIERS] *= OUTLIER_X
        out.append(x)
    return out


def called(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    """This harness's rule (bench compare): Welch on log process medians, p < 0.05 and > 3%."""
    ratio, _, _, p = stats.welch_log([np.median(r) for r in a], [np.median(r) for r in b])
    return verdict(ratio, p, THRESHOLD) != ""


def called_wave1(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    """Wave 1's rule: two-sided Mann-Whitney U on all per-step samples pooled, p < 0.01."""
    return sps.mannwhitneyu(np.concatenate(a), np.concatenate(b)).pvalue < 0.01


def rate(rule, slowdown: float, rounds: int, seed: int, shared_process: bool = False) -> float:
    rng = np.random.default_rng(seed)
    hits = [rule(run(rng, rounds, 1.0, shared_process), run(rng, rounds, slowdown, shared_process))
            for _ in range(PAIRS)]
    return float(np.mean(hits))


def test_default_rounds_are_processes_enough():
    assert DEFAULT_ROUNDS >= 8  # at 8: A/A 4.7%, power for 10% 0.98, coverage 0.94 in this simulation


def test_aa_runs_are_rarely_called_changed():
    assert rate(called, 1.0, DEFAULT_ROUNDS, seed=1) <= 0.05


def test_a_planted_10_percent_slowdown_is_found():
    assert rate(called, 1.10, DEFAULT_ROUNDS, seed=2) >= 0.90


def test_ci_of_the_median_covers_the_truth_about_95_percent():
    rng = np.random.default_rng(3)
    # the truth: the center of the population of process medians, from many processes
    truth = np.exp(np.mean(np.log([np.median(r) for r in run(rng, 20000)])))
    covered = []
    for _ in range(400):
        _, lo, hi = stats.log_t_interval(np.array([np.median(r) for r in run(rng, DEFAULT_ROUNDS)]))
        covered.append(lo <= truth <= hi)
    assert 0.90 <= np.mean(covered) <= 0.98


def test_wave1_method_fails_the_same_check():
    """Pooled samples in one process: almost every A/A pair looks 'significant'."""
    assert rate(called_wave1, 1.0, 3, seed=4, shared_process=True) > 0.30


def test_pooled_median_ci_of_wave1_undercovers():
    """Wave 1's binomial CI of the pooled median, on the same structure, covers far below 95%."""
    rng = np.random.default_rng(5)
    truth = np.exp(np.mean(np.log([np.median(r) for r in run(rng, 20000)])))
    covered = []
    for _ in range(300):
        x = np.sort(np.concatenate(run(rng, 3, shared_process=True)))
        k = int(sps.binom.ppf(0.025, x.size, 0.5))
        covered.append(x[k] <= truth <= x[x.size - k - 1])
    assert np.mean(covered) < 0.8


@pytest.mark.parametrize("r", [2, 5, 10])
def test_t_interval_matches_a_hand_computation(r):
    m = np.array([1.0, 1.1, 0.95, 1.05, 1.2, 0.9, 1.0, 1.02, 0.98, 1.01])[:r]
    center, lo, hi = stats.log_t_interval(m)
    logs = np.log(m)
    half = sps.t.ppf(0.975, r - 1) * logs.std(ddof=1) / np.sqrt(r)
    assert center == pytest.approx(np.exp(logs.mean()))
    assert (lo, hi) == pytest.approx((np.exp(logs.mean() - half), np.exp(logs.mean() + half)))


def test_one_process_has_no_ci_and_is_flagged():
    center, lo, hi = stats.log_t_interval(np.array([2.0]))
    assert center == 2.0 and np.isnan(lo) and np.isnan(hi)
    row = stats.across_units([2.0], [0.01])
    assert "CI unknown" in stats.noisy_reason(row)


def test_noisy_rules_measure_precision_not_the_tail():
    steady = stats.across_units([1.0, 1.01, 0.99, 1.0, 1.02], [0.05] * 5)
    assert stats.noisy_reason(steady) == ""
    drifting = stats.across_units([1.0, 1.3, 0.8, 1.1, 0.7], [0.05] * 5)
    assert "median CI" in stats.noisy_reason(drifting)
    spread = stats.across_units([1.0, 1.01, 0.99, 1.0, 1.02], [0.4] * 5)
    assert "within-process IQR" in stats.noisy_reason(spread)


def test_welch_ratio_and_ci_on_known_values():
    a, b = np.array([1.0, 1.02, 0.98, 1.01]), np.array([2.0, 2.04, 1.96, 2.02])
    ratio, lo, hi, p = stats.welch_log(a, b)
    assert ratio == pytest.approx(2.0, rel=1e-9) and lo < 2.0 < hi and p < 1e-6
    assert verdict(ratio, p, THRESHOLD) == "slower" and verdict(1 / ratio, p, THRESHOLD) == "faster"
    assert verdict(1.02, 1e-9, THRESHOLD) == ""  # certain but too small to act on
    assert np.isnan(stats.welch_log(a[:1], b)[3])  # one process: no test
