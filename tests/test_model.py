import numpy as np
import pytest

from models.gate import compare_to_reference
from models.gpt import model as gpt
from models.gpt.model import GPTConfig
from models.mlp import model as mlp
from models.mlp import numpy_impl as mlp_numpy
from models.mlp.model import MLPConfig


def test_flops_counts_matmuls_and_skips_input_gradient():
    cfg = MLPConfig(batch=2, d_in=3, width=4, depth=2, classes=5)
    # layers 3x4, 4x4, 4x5: forward + weight grad + input grad = 6*B*in*out, minus first layer's input grad
    expected = 6 * 2 * (3 * 4 + 4 * 4 + 4 * 5) - 2 * 2 * 3 * 4
    assert mlp.flops_per_step(cfg) == expected


def test_params_and_batch_are_seeded_float32_with_he_scale():
    cfg = MLPConfig(batch=4, width=512, depth=2)
    a, b = mlp.init_params(cfg), mlp.init_params(cfg)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert [p.shape for p in a] == [(784, 512), (512,), (512, 512), (512,), (512, 10), (10,)]
    assert all(p.dtype == np.float32 for p in a)
    assert np.std(a[0]) == pytest.approx(np.sqrt(2 / 784), rel=0.02)
    x, y = mlp.make_batch(cfg)
    assert x.shape == (4, 784) and x.dtype == np.float32
    assert y.shape == (4,) and 0 <= y.min() and y.max() < 10


@pytest.mark.parametrize("field", ["batch", "width", "depth"])
def test_config_rejects_non_positive(field):
    with pytest.raises(ValueError, match=field):
        MLPConfig(**{field: 0})


def test_reference_gradients_match_finite_differences():
    cfg = MLPConfig(batch=4, d_in=5, width=6, depth=2, classes=3, seed=3)
    params = [p.astype(np.float64) for p in mlp.init_params(cfg)]
    for b in params[1::2]:
        b += 0.3  # positive biases: live ReLUs, no pre-activation sits on the kink at 0
    x, y = mlp.make_batch(cfg)
    x = x.astype(np.float64)
    _, cache = mlp_numpy.mlp_forward(params, x, y)
    grads = [g.copy() for g in mlp_numpy.mlp_backward(params, cache)]
    assert all(np.abs(g).max() > 1e-3 for g in grads)  # every tensor really gets a gradient
    eps = 1e-6
    for p, g in zip(params, grads, strict=True):
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            up, _ = mlp_numpy.mlp_forward(params, x, y)
            p[idx] = old - eps
            down, _ = mlp_numpy.mlp_forward(params, x, y)
            p[idx] = old
            assert (up - down) / (2 * eps) == pytest.approx(g[idx], abs=1e-7, rel=1e-5)


def test_reference_loss_decreases_and_starts_near_log_c():
    cfg = MLPConfig(batch=16, width=32)
    losses, _ = mlp_numpy.reference(cfg, 5)
    assert losses[0] == pytest.approx(np.log(10), rel=0.5)
    assert np.all(np.diff(losses) < 0)


def test_gate_rejects_wrong_updates_and_nan():
    cfg = MLPConfig(batch=4, width=8)
    ref = mlp_numpy.reference(cfg, 5)
    losses, params = ref[0].copy(), [p.astype(np.float32) for p in ref[1]]
    assert mlp.compare(cfg, losses, params, ref)[2] == ""
    start = mlp.init_params(cfg)
    wrong = [p0 + 2.0 * (p - p0) for p, p0 in zip(params, start, strict=True)]  # lr twice too big
    assert "update rel. error" in mlp.compare(cfg, losses, wrong, ref)[2]
    assert "loss rel. error" in mlp.compare(cfg, losses * 1.01, params, ref)[2]
    assert "non-finite" in mlp.compare(cfg, np.full(5, np.nan), params, ref)[2]


def test_counts_beyond_the_matmuls_by_hand():
    cfg = MLPConfig(batch=2, d_in=3, width=4, depth=2, classes=5)  # layers 3x4, 4x4, 4x5
    assert mlp.n_params(cfg) == (12 + 4) + (16 + 4) + (20 + 5)  # 61
    # bias add + grad 2*2*(4+4+5) = 52, ReLU 2*2*4 per hidden layer = 32, loss 8*2*5 = 80, SGD 2*61
    assert mlp.other_flops_per_step(cfg) == 52 + 32 + 80 + 122
    # activations 2*(3 + 2*2*4 + 3*5) = 68 floats; 4 bytes x (6 per parameter + 3 per activation)
    assert mlp.bytes_per_step(cfg) == 4 * (6 * 61 + 3 * 68)
    # 3 linear layers, 2 ReLUs and the loss forward and backward (12), 6 tensor updates
    assert mlp.ops_per_step(cfg) == 18


def test_batch_is_seeded_and_uses_every_class():
    cfg = MLPConfig(batch=200, width=8, depth=1)
    (x, y), (x2, y2) = mlp.make_batch(cfg), mlp.make_batch(cfg)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert set(np.unique(y)) == set(range(10))


# The GPT's definition by hand.


def test_names_init_and_batch_by_hand():
    cfg = GPTConfig(batch=64, seq_len=8, n_embd=16, n_layer=2, n_head=2, vocab=5)
    names = gpt.param_names(cfg)
    assert names[:3] == ["wte", "wpe", "h0.ln1_w"] and names[-3:] == [
        "h1.fc_proj_b",
        "lnf_w",
        "lnf_b",
    ]
    params = gpt.init_params(cfg)
    assert all(p.dtype == np.float32 for p in params)
    # seeded
    assert all(np.array_equal(a, b) for a, b in zip(params, gpt.init_params(cfg), strict=True))
    by = dict(zip(names, params, strict=True))
    assert (by["lnf_w"] == 1).all() and (by["lnf_b"] == 0).all() and (by["h1.attn_b"] == 0).all()
    assert (by["h0.ln1_w"] == 1).all() and (by["h1.ln2_w"] == 1).all()  # block LayerNorm gains too
    assert np.std(by["wte"]) == pytest.approx(0.02, rel=0.2) and np.std(by["wpe"]) == pytest.approx(
        0.02, rel=0.2
    )
    assert np.std(by["h1.attn_proj_w"]) == pytest.approx(0.01, rel=0.1)  # 0.02 / sqrt(2 L), L = 2
    # wte, wpe, and per block attn, attn_proj, fc, fc_proj
    assert sum(gpt.decay_mask(cfg)) == 2 + 4 * 2
    idx, targets = gpt.make_batch(cfg)
    assert idx.shape == targets.shape == (64, 8) and idx.dtype == targets.dtype == np.int64
    again = gpt.make_batch(cfg)
    assert np.array_equal(idx, again[0]) and np.array_equal(targets, again[1])  # seeded
    assert set(np.unique(np.concatenate([idx.ravel(), targets.ravel()]))) == {
        0,
        1,
        2,
        3,
        4,
    }  # every token


def test_config_errors_name_the_field_and_value():
    with pytest.raises(ValueError) as e:
        GPTConfig(seq_len=0)
    assert str(e.value) == "seq_len must be >= 1, got 0"
    with pytest.raises(ValueError) as e:
        GPTConfig(n_embd=10, n_head=3)
    assert str(e.value) == "n_embd 10 is not a multiple of n_head 3"


# The gate's comparison itself, on synthetic tensors whose errors are known by construction.


def _synthetic():
    p0 = [np.ones((3, 2)), np.zeros(4)]
    ref = (np.array([2.0, 1.0]), [p0[0] + 0.5, p0[1] - 0.25])  # losses, parameters after the steps
    return p0, ref


def test_gate_errors_are_relative_to_the_reference_loss_and_update():
    p0, ref = _synthetic()
    params = [p0[0] + 0.5 * 1.02, p0[1] - 0.25]  # first tensor's update 2% too large
    loss_err, update_err, why = compare_to_reference(
        p0, np.array([2.0, 1.01]), params, ref, 0.1, 0.1
    )
    assert loss_err == pytest.approx(0.01) and update_err == pytest.approx(0.02) and why == ""


def test_gate_limits_are_inclusive_and_its_message_names_both_failures():
    p0, ref = _synthetic()
    params = [p0[0] + 0.5 * 1.5, p0[1] - 0.25]
    loss_err, update_err, _ = compare_to_reference(p0, np.array([2.5, 1.0]), params, ref, 1, 1)
    assert (
        compare_to_reference(p0, np.array([2.5, 1.0]), params, ref, loss_err, update_err)[2] == ""
    )
    why = compare_to_reference(p0, np.array([2.5, 1.0]), params, ref, 0.1, 0.1)[2]
    assert why == "loss rel. error 2.50e-01 > 1e-01; update rel. error 5.00e-01 > 1e-01"


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_parameter_fails_the_gate_though_every_loss_is_finite(bad):
    """The last step's loss comes before its update: an update that leaves NaN or inf shows only in
    the parameters."""
    p0, ref = _synthetic()
    params = [p0[0] + 0.5, p0[1] - 0.25]
    assert compare_to_reference(p0, ref[0], params, ref, 0.1, 0.1) == (0.0, 0.0, "")
    params[1] = params[1].copy()
    params[1][0] = bad
    loss_err, update_err, why = compare_to_reference(p0, ref[0], params, ref, 0.1, 0.1)
    assert (loss_err, update_err, why) == (0.0, np.inf, "non-finite values in param 1")


def test_a_tensor_the_reference_leaves_unchanged_is_judged_against_its_own_size():
    p0 = [np.full(4, 100.0)]
    ref = (np.array([1.0]), [p0[0].copy()])  # no update at all, e.g. behind dead ReLUs
    rounding = [p0[0] + 100.0 * 1e-10]  # 1e-10 of the value (1e-3 of the 1e-7 floor): accepted
    assert compare_to_reference(p0, np.array([1.0]), rounding, ref, 1e-3, 1e-2)[2] == ""
    real = [p0[0] + 100.0 * 1e-5]  # a real update where none belongs: rejected
    assert (
        "update rel. error" in compare_to_reference(p0, np.array([1.0]), real, ref, 1e-3, 1e-2)[2]
    )


def test_memory_bound_of_an_mlp_case_by_hand():
    cfg = MLPConfig(batch=2, d_in=3, width=4, depth=2, classes=5)  # 61 parameters
    # activations 2*(3 + 2*2*4 + 2*5) = 58; 40 bytes per parameter, 36 per activation
    assert mlp.memory_bytes(cfg) == 61 * 40 + 58 * 36


def test_gpt_estimates_by_hand():
    cfg = GPTConfig(batch=2, seq_len=3, n_embd=4, n_layer=2, n_head=2, vocab=5)
    # wte 5x4, wpe 3x4, per block: 2 LayerNorms (16), attn 4x12 + 12, proj 4x4 + 4, fc 4x16 + 16, fc_proj 16x4 + 4
    per_block = 16 + 60 + 20 + 80 + 68
    assert gpt.n_params(cfg) == 20 + 12 + 2 * per_block + 8  # 528
    # per token: 5 LayerNorms x 20 x C, per block GELU 25 x 4C and adds 24 C; N = 6 tokens
    tokens = 6 * (5 * 20 * 4 + 2 * (25 * 16 + 24 * 4))
    attention = 2 * 8 * 2 * 2 * 3**2  # L x 8 x B x nh x T^2
    assert gpt.other_flops_per_step(cfg) == tokens + attention + 7 * 6 * 5 + 12 * 528
    # kept activations: L B T (16 C + 2 nh T) = 912, plus B T (2 C + 2 V) = 108
    assert gpt.bytes_per_step(cfg) == 4 * (10 * 528 + 3 * 1020)
    assert gpt.memory_bytes(cfg) == 528 * 72 + 1020 * 28
    assert gpt.describe(cfg) == {
        "batch": 2,
        "width": 4,
        "depth": 2,
        "seq_len": 3,
        "heads": 2,
        "vocab": 5,
    }


def test_numpy_calls_per_step_by_hand():
    """L = 1 (n = 2 layers): forward 4 + 1 relu + 9 softmax/CE; backward 4 loss + 4 (dW, db) + 3;
    update 8: 33, the figure the pytest route recorded for fault.sleep (tests/data). L = 2: 45; L = 16: 213."""
    from models.mlp.model import MLPConfig
    from models.mlp.numpy_impl import numpy_calls_per_step

    assert [numpy_calls_per_step(MLPConfig(batch=1, width=1, depth=d)) for d in (1, 2, 16)] == [
        33,
        45,
        213,
    ]


def test_the_numpy_step_allocates_no_array_and_keeps_float32_buffers():
    """numpy.loop's promise (README: preallocated in-place NumPy): a step writes every buffer it
    owns (each is NaN before it and finite after) and allocates no activation-sized array: one
    (64, 256) float32 activation at B64-H256-L2 is 64 KiB, a step's temporaries (row maxima, the
    loss's gathers) peak near 34 KiB. Every buffer is float32 (the mask bool)."""
    import tracemalloc

    from models.mlp.model import MLPConfig
    from models.mlp.numpy_impl import build

    step = build(MLPConfig(batch=64, width=256, depth=2))
    for _ in range(2):
        step.call()
    before = [p.copy() for p in step.p]
    floats = [
        *step.bufs["z"],
        step.bufs["probs"],
        step.bufs["dlogits"],
        *step.bufs["dh"],
        *step.bufs["grads"],
    ]
    for b in floats:
        b.fill(np.nan)
    step.bufs["mask"].fill(False)
    tracemalloc.start()
    step.call()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 48 * 1024, peak
    assert all(np.isfinite(b).all() for b in floats) and step.bufs["mask"].any()
    # it did train
    assert any(not np.array_equal(a, b) for a, b in zip(before, step.p, strict=True))
    bufs = step.bufs
    assert all(
        b.dtype == np.float32
        for b in [*bufs["z"], bufs["probs"], bufs["dlogits"], *bufs["dh"], *bufs["grads"]]
    )
    assert bufs["mask"].dtype == bool and np.isfinite(step.last_loss)


def test_softmax_subtracts_each_rows_own_max():
    """Rows on far-apart scales: each row's max keeps exp() finite; a global max would turn row 0
    into 0 / 0. Loss by hand: both rows are log(1 + e) - 1 from the right label's side."""
    from models.mlp.numpy_impl import softmax_xent_forward

    loss, (p, _) = softmax_xent_forward(np.array([[0.0, 1.0], [1000.0, 1001.0]]), np.array([1, 1]))
    assert loss == pytest.approx(np.log1p(np.e) - 1) and np.isfinite(p).all()
