"""The CUDA side, where a GPU exists (skipped elsewhere): every torch and JAX implementation on the
GPU against the float64 reference with TF32 off, and the timed call synced."""

import time

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")

from bench import frameworks  # noqa: E402
from bench.sweep import prepare  # noqa: E402
from models.gpt.model import GPTConfig  # noqa: E402
from models.mlp.model import MLPConfig  # noqa: E402
from models.registry import REGISTRY  # noqa: E402

CONFIGS = {
    "mlp": [
        MLPConfig(batch=1, width=1, depth=1),
        MLPConfig(batch=5, width=24, depth=3, classes=7, d_in=33),
    ],
    "gpt": [GPTConfig(batch=2, seq_len=12, n_embd=24, n_layer=2, n_head=3, vocab=64)],
}
CASES = [
    (m, n, c)
    for m, impls in REGISTRY.items()
    for n, i in impls.items()
    if "cuda" in frameworks.devices(i)
    for c in CONFIGS[m]
]


@pytest.fixture(scope="module", autouse=True)
def strict_fp32():
    for fw in ("torch", "jax"):
        frameworks.setup(fw, 1, "cuda", tf32=False)


@pytest.mark.parametrize("model, name, cfg", CASES, ids=lambda v: getattr(v, "label", v))
def test_cuda_implementation_matches_float64(model, name, cfg):
    impl = REGISTRY[model][name]
    built = prepare.build(impl, cfg, 5, "cuda")
    g = prepare.gate(built.step, model, cfg)
    assert g.status == "ok", g.error
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    built.step.call()
    elapsed = time.perf_counter() - t0
    t0 = time.perf_counter()
    torch.cuda.synchronize()  # nothing may be left running after call() returns
    assert time.perf_counter() - t0 < max(0.5 * elapsed, 1e-3)
