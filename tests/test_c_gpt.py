"""The C GPT against the float64 reference, in the style of llm.c's gradient check: every
parameter gradient of one step, tensor by tensor, and the AdamW update. Deliberately broken
copies of gpt.c (one layer's backward each) must fail the same check."""

import numpy as np
import pytest

from models import cbuild
from models.gpt import c_impl
from models.gpt import numpy_impl as ref
from models.gpt.model import GPTConfig, decay_mask, param_names

pytestmark = pytest.mark.skipif(
    bool(cbuild.unavailable_reason()), reason=cbuild.unavailable_reason() or "ok"
)
# nothing square or a power of 2
CFG = GPTConfig(batch=2, seq_len=5, n_embd=12, n_layer=2, n_head=3, vocab=17)
GRAD_RTOL = (
    1e-4  # float32 rounding through two blocks: observed 5e-7 of each tensor's largest gradient
)


def reference_grads(cfg: GPTConfig, params: list[np.ndarray], idx, targets):
    p64 = [p.astype(np.float64) for p in params]
    loss, cache = ref.gpt_forward(p64, idx, targets, cfg)
    return loss, [g.copy() for g in ref.gpt_backward(p64, cache, cfg)]


def grad_errors(step: c_impl.CGPTStep) -> tuple[float, dict[str, float]]:
    """(loss error, name -> max |C grad - float64 grad| / max |float64 grad|) of one step."""
    loss, grads = step.gradients()
    want_loss, want = reference_grads(step.cfg, step.params(), step.idx, step.targets)
    errs = {
        n: float(np.abs(g - w).max() / max(np.abs(w).max(), 1e-12))
        for n, g, w in zip(param_names(step.cfg), grads, want, strict=True)
    }
    return abs(loss - want_loss) / abs(want_loss), errs


@pytest.mark.parametrize("gemm", [1, 0], ids=["sgemm-attention", "loop-attention"])
def test_every_gradient_matches_float64(gemm):
    step = c_impl.CGPTStep(CFG, 1, gemm_attention=gemm)
    loss_err, errs = grad_errors(step)
    assert loss_err < 1e-6
    assert len(errs) == 2 + 12 * CFG.n_layer + 2
    bad = {n: e for n, e in errs.items() if not e <= GRAD_RTOL}
    assert not bad, bad


def test_adamw_update_matches_float64():
    step = c_impl.CGPTStep(CFG, 1)
    for _ in range(3):  # a few steps, so the moments and bias corrections are not trivial
        before = [p.astype(np.float64) for p in step.params()]
        m = [x.astype(np.float64) for x in step.unflatten(step.m)]
        v = [x.astype(np.float64) for x in step.unflatten(step.v)]
        _, grads = step.gradients()
        t = int(step.t[0]) + 1
        step.adamw()
        want = [p.copy() for p in before]
        ref.adamw_update(
            want, [g.astype(np.float64) for g in grads], (m, v), t, CFG, decay_mask(CFG)
        )
        for name, got, w, p0 in zip(param_names(CFG), step.params(), want, before, strict=True):
            update, expected = got - p0, w - p0
            assert np.linalg.norm(update - expected) <= 1e-4 * np.linalg.norm(expected), name


def test_c_train_equals_gradients_then_adamw():
    a, b = c_impl.CGPTStep(CFG, 1), c_impl.CGPTStep(CFG, 1)
    losses = a.losses(3)
    for i in range(3):
        loss, _ = b.gradients()
        b.adamw()
        assert loss == pytest.approx(losses[i], rel=1e-6)
    for x, y in zip(a.params(), b.params(), strict=True):
        assert np.array_equal(x, y)


BROKEN = {  # one layer's backward each, as a bug would break it
    "gelu_backward": (
        "0.5f * x * (1.0f - t * t) * du",
        "0.5f * x * (1.0f - t) * du",
        {"h0.fc_w", "h1.fc_b"},
    ),
    "layernorm_backward": (
        "d[i] * w[i] - m1 - xhat * m2",
        "d[i] * w[i] - xhat * m2",
        {"h0.attn_w", "wte"},
    ),
    "attention_backward": (
        "r[j] = pr[j] * (r[j] - dot) * scale",
        "r[j] = pr[j] * r[j] * scale",
        {"h0.attn_w"},
    ),
    "matmul_backward": (
        "dbias[o] += dout[(size_t)n * OC + o]",
        "dbias[o] += 0.5f * dout[(size_t)n * OC + o]",
        {"h1.fc_proj_b"},
    ),
}


@pytest.mark.parametrize("layer", list(BROKEN))
def test_a_broken_backward_fails_the_check(layer, tmp_path, monkeypatch):
    # broken builds stay out of the real cache
    monkeypatch.setenv("BENCH_C_CACHE", str(tmp_path / "cache"))
    good, bad, must_fail = BROKEN[layer]
    source = c_impl.SOURCE.read_text()
    assert source.count(good) == 1, f"the mutation target moved: {good}"
    broken = tmp_path / f"gpt_broken_{layer}.c"
    broken.write_text(source.replace(good, bad))
    step = c_impl.CGPTStep(CFG, 1, source=broken)
    _, errs = grad_errors(step)
    failing = {n for n, e in errs.items() if not e <= GRAD_RTOL}
    assert must_fail <= failing, (layer, failing)
