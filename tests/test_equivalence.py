"""Every implementation against the float64 reference, at shapes that catch layout bugs."""

import numpy as np
import pytest

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
GATED = [n for n in IMPLS if n != "null.noop" and "cpu" in IMPLS[n].devices]  # CUDA-only ones need a GPU


@pytest.fixture(scope="module")
def refs():
    return {cfg: reference(cfg, 5) for cfg in CONFIGS}


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.label + f"-D{c.d_in}-C{c.classes}")
@pytest.mark.parametrize("name", GATED)
def test_implementation_matches_float64_reference(name, cfg, refs):
    impl = IMPLS[name]
    if impl.unavailable_reason():
        pytest.skip(impl.unavailable_reason())
    builder = impl.load()
    step = builder(cfg, 4) if impl.fused else builder(cfg)
    step.call()  # the timed path runs, then the gate starts again from the shared start
    step.reset()
    losses = step.losses(5)
    params = step.params()
    assert [p.shape for p in params] == [p.shape for p in mlp.init_params(cfg)]
    loss_err, update_err, why = mlp.compare(cfg, losses, params, refs[cfg])
    assert why == "", why
    assert loss_err < mlp.LOSS_RTOL / 10 and update_err < mlp.UPDATE_RTOL / 10  # margin kept
    assert step.steps_per_call == (4 if impl.fused else 1)


def test_call_advances_training():
    cfg = CONFIGS[1]
    for name in GATED:
        impl = IMPLS[name]
        if impl.unavailable_reason():
            continue
        step = impl.load()(cfg, 3) if impl.fused else impl.load()(cfg)
        before = step.params()
        step.call()
        after = step.params()
        assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True)), name
