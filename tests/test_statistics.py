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
from bench.sizes import DEFAULT_MAX_ROUNDS, DEFAULT_ROUNDS
from bench.sweep.plan import TARGET_CI

DRIFTS = (
    0.04,
    0.15,
)  # sd of the log process medians: synthetic runs of wave 2, and the 2-thread committed runs
SAMPLE_SD = 0.08  # per-sample lognormal noise
OUTLIERS, OUTLIER_X = 0.01, 4.0  # 1% of samples are 4x slower (interrupts, GC)
N_SAMPLES = 60  # samples per round
PAIRS = 300


def one_round(rng, offset: float, slowdown: float) -> np.ndarray:
    x = slowdown * np.exp(offset + rng.normal(0, SAMPLE_SD, N_SAMPLES))
    x[rng.random(N_SAMPLES) < OUTLIERS] *= OUTLIER_X
    return x


def run(
    rng, rounds: int, slowdown: float = 1.0, shared_process: bool = False, drift: float = 0.04
) -> list[np.ndarray]:
    """One synthetic run of one case: per-step samples of each round. Fresh process per round
    (its own log offset, sd `drift`), or (wave 1) every round inside one process sharing it."""
    process = rng.normal(0, drift)
    return [
        one_round(rng, process if shared_process else rng.normal(0, drift), slowdown)
        for _ in range(rounds)
    ]


def adaptive_run(rng, slowdown: float = 1.0, drift: float = 0.04) -> list[np.ndarray]:
    """The default schedule (bench/sweep/plan.py): DEFAULT_ROUNDS base processes, then the extra ones
    stats.rounds_for asks for, decided once from the base processes' medians."""
    out = run(rng, DEFAULT_ROUNDS, slowdown, drift=drift)
    n = stats.rounds_for([np.median(r) for r in out], TARGET_CI, DEFAULT_MAX_ROUNDS)
    return out + run(rng, n - DEFAULT_ROUNDS, slowdown, drift=drift)


def medians(r: list[np.ndarray]) -> np.ndarray:
    return np.array([np.median(x) for x in r])


def called(a: list[np.ndarray], b: list[np.ndarray], first: int | None = None) -> bool:
    """This harness's rule (bench compare): Welch on log process medians, p < 0.05 and > 3% (each
    side's sd from its `first` base processes when it has more: Stein's two-stage test)."""
    ratio, _, _, p = stats.welch_log(medians(a), medians(b), first_a=first, first_b=first)
    return verdict(ratio, p, THRESHOLD) != ""


def called_wave1(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    """Wave 1's rule: two-sided Mann-Whitney U on all per-step samples pooled, p < 0.01."""
    return sps.mannwhitneyu(np.concatenate(a), np.concatenate(b)).pvalue < 0.01


def rate(rule, slowdown: float, rounds: int, seed: int, shared_process: bool = False) -> float:
    rng = np.random.default_rng(seed)
    hits = [
        rule(run(rng, rounds, 1.0, shared_process), run(rng, rounds, slowdown, shared_process))
        for _ in range(PAIRS)
    ]
    return float(np.mean(hits))


def adaptive_rate(slowdown: float, drift: float, seed: int, pairs: int = PAIRS) -> float:
    rng = np.random.default_rng(seed)
    return float(
        np.mean(
            [
                called(
                    adaptive_run(rng, 1.0, drift),
                    adaptive_run(rng, slowdown, drift),
                    DEFAULT_ROUNDS,
                )
                for _ in range(pairs)
            ]
        )
    )


def test_base_rounds_and_the_extension_are_processes_enough():
    assert DEFAULT_ROUNDS >= 5 and DEFAULT_MAX_ROUNDS >= 3 * DEFAULT_ROUNDS


@pytest.mark.parametrize("drift", DRIFTS)
def test_aa_runs_are_called_changed_at_most_at_the_nominal_5_percent(drift):
    """Stein's two-stage test with the smaller side's df is conservative (normal logs), so an A/A
    rate sits at 5% or below (the 3% threshold too); 600 simulated pairs must not put it
    significantly above 5% (binomial, one-sided p > 0.05: 39 of 600 or fewer). Every unit's sd in
    place of the base rounds' gives 5.7% at 0.04 over 3,000 pairs (the test below fails it), and
    Welch-Satterthwaite's df in place of the smaller side's 5.6% (bench/stats.two_run_df)."""
    pairs = 600
    k = round(adaptive_rate(1.0, drift, seed=1, pairs=pairs) * pairs)
    assert sps.binomtest(k, pairs, 0.05, alternative="greater").pvalue > 0.05, k


def test_the_naive_test_after_the_extension_is_liberal():
    """Welch over every unit's sd, after an extension decided from the base units' sd: above 5%."""
    rng = np.random.default_rng(8)
    hits = [called(adaptive_run(rng, 1.0, 0.04), adaptive_run(rng, 1.0, 0.04)) for _ in range(3000)]
    assert np.mean(hits) > 0.052


def test_a_planted_10_percent_slowdown_is_found_at_the_low_drift():
    assert adaptive_rate(1.10, 0.04, seed=2) >= 0.90


@pytest.mark.parametrize("drift", DRIFTS)
def test_ci_of_the_median_covers_the_truth_about_95_percent(drift):
    rng = np.random.default_rng(3)
    # the truth: the center of the population of process medians, from many processes
    truth = np.exp(np.mean(np.log(medians(run(rng, 20000, drift=drift)))))
    covered = []
    for _ in range(400):
        _, lo, hi = stats.log_t_interval(
            medians(adaptive_run(rng, drift=drift)), first=DEFAULT_ROUNDS
        )
        covered.append(lo <= truth <= hi)
    assert 0.90 <= np.mean(covered) <= 0.98


def test_the_extension_asks_more_processes_only_where_the_ci_is_wide():
    rng = np.random.default_rng(6)
    narrow = [
        stats.rounds_for(
            medians(run(rng, DEFAULT_ROUNDS, drift=0.005)), TARGET_CI, DEFAULT_MAX_ROUNDS
        )
        for _ in range(50)
    ]
    wide = [
        stats.rounds_for(
            medians(run(rng, DEFAULT_ROUNDS, drift=0.15)), TARGET_CI, DEFAULT_MAX_ROUNDS
        )
        for _ in range(50)
    ]
    assert set(narrow) == {DEFAULT_ROUNDS} and np.median(wide) == DEFAULT_MAX_ROUNDS


@pytest.mark.parametrize("sd", (0.045, 0.055, 0.065, 0.08))
def test_a_row_given_the_rounds_it_was_planned_is_not_noisy_whatever_they_measure(sd):
    """TARGET_CI is the noisy threshold itself: the interval a row reports after its extra rounds is
    Stein's, its base rounds' sd over sqrt(all its rounds), fixed when they are planned; so the
    extra rounds, fast or slow, cannot make a planned row noisy."""
    rng = np.random.default_rng(11)
    z = rng.normal(0, 1, DEFAULT_ROUNDS)
    base = np.exp(sd * (z - z.mean()) / z.std(ddof=1))  # base rounds whose logs' sd is exactly sd
    n = stats.rounds_for(base, TARGET_CI, DEFAULT_MAX_ROUNDS)
    assert DEFAULT_ROUNDS < n <= DEFAULT_MAX_ROUNDS
    for extra in (np.exp(rng.normal(0, 0.3, n - DEFAULT_ROUNDS)), np.full(n - DEFAULT_ROUNDS, 3.0)):
        center, lo, hi = stats.log_t_interval(np.concatenate([base, extra]), first=DEFAULT_ROUNDS)
        assert stats.noisy_reason({"median_s": center, "ci_low_s": lo, "ci_high_s": hi}) == ""
    # one round fewer than planned would leave it noisy: the plan is the fewest that do not
    center, lo, hi = stats.log_t_interval(
        np.concatenate([base, np.ones(n - 1 - DEFAULT_ROUNDS)]), first=DEFAULT_ROUNDS
    )
    assert stats.noisy_reason({"median_s": center, "ci_low_s": lo, "ci_high_s": hi}).startswith(
        "median CI"
    )


def test_rounds_for_by_hand():
    m = np.exp([0.0, 0.1, -0.1, 0.05, -0.05, 0.0])  # sd of the logs 0.0707
    sd = np.log(m).std(ddof=1)
    # the interval the row will report (Stein's): t with the first 6 processes' 5 degrees of freedom
    want = next(n for n in range(6, 100) if sps.t.ppf(0.975, 5) * sd / np.sqrt(n) <= np.log(1.04))
    # 2.571 x 0.0707 / sqrt(22) = 0.0388 <= log 1.04 = 0.0392
    assert stats.rounds_for(m, 0.04, 100) == want == 22
    # 22 processes
    _, lo, hi = stats.log_t_interval(np.concatenate([m, np.exp(np.zeros(16))]), first=6)
    assert np.log(hi) - np.log(lo) == pytest.approx(2 * sps.t.ppf(0.975, 5) * sd / np.sqrt(22))
    assert stats.rounds_for(m, 0.04, 10) == 10 and stats.rounds_for(m, 0.5, 10) == 6
    assert stats.rounds_for(m[:1], 0.04, 10) == 1


@pytest.mark.parametrize("drift", DRIFTS)
def test_the_detectable_change_compare_prints_is_the_simulated_80_percent_power_point(drift):
    """compare's `detectable` (at each pair's own sd and n) against the truth: the slowdown that the
    adaptive schedule and compare's rule call in 80% of simulated pairs, found by bisection."""
    rng = np.random.default_rng(7)
    printed = []
    for _ in range(200):
        a, b = medians(adaptive_run(rng, 1.0, drift)), medians(adaptive_run(rng, 1.0, drift))
        (sa, dfa), (sb, dfb) = (
            stats.spread(np.log(a), DEFAULT_ROUNDS),
            stats.spread(np.log(b), DEFAULT_ROUNDS),
        )
        printed.append(
            stats.detectable_change(
                stats.Drift(sa, a.size, dfa), stats.Drift(sb, b.size, dfb), THRESHOLD
            )
        )
    lo, hi = 0.0, 0.6
    for i in range(8):
        mid = (lo + hi) / 2
        lo, hi = (
            (lo, mid)
            if adaptive_rate(1 + mid, drift, seed=100 + i, pairs=400) >= 0.8
            else (mid, hi)
        )
    truth = (lo + hi) / 2
    assert np.median(printed) == pytest.approx(truth, rel=0.2), (np.median(printed), truth)


def test_wave1_method_fails_the_same_check():
    """Pooled samples in one process: almost every A/A pair looks 'significant'."""
    assert rate(called_wave1, 1.0, 3, seed=4, shared_process=True) > 0.30


def test_pooled_median_ci_of_wave1_undercovers():
    """Wave 1's binomial CI of the pooled median, on the same structure, covers far below 95%."""
    rng = np.random.default_rng(5)
    truth = np.exp(np.mean(np.log(medians(run(rng, 20000)))))
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


def test_detectable_change_by_hand():
    # sd 0.1 on both sides, 8 processes each: se 0.05, Welch df 14; t(0.975, 14) 2.1448, t(0.8, 14) 0.8681
    se, df = 0.05, 14
    want = np.expm1(sps.t.ppf(0.975, df) * se + sps.t.ppf(0.8, df) * se)
    assert want == pytest.approx(0.1626, abs=1e-4)
    assert stats.detectable_change(stats.Drift(0.1, 8), stats.Drift(0.1, 8), 0.03) == pytest.approx(
        want, rel=1e-9
    )
    # a precise pair: the 3% threshold is the bar to clear, then t(0.8) se more
    tiny = stats.detectable_change(stats.Drift(0.001, 8), stats.Drift(0.001, 8), 0.03)
    assert tiny == pytest.approx(np.expm1(np.log1p(0.03) + sps.t.ppf(0.8, 14) * 0.0005), rel=1e-9)
    # unequal sides without extra rounds: Welch-Satterthwaite df
    va, vb = 0.1**2 / 16, 0.05**2 / 5
    df1 = (va + vb) ** 2 / (va**2 / 15 + vb**2 / 4)
    want1 = np.expm1((sps.t.ppf(0.975, df1) + sps.t.ppf(0.8, df1)) * np.sqrt(va + vb))
    assert stats.detectable_change(
        stats.Drift(0.1, 16), stats.Drift(0.05, 5), 0.03
    ) == pytest.approx(want1, rel=1e-9)
    # A got extra rounds (its sd from its first 6: df 5): the smaller side's df, 4 (Stein's two-stage)
    want2 = np.expm1((sps.t.ppf(0.975, 4) + sps.t.ppf(0.8, 4)) * np.sqrt(va + vb))
    assert stats.detectable_change(
        stats.Drift(0.1, 16, 5), stats.Drift(0.05, 5), 0.03
    ) == pytest.approx(want2, rel=1e-9)
    assert np.isnan(stats.detectable_change(stats.Drift(0.1, 1), stats.Drift(0.1, 8), 0.03))
    assert stats.detectable_change(stats.Drift(0.0, 4), stats.Drift(0.0, 4), 0.03) == 0.03


def test_steins_interval_uses_the_base_units_sd_and_every_units_mean():
    m = np.exp([0.0, 0.1, -0.1, 0.05, -0.05, 0.3, 0.3])  # 5 base units, 2 extra
    logs = np.log(m)
    sd0 = logs[:5].std(ddof=1)
    center, lo, hi = stats.log_t_interval(m, first=5)
    half = sps.t.ppf(0.975, 4) * sd0 / np.sqrt(7)
    assert center == pytest.approx(np.exp(logs.mean()))
    assert (lo, hi) == pytest.approx((np.exp(logs.mean() - half), np.exp(logs.mean() + half)))
    assert (
        stats.log_t_interval(m, first=7)
        == stats.log_t_interval(m)
        == stats.log_t_interval(m, first=None)
    )
    assert stats.spread(logs, 5) == (pytest.approx(sd0), 4) and stats.spread(logs, None)[1] == 6
    a, b = m[:5], m * 1.2
    ratio, lo, hi, p = stats.welch_log(a, b, first_a=5, first_b=5)
    va, vb = sd0**2 / 5, sd0**2 / 7
    d, se = np.log(b).mean() - np.log(a).mean(), np.sqrt(va + vb)
    df = 4  # B got extra rounds: the smaller side's df, not Welch-Satterthwaite's (liberal after a two-stage rule)
    assert ratio == pytest.approx(np.exp(d)) and p == pytest.approx(2 * sps.t.sf(d / se, df))
    assert (lo, hi) == pytest.approx(
        tuple(np.exp(d + s * sps.t.ppf(0.975, df) * se) for s in (-1, 1))
    )


def test_the_extension_makes_as_many_rows_precise_as_the_budget_pays_for():
    from types import SimpleNamespace

    from bench.sweep.plan import extension

    def case(name, sd):
        logs = np.array([0.0, sd, -sd, sd / 2, -sd / 2])
        return SimpleNamespace(
            key=(name, "B1"),
            status="ok",
            rounds=SimpleNamespace(medians=list(np.exp(logs))),
            first_call_s=0.0,
            impl=SimpleNamespace(framework=name, role=""),
        )

    # the spreads below scaled to the target: the counts stay as written
    s = np.log1p(TARGET_CI) / np.log(1.04)
    a, d, b, narrow = case("a", 0.05 * s), case("d", 0.06 * s), case("b", 0.5), case("c", 0.001)
    # rounds in all: the fewest n with Stein's half-width t(0.975, 4) sd / sqrt(n) <= log(1 + TARGET_CI), or none within 16
    for st, want in ((a, 8), (d, 12), (b, None), (narrow, 5)):
        sd = np.log(st.rounds.medians).std(ddof=1)
        n = next(
            (
                n
                for n in range(5, 17)
                if sps.t.ppf(0.975, 4) * sd / np.sqrt(n) <= np.log1p(TARGET_CI)
            ),
            None,
        )
        assert n == want
    key = {st.key[0]: st.key for st in (a, d, b, narrow)}
    cases = [a, d, b, narrow]
    one = {k: 1.0 for k in key.values()}
    assert extension(cases, 5, 16, one, float("inf")) == {key["a"]: 8, key["d"]: 12, key["b"]: 16}
    assert extension(cases, 5, 16, one, 3.0) == {key["a"]: 8}  # 3 extra case-rounds
    assert extension(cases, 5, 16, one, 10.0) == {key["a"]: 8, key["d"]: 12}  # 3 + 7
    assert extension(cases, 5, 16, one, 20.9) == {
        key["a"]: 8,
        key["d"]: 12,
    }  # b would make it 3 + 7 + 11
    assert extension(cases, 5, 16, one, 2.9) == {}
    # the rows that reach the target first, whatever they cost; then the rest with what is left
    cheap_b = {**one, key["b"]: 0.1}
    assert extension(cases, 5, 16, cheap_b, 3.0) == {key["a"]: 8}
    assert extension(cases, 5, 16, cheap_b, 4.1) == {key["a"]: 8, key["b"]: 16}
    # among those, the cheapest first: d's 7 rounds at 0.1 s before a's 3 at 1 s
    assert extension(cases, 5, 16, {**one, key["d"]: 0.1}, 1.0) == {key["d"]: 12}
    # each extra round also starts the worker of each framework it needs (2 s): a costs 3 + 3 x 2
    starts = {"a": 2.0, "d": 2.0}
    assert extension(cases, 5, 16, one, 8.9, starts) == {}
    assert extension(cases, 5, 16, one, 9.0, starts) == {key["a"]: 8}
    assert extension(cases, 5, 16, one, 9.0 + 7 + 7 * 2, starts) == {key["a"]: 8, key["d"]: 12}
    assert extension(cases, 5, 16, one, 9.0 + 7 + 7 * 2 - 0.1, {**starts, "b": 2.0}) == {
        key["a"]: 8
    }
    # two cases of one framework share its worker's start in each round: a and a2 cost 3 + 3 + 3 x 2
    a2 = SimpleNamespace(**{**vars(a), "key": ("a2", "B1")})
    assert extension([a, a2], 5, 16, {a.key: 1.0, a2.key: 1.0}, 12.0, starts) == {
        a.key: 8,
        a2.key: 8,
    }
    assert extension([narrow], 5, 16, one, float("inf")) == {}
    # the control row (null.noop) is never extended: its precision is not what the run is for
    control = SimpleNamespace(**{**vars(b), "impl": SimpleNamespace(framework="b", role="control")})
    assert extension([a, d, control], 5, 16, one, float("inf")) == {key["a"]: 8, key["d"]: 12}
    wide, wider = a, d
    cost = {key["a"]: 1.0, key["d"]: 1.0, key["b"]: 1.0, key["c"]: 1.0}
    # a run's budget: 95% of --budget-min less what the run took so far
    from bench.sweep.plan import extension_within
    from bench.timing import Budget

    run = SimpleNamespace(budget_min=1.0, rounds=5, most_rounds=16, budget=Budget())
    # 57 s - 47 s = 10 s: a and d; 0.1 s later, a only
    assert extension_within(
        [wide, wider, narrow], run, {k: [v] for k, v in cost.items()}, 47.0
    ) == {key["a"]: 8, key["d"]: 12}
    assert extension_within(
        [wide, wider, narrow], run, {k: [v] for k, v in cost.items()}, 47.1
    ) == {key["a"]: 8}
    # what the base rounds cost beyond their cases (5 rounds x 3 frameworks, 15 s beyond the 3 case-seconds of
    # cost_s: 1 s per framework and round) is charged to each extra round: a then costs 3 + 3 x 1 = 6 s
    walls = {k: [v] for k, v in cost.items() if k != key["b"]}
    assert extension_within([wide, wider, narrow], run, walls, 51.0, base_wall_s=18.0) == {
        key["a"]: 8
    }
    assert extension_within([wide, wider, narrow], run, walls, 51.1, base_wall_s=18.0) == {}
    assert extension_within([wide, wider, narrow], run, walls, 51.1, base_wall_s=3.0) == {
        key["a"]: 8
    }
    assert extension_within(
        [wide, wider, narrow],
        SimpleNamespace(**{**vars(run), "budget_min": None}),
        {k: [v] for k, v in cost.items()},
        1e9,
    ) == {key["a"]: 8, key["d"]: 12}
    # a case's round costs its median base round, not the mean: round 0 also builds and gates
    # (5 s here), which no extra round repeats; the mean (1.8 s a round) would leave d out
    gated = {k: [5.0, 1.0, 1.0, 1.0, 1.0] for k in cost}
    assert extension_within([wide, wider, narrow], run, gated, 47.0) == {key["a"]: 8, key["d"]: 12}
