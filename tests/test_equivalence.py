"""Every implementation against the float64 reference, at shapes that catch layout bugs."""

import numpy as np
import pytest

from bench import frameworks
from models.mlp import model as mlp
from models.mlp.model import MLPConfig
from models.mlp.numpy_impl import reference
from models.registry import REGISTRY

IMPLS = REGISTRY["mlp"]

CONFIGS = [
    MLPConfig(batch=1, width=1, depth=1),  # B=1, the smallest model
    MLPConfig(batch=5, width=24, depth=3, classes=7, d_in=33),  # nothing square, odd sizes
    MLPConfig(batch=64, width=256, depth=2),  # a realistic size
]
# CUDA-only ones need a GPU
GATED = [n for n in IMPLS if n != "null.noop" and "cpu" in frameworks.devices(IMPLS[n])]


@pytest.fixture(scope="module")
def refs():
    return {cfg: reference(cfg, 5) for cfg in CONFIGS}


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.label + f"-D{c.d_in}-C{c.classes}")
@pytest.mark.parametrize("name", GATED)
def test_implementation_matches_float64_reference(name, cfg, refs):
    impl = IMPLS[name]
    if frameworks.impl_unavailable(impl):
        pytest.skip(frameworks.impl_unavailable(impl))
    builder = impl.load()
    # K = 5: the gate's 5 steps reuse its compile
    step = builder(cfg, 5) if impl.fused else builder(cfg)
    step.call()  # the timed path runs, then the gate starts again from the shared start
    step.reset()
    losses = step.losses(5)
    params = step.params()
    assert [p.shape for p in params] == [p.shape for p in mlp.init_params(cfg)]
    loss_err, update_err, why = mlp.compare(cfg, losses, params, refs[cfg])
    assert why == "", why
    assert loss_err < mlp.LOSS_RTOL / 10 and update_err < mlp.UPDATE_RTOL / 10  # margin kept
    assert step.steps_per_call == (5 if impl.fused else 1)


@pytest.mark.parametrize("name", GATED)
def test_the_timed_call_trains_like_the_reference(name):
    """call() (the timed path, K steps when fused) moves every parameter as K reference steps do,
    in direction and size, not just somewhere."""
    impl, cfg = IMPLS[name], CONFIGS[1]
    if frameworks.impl_unavailable(impl):
        pytest.skip(frameworks.impl_unavailable(impl))
    step = impl.load()(cfg, 3) if impl.fused else impl.load()(cfg)
    step.reset()
    before = step.params()
    step.call()
    want = reference(cfg, step.steps_per_call)[1]
    for p0, p1, r in zip(before, step.params(), want, strict=True):
        moved, should = (p1 - p0).ravel(), (r - p0).ravel()
        assert np.linalg.norm(moved - should) <= 1e-3 * np.linalg.norm(should) + 1e-9, name


def gate_cases():
    """The smallest default MLP size, a mid one, the deepest, and the smallest default GPT size."""
    from bench.sizes import PRESETS

    mlp_sizes = [
        z for z in PRESETS["mlp"]["default"] if z.label in ("B1-H1-L2", "B128-H128-L2", "B8-H8-L16")
    ]
    return mlp_sizes + PRESETS["gpt"]["default"][:1]


@pytest.mark.parametrize("size", gate_cases(), ids=lambda z: z.label)
def test_gate_rejects_a_10_percent_error_in_any_single_tensor_update(size):
    """One tensor's update off by 10% (a weight matrix, a bias, a LayerNorm gain, an embedding),
    everything else exact: the gate must say so, for every tensor. A tensor the reference leaves
    unchanged (behind a dead ReLU) must stay unchanged: moving it by 1e-4 of its size is an error."""
    from models.registry import model_module
    from models.registry import reference as model_reference

    mod, cfg = model_module(size.model), size.config()
    ref = model_reference(size.model, cfg, 5)
    start = mod.init_params(cfg)
    exact = [p.astype(np.float32) for p in ref[1]]
    assert mod.compare(cfg, ref[0], exact, ref)[2] == ""
    for i in range(len(start)):
        wrong, update = list(exact), ref[1][i] - start[i]
        if np.linalg.norm(update):
            wrong[i] = (start[i] + 1.10 * update).astype(np.float32)
        else:  # a tensor that must not move, moved a little
            nudge = 1e-3 * (np.linalg.norm(start[i]) + 1) / np.sqrt(start[i].size)
            wrong[i] = (start[i] + nudge).astype(np.float32)
        why = mod.compare(cfg, ref[0], wrong, ref)[2]
        assert "update rel. error" in why, (size.label, i, start[i].shape)


@pytest.mark.parametrize("k, steps", [(1, 5), (2, 6), (4, 8), (5, 5), (8, 8), (16, 16), (64, 64)])
def test_the_gate_runs_whole_calls_of_a_fused_step(k, steps):
    from types import SimpleNamespace

    from bench.sweep import prepare

    assert prepare.gate_steps(SimpleNamespace(steps_per_call=k)) == steps


class Scripted:
    """A fused step (K = 4) whose gate losses and parameters are given: the reference's own, with
    changes planted."""

    gate, steps_per_call = True, 4

    def __init__(self, losses, params):
        self._losses, self._params, self.asked = losses, params, []

    def reset(self):
        self.at = 0

    def losses(self, n):  # the next n of the given losses
        self.asked.append(n)
        self.at += n
        return self._losses[self.at - n : self.at]

    def params(self):
        return self._params


@pytest.mark.parametrize(
    "plant, status, why",
    [
        (None, "ok", ""),
        (
            "loss 6",
            "diverged",
            "non-finite loss at step 7 of 8: nan",
        ),  # after the 5 compared: the finite check sees it
        (
            "loss 7 off",
            "ok",
            "",
        ),  # a loss after the 5 compared is not compared (its float32 error grows)
        ("param nan", "diverged", "non-finite values in param 0"),
        ("update", "mismatch", "update rel. error"),
        ("short", "mismatch", "5 losses for 8 steps"),
    ],
)
def test_a_fused_gate_compares_the_first_five_losses_and_the_updates_after_all_steps(
    plant, status, why
):
    from bench.sweep import prepare

    cfg = MLPConfig(batch=4, width=8, depth=2)
    ref_losses, ref_params = prepare.reference("mlp", cfg, 8)
    losses, params = ref_losses.copy(), [p.astype(np.float32) for p in ref_params]
    if plant == "loss 6":
        losses[6] = np.nan
    elif plant == "loss 7 off":
        losses[7] *= 1.5
    elif plant == "param nan":
        params[0][0, 0] = np.nan
    elif plant == "update":
        params[0] = params[0] + 0.1 * (params[0] - mlp.init_params(cfg)[0])
    elif plant == "short":
        losses = losses[:5]
    step = Scripted(losses, params)
    g = prepare.gate(step, "mlp", cfg)
    assert g.status == status and why in g.error, g
    assert step.asked == [4, 4]  # whole calls of K steps: the timed program


def test_the_gate_of_jax_scan_reuses_the_timed_program():
    """jax.scan's gate runs whole calls of the jitted K-step scan that is timed: no second entry in
    its compile cache, where a scan 5 steps long is one."""
    pytest.importorskip("jax")
    from bench.sweep import prepare

    # a size of its own: the jitted scan's cache is the process's
    cfg = MLPConfig(batch=3, width=7, depth=2)
    step = prepare.build(REGISTRY["mlp"]["jax.scan"], cfg, 2).step
    before = step.scanned._cache_size()
    assert prepare.gate(step, "mlp", cfg).status == "ok" and step.scanned._cache_size() == before
    step.losses(5)
    assert step.scanned._cache_size() == before + 1
