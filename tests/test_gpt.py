"""The tiny GPT: shared truth, NumPy backward against finite differences, every implementation
against the float64 reference, and a quick CLI run."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import frameworks
from models.gpt import model as gpt
from models.gpt import numpy_impl as gpt_numpy
from models.gpt.model import GPTConfig
from models.registry import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = [
    # B = 1, T not a power of 2
    GPTConfig(batch=1, seq_len=5, n_embd=8, n_layer=1, n_head=2, vocab=11),
    GPTConfig(batch=2, seq_len=12, n_embd=24, n_layer=2, n_head=3, vocab=64),  # 3 heads, odd sizes
]
GATED = [
    n for n, i in REGISTRY["gpt"].items() if n != "null.noop" and "cpu" in frameworks.devices(i)
]
GPT_CPU_IMPLS = [
    "numpy.loop",
    "torch.eager",
    "torch.compile",
    "torch.fullgraph",
    "torch.scan",
    "jax.eager",
    "jax.jit",
    "jax.scan",
    "c.ref",
    "c.step",
    "null.noop",
]


def test_flops_formula_on_a_hand_example():
    cfg = GPTConfig(batch=2, seq_len=3, n_embd=4, n_layer=1, n_head=2, vocab=5)
    per_block = 2 * 6 * (4 * 12) + 2 * 6 * (4 * 4) + 2 * 6 * (4 * 16) * 2 + 2 * 2 * (2 * 3 * 3 * 4)
    head = 2 * 6 * 4 * 5
    assert gpt.flops_per_step(cfg) == 3 * (per_block + head)


def test_params_follow_gpt2_init_and_names():
    cfg = GPTConfig(n_layer=3)
    params, names = gpt.init_params(cfg), gpt.param_names(cfg)
    assert len(params) == len(names) == 2 + 12 * 3 + 2
    by = dict(zip(names, params, strict=True))
    assert np.std(by["h0.attn_w"]) == pytest.approx(0.02, rel=0.05)
    assert np.std(by["h0.fc_proj_w"]) == pytest.approx(0.02 / np.sqrt(6), rel=0.05)
    assert (by["h1.ln1_w"] == 1).all() and (by["h2.fc_b"] == 0).all()
    assert gpt.decay_mask(cfg) == [p.ndim == 2 for p in params]
    idx, targets = gpt.make_batch(cfg)
    assert idx.shape == targets.shape == (cfg.batch, cfg.seq_len)
    assert (idx[:, 1:] == targets[:, :-1]).all()  # targets are the next tokens


def test_config_rejects_width_not_divisible_by_heads():
    with pytest.raises(ValueError, match="multiple of n_head"):
        GPTConfig(n_embd=10, n_head=3)


def test_numpy_backward_matches_finite_differences():
    cfg = GPTConfig(batch=2, seq_len=5, n_embd=6, n_layer=2, n_head=3, vocab=7, seed=1)
    rng = np.random.default_rng(0)
    params = [
        p.astype(np.float64) + 0.05 * rng.standard_normal(p.shape) for p in gpt.init_params(cfg)
    ]
    idx, targets = gpt.make_batch(cfg)
    _, cache = gpt_numpy.gpt_forward(params, idx, targets, cfg)
    grads = gpt_numpy.gpt_backward(params, cache, cfg)
    eps = 1e-6
    for name, p, g in zip(gpt.param_names(cfg), params, grads, strict=True):
        fd = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + eps
            up, _ = gpt_numpy.gpt_forward(params, idx, targets, cfg)
            p[i] = old - eps
            down, _ = gpt_numpy.gpt_forward(params, idx, targets, cfg)
            p[i] = old
            fd[i] = (up - down) / (2 * eps)
        assert np.abs(fd - g).max() <= 1e-5 * max(np.abs(fd).max(), 1e-8), name
        assert np.abs(g).max() > 0, name


@pytest.fixture(scope="module")
def refs():
    return {cfg: gpt_numpy.reference(cfg, 5) for cfg in CONFIGS}


# torch's compiled implementations (about 20 s of compile a size) at the second size only: at B1
# they go through the same gate in test_cli_quick_gpt_run_gives_ok_rows_for_every_implementation
COMPILED = {"torch.compile", "torch.fullgraph", "torch.scan"}
GATE_CASES = [
    pytest.param(name, cfg, id=f"{name}-{cfg.label}")
    for name in GATED
    for cfg in CONFIGS
    if name not in COMPILED or cfg is CONFIGS[1]
]


@pytest.mark.slow
@pytest.mark.parametrize("name, cfg", GATE_CASES)
def test_gpt_implementation_matches_float64_reference(name, cfg, refs):
    impl = REGISTRY["gpt"][name]
    if frameworks.impl_unavailable(impl):
        pytest.skip(frameworks.impl_unavailable(impl))
    # K = 5: the gate reuses its compile
    step = impl.load()(cfg, 5) if impl.fused else impl.load()(cfg)
    step.call()
    step.reset()  # the gate starts again from the shared start, optimizer state included
    losses = step.losses(5)
    loss_err, update_err, why = gpt.compare(cfg, losses, step.params(), refs[cfg])
    assert why == "", why
    assert loss_err < gpt.LOSS_RTOL / 10 and update_err < gpt.UPDATE_RTOL / 10
    assert step.op_unit and step.count_ops() > 0


def test_layer_ops_count_by_hand():
    """ops_per_step, the one op definition every row shares: 1 block = 8 layers forward + 8
    backward + 12 tensor updates; embedding, final LayerNorm, head, loss: 4 forward + 4 backward;
    wte, wpe, lnf_w, lnf_b updates: 4."""
    assert gpt.ops_per_step(GPTConfig(n_layer=1)) == 8 + 8 + 12 + 8 + 4
    assert gpt.ops_per_step(GPTConfig(n_layer=3)) - gpt.ops_per_step(GPTConfig(n_layer=2)) == 28


@pytest.mark.parametrize("name", GATED)
def test_framework_op_counts_grow_by_the_same_amount_per_block(name):
    """Whatever a framework counts, each extra block adds the same number of its ops."""
    impl = REGISTRY["gpt"][name]
    if frameworks.impl_unavailable(impl):
        pytest.skip(frameworks.impl_unavailable(impl))
    counts = [
        impl.load()(
            GPTConfig(batch=1, seq_len=4, n_embd=8, n_layer=n, n_head=2, vocab=11), 2
        ).count_ops()
        for n in (1, 2, 3)
    ]
    assert counts[2] - counts[1] == counts[1] - counts[0] > 0, counts


def test_gate_catches_a_missing_bias_correction(refs):
    cfg = CONFIGS[1]
    state = gpt_numpy.GPTState(cfg, [p.astype(np.float64) for p in gpt.init_params(cfg)])
    idx, targets = gpt.make_batch(cfg)
    losses = []
    for _ in range(5):  # AdamW without bias correction: t stuck at a large value
        loss, cache = gpt_numpy.gpt_forward(state.params, idx, targets, cfg)
        grads = gpt_numpy.gpt_backward(state.params, cache, cfg)
        gpt_numpy.adamw_update(state.params, grads, (state.m, state.v), 10**6, cfg, state.decay)
        losses.append(loss)
    assert "update rel. error" in gpt.compare(cfg, np.array(losses), state.params, refs[cfg])[2]


def test_cli_quick_gpt_run_gives_ok_rows_for_every_implementation(tmp_path):
    """Every GPT implementation through `bench run`'s workers, but the compiled torch ones (a
    third of the suite's compile time): those run in process above (GATE_CASES, at a tenth of the
    gate's tolerance), and through the same workers as the MLP's in tests/test_cli.py."""
    out = tmp_path / "gpt"
    through_cli = [n for n in GPT_CPU_IMPLS if n not in COMPILED]
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "run",
            "--model",
            "gpt",
            "--impl",
            ",".join(through_cli),
            "--sizes",
            "1x8x16x1x2",
            "--rounds",
            "1",
            "--budget",
            "0.05",
            "--min-samples",
            "3",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    df = pd.read_csv(out / "results.csv")
    on_cpu = {n for n, i in REGISTRY["gpt"].items() if "cpu" in frameworks.devices(i)}
    assert on_cpu == set(GPT_CPU_IMPLS) and set(df["impl"]) == set(through_cli)
    assert (df["model"] == "gpt").all()
    assert (df["status"] == "ok").all(), df[["impl", "size", "status", "error"]]
    assert df["seq_len"].notna().all() and df["heads"].notna().all() and df["d_in"].isna().all()
    assert json.loads((out / "run.json").read_text())["settings"]["model"] == "gpt"
    assert (out / "report.md").is_file()
