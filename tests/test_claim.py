"""`bench claim`: each formula against a hand example, the bubble against the simulator, the
validation goal on the published runs, bad configs (one line, exit 2), and the --json keys."""

import json
import math

import pytest

from bench.claim import answer, formulas, model
from bench.claim.config import ConfigError, from_dict, with_changes
from bench.claim.hardware import HARDWARE
from bench.claim.host import NONE, HostCost
from bench.claim.presets import presets
from bench.claim.validate import predict, summary
from bench.commands import main

SMALL = {"model": {"layers": 4, "hidden": 1024, "ffn": 4096, "heads": 8, "seq": 512, "vocab": 1000},
         "parallel": {"tp": 2, "pp": 2, "dp": 2, "microbatch": 2, "global_batch": 32},
         "hardware": {"gpu": "H100-SXM"}}


def cfg(**changes):
    return with_changes(from_dict(SMALL, "small"), **changes) if changes else from_dict(SMALL, "small")


def test_layer_and_model_flops_are_megatrons_formula():
    c = presets()["megatron-22B-seqsel"]
    b, s, h, L, V = 4, 2048, 6144, 48, 51200
    dense, attn = formulas.layer_flops(c)
    assert dense == 24 * b * s * h * h and attn == 4 * b * s * s * h
    # 72 B s l h^2 (1 + s / 6h + V / 12 l h), one microbatch of B = 4 per step here
    assert formulas.model_flops(c) == pytest.approx(72 * b * s * L * h**2 * (1 + s / (6 * h) + V / (12 * L * h)))


def test_swiglu_and_grouped_query_attention_change_the_matmuls():
    c = cfg()
    base = formulas.layer_flops(c)[0]  # 2 b s h (3h) + 2 b s h h + 2 x 2 b s h f
    assert base == 2 * 2 * 512 * 1024 * (3 * 1024 + 1024 + 2 * 4096)
    swi = with_changes(c, mlp="swiglu", kv_heads=2)  # kv: 2 heads of 128 for K and V; MLP: 3 matrices
    assert formulas.layer_flops(swi)[0] == 2 * 2 * 512 * 1024 * (1024 + 2 * 256 + 1024 + 3 * 4096)


def test_collectives_sends_and_rates_by_hand():
    pr = formulas.Params(link_eff=0.5, gemm_eff=0.8, gemm_knee=64)
    assert formulas.allreduce_time(1e9, 4, 100, pr) == pytest.approx(2 * 1e9 * 3 / 4 / (100e9 * 0.5))
    assert formulas.allreduce_time(1e9, 1, 100, pr) == 0.0
    c = cfg()
    assert formulas.gemm_rate(c, 64, pr) == pytest.approx(989e12 * 0.8 * 0.5)  # n = knee: half the large rate
    # one microbatch's activation: b s h / tp bytes x 2 (bf16) to the next stage, inside the NVLink domain
    want = 2 * 512 * 1024 * 2 / 2 / (450e9 * formulas.PARAMS.link_eff)
    assert formulas.send_seconds(c, formulas.PARAMS) == pytest.approx(want)


def test_elementwise_bytes_and_memory_by_hand():
    c = cfg()
    s, b, h, f, a, t = 512, 2, 1024, 4096, 8, 2
    assert formulas.elementwise_bytes(c) == pytest.approx(22 * s * b * h + 4 * s * b * f / t + 9 * a * s * s * b / t)
    # no recomputation, no sequence parallelism: s b h (10 + 24 / t + 5 a s / (h t)) per layer, 2 layers,
    # 2 microbatches in flight (1F1B, pp = 2); state: 2 + 4 + 12 / dp bytes per parameter
    per_layer = s * b * h * (10 + 24 / t + 5 * a * s / (h * t))
    params = (2 * (h * 3 * h + h * h + 2 * h * f + 4 * h) + 1000 * h) / t
    assert formulas.params_per_gpu(c) == pytest.approx(params)
    assert formulas.memory_gb(c) == pytest.approx((params * (6 + 12 / 2) + per_layer * 2 * 2) / 1e9)


@pytest.mark.parametrize("pp, v, M", [(4, 1, 8), (4, 2, 8), (8, 3, 16), (2, 1, 2)])
def test_the_bubble_is_the_formula_when_stages_are_equal(pp, v, M):
    """(p - 1) / (m + p - 1) for 1F1B, (p - 1) / (v m + p - 1) interleaved: the simulator agrees."""
    c = with_changes(cfg(), layers=pp * v * 2, pp=pp, virtual_stages=v, dp=1, microbatch=1, global_batch=M,
                     vocab=1)
    stages = [model.Stage(1.0, 2.0, 0.0, 0.0)] * (pp * v)
    t = model.pipeline_time(c, stages, 0.0, with_host=False)
    busy = M * v * 3.0
    assert (t - busy) / t == pytest.approx((pp - 1) / (v * M + pp - 1))


def test_host_overhead_shows_only_where_the_host_is_slower_than_the_gpu():
    c = cfg()
    fast = model.step(c, NONE)
    assert fast.term("framework host overhead") == 0.0
    slow = model.step(c, HostCost(1e4, 0.0, 1.0, "test"))  # 10 ms per kernel: far above the GPU's work
    assert slow.term("framework host overhead") > 0 and slow.seconds > fast.seconds
    graphs = model.step(with_changes(c, cuda_graphs=True), HostCost(1e4, 0.0, 1.0, "test"))
    assert graphs.term("framework host overhead") < slow.term("framework host overhead")
    assert sum(t.seconds for t in slow.terms) == pytest.approx(slow.seconds)


def test_validation_meets_the_goal_on_the_published_a100_runs():
    from bench.claim.host import host_cost

    df = predict(host_cost("torch.eager", "xeon"))
    mae, worst = summary(df)
    assert len(df) == 8 and mae <= 0.035 and worst <= 0.085, df


@pytest.mark.parametrize("change, words", [
    ({"model": {"layers": 5}}, "[parallel] pp: layers 5 not divisible by pp x virtual_stages = 2"),
    ({"model": {"heads": 7, "hidden": 1022}}, "[parallel] tp: 2 does not divide heads 7"),
    ({"parallel": {"global_batch": 30}}, "[parallel] global_batch: 30 is not divisible by microbatch x dp = 4"),
    ({"hardware": {"gpu": "V100"}}, "[hardware] gpu: unknown GPU 'V100'"),
    ({"parallel": {"tp": "two"}}, "[parallel] tp: expected int, got 'two'"),
    ({"parallel": {"recompute": "some"}}, "[parallel] recompute: 'some' is not one of none, selective, full"),
    ({"model": {"depth": 3}}, "[model] depth: unknown key"),
    ({"model": {"layers": 400, "hidden": 16384, "ffn": 65536, "heads": 128}}, "memory per GPU: about"),
])
def test_a_bad_config_is_one_line_and_exit_2(change, words, tmp_path, capsys):
    raw = {k: dict(v) for k, v in SMALL.items()}
    for sec, kv in change.items():
        raw[sec].update(kv)
    lines = []
    for sec, kv in raw.items():
        lines.append(f"[{sec}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in kv.items()]
    path = tmp_path / "c.toml"
    path.write_text("\n".join(lines) + "\n")
    assert main(["claim", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err


def test_malformed_toml_and_missing_keys_are_one_line(tmp_path, capsys):
    (tmp_path / "a.toml").write_text("[model\nlayers = 2\n")
    (tmp_path / "b.toml").write_text("[model]\nlayers = 2\n[parallel]\n[hardware]\ngpu = 'A100-SXM-80GB'\n")
    for name, words in (("a.toml", "not valid TOML"), ("b.toml", "[model] hidden: missing")):
        assert main(["claim", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err, err
    with pytest.raises(ConfigError, match="unknown section"):
        from_dict({**SMALL, "cluster": {}})


def test_json_has_the_step_its_breakdown_and_the_mfu(capsys):
    assert main(["claim", "--preset", "megatron-1T-seqsel", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"step_s", "mfu", "breakdown_s", "framework_free_share", "assumptions"} <= set(out)
    assert sum(out["breakdown_s"].values()) == pytest.approx(out["step_s"])
    assert 0.5 < out["mfu"] < 0.6 and math.isfinite(out["framework_free_saving_s"])


def test_the_hardware_table_names_a_source_for_every_gpu(capsys):
    assert main(["claim", "--list-hardware"]) == 0
    out = capsys.readouterr().out
    for name in ("A100-SXM-80GB", "H100-SXM", "H200-SXM", "GB200", "GB300"):
        assert name in out and HARDWARE[name].source in out


def test_the_sweep_finds_the_host_speed_at_which_the_share_passes_each_threshold():
    c = with_changes(cfg(), layers=16, hidden=4096, ffn=16384, heads=32, seq=2048, tp=4, pp=4, dp=1,
                     microbatch=1, global_batch=16, recompute="selective", sequence_parallel=True)
    f5, f20 = answer.host_factor_for(c, 0.05), answer.host_factor_for(c, 0.20)
    assert 1 <= f5 < f20 < math.inf
    sw = c.software
    from bench.claim.host import host_cost

    at = answer.saving(model.step(c, host_cost(sw.framework, sw.host, f20 * 1.01)))[1]
    assert at >= 0.20
