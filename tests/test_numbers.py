"""Numbers a user reads, each against values computed here by hand: the paired overhead CI when
both rows got extra rounds, the machine peak of a run with two devices, compare's change call and
detectable column at a non-default threshold, and the GPT's tanh GELU in every implementation."""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats as sps
from fixture_run import ROUNDS
from test_pytest_route import plant

from bench.report.compare import compare_runs
from bench.report.fits import paired_diff_ci
from bench.sizes import mlp
from bench.sweep.cases import CaseState, case_row
from bench.sweep.settings import Settings
from bench.timing import Budget
from models.gpt.model import GPTConfig, init_params, make_batch, param_names
from models.registry import REGISTRY


def test_the_paired_ci_takes_only_the_base_rounds_spread_when_both_rows_got_extra_rounds():
    """Rounds 0-4 are the base rounds (first = 5), 5 and 6 extra ones both rows got: the spread and
    the degrees of freedom come from rounds 0-4 only, the means from all seven."""
    a = pd.Series([10.0, 11.0, 9.5, 10.5, 10.2, 30.0, 1.0])
    b = pd.Series([5.0, 5.4, 4.9, 5.3, 5.0, 2.0, 40.0])
    d, lo, hi = paired_diff_ci(a, b, first=5)
    ga, gb = np.exp(np.log(a).mean()), np.exp(np.log(b).mean())
    la, lb = np.log(a[:5]), np.log(b[:5])
    sa2, sb2 = la.var(ddof=1), lb.var(ddof=1)
    sab = ((la - la.mean()) * (lb - lb.mean())).sum() / 4
    var = ga**2 * sa2 / 7 + gb**2 * sb2 / 7 - 2 * ga * gb * sab * 7 / 49
    half = sps.t.ppf(0.975, 4) * math.sqrt(var)
    assert d == pytest.approx(ga - gb)
    assert (lo, hi) == pytest.approx((ga - gb - half, ga - gb + half))


def test_the_machine_peak_is_the_runs_own_devices():
    """A CPU row is divided by the fastest CPU matmul of the run, not by the GPU's."""
    size = mlp(2, 3, 1, "custom")
    st = CaseState(REGISTRY["mlp"]["numpy.loop"], size, status="ok")
    st.add_round(0, [1000, 1000, 1000], 1)
    st.add_round(1, [1000, 1000, 1000], 1)  # 1 µs per step
    settings = Settings("mlp", ["numpy.loop"], [size], 2, 2, Budget(), 60.0)
    peaks = {
        "numpy": {"gflops": 50.0, "device": "cpu"},
        "jax": {"gflops": 80.0, "device": "cpu"},
        "torch": {"gflops": 5000.0, "device": "cuda"},
    }
    row = case_row(st, settings, peaks)
    gflops = (6 * 2 * (784 * 3 + 3 * 10) - 2 * 2 * 784 * 3) / 1e-6 / 1e9
    assert row["gflops"] == pytest.approx(gflops)
    assert row["pct_peak"] == pytest.approx(100 * gflops / 50.0)
    assert row["pct_machine_peak"] == pytest.approx(100 * gflops / 80.0)


def test_compare_uses_its_threshold_for_the_call_and_the_detectable_column(tmp_path):
    """A planted 8% slowdown: called at a 5% threshold, not at 10%; the smallest detectable change
    never falls below the threshold and grows with it."""
    a, b = plant(tmp_path, 1.08)
    key = ("torch.eager", "B128-H128-L2")
    found = {t: compare_runs(a, b, t)[0].set_index(["impl", "size"]) for t in (0.05, 0.10, 0.30)}
    assert found[0.05].loc[key, "change"] == "slower" and found[0.10].loc[key, "change"] == ""
    for t, df in found.items():
        assert (df["detectable"] >= t).all() and (df["n_a"] == ROUNDS).all()
    assert (found[0.30]["detectable"] > found[0.05]["detectable"]).all()
    assert found[0.30].loc[key, "detectable"] >= 0.30


def test_the_jax_gpt_uses_the_tanh_gelu():
    """With the MLP's inputs of order one (fc weights x 20), where the tanh GELU and the exact one
    differ by up to 1e-3, the gradient of the MLP's bias follows the float64 reference to float32
    rounding (2e-7) with the tanh GELU, and misses it by 5e-4 with the exact one."""
    jax = pytest.importorskip("jax")
    from models.gpt import jax_impl, numpy_impl

    cfg = GPTConfig(batch=2, seq_len=8, n_embd=16, n_layer=1, n_head=2, vocab=32)
    names = param_names(cfg)
    params = [
        p * (20.0 if n.endswith("fc_w") else 1.0)
        for p, n in zip(init_params(cfg), names, strict=True)
    ]
    idx, targets = make_batch(cfg)
    p64 = [p.astype(np.float64) for p in params]
    _, cache = numpy_impl.gpt_forward(p64, idx, targets, cfg)
    want = numpy_impl.gpt_backward(p64, cache, cfg)[names.index("h0.fc_b")]
    grads = jax.grad(jax_impl.gpt_loss)([np.asarray(p) for p in params], idx, targets, cfg)
    got = np.asarray(grads[names.index("h0.fc_b")])
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-5
