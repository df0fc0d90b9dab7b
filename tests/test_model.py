import numpy as np
import pytest

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
