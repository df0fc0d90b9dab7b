"""`bench claim`: a published run's FLOPs, bytes and seconds by hand, the memory model, the
pipeline split, the network boundaries, the host costs, the search against brute force, the
validation goals, bad configs (one line, exit 2) and the --json keys."""

import json
import random

import pandas as pd
import pytest

from bench.claim import answer, formulas, memory, model, search, validate
from bench.claim.config import ConfigError, from_dict, with_changes
from bench.claim.formulas import PARAMS
from bench.claim.hardware import HARDWARE
from bench.claim.host import NONE, HostCost
from bench.claim.presets import presets
from bench.commands import main

SMALL = {
    "model": {"layers": 4, "hidden": 1024, "ffn": 4096, "heads": 8, "seq": 512, "vocab": 1000},
    "parallel": {"tp": 2, "pp": 2, "dp": 2, "microbatch": 2, "global_batch": 32},
    "hardware": {"gpu": "H100-SXM"},
}
LLAMA70 = "h100_llama31_70b_bf16_64"  # tp 4, pp 4, dp 2, cp 2, v 5, mb 1, GB 128, s 8192, GQA 8
T, H, F = 2 * 512, 1024, 4096  # SMALL's tokens of a microbatch (2 x 512), hidden, ffn; tp = 2


def cfg(**changes):
    c = from_dict(SMALL, "small")
    return with_changes(c, **changes) if changes else c


def test_a_published_rows_flops_by_hand():
    c = presets()[LLAMA70]
    s, h, f, V, L = 8192, 8192, 28672, 128256, 80
    dense, attn = formulas.layer_flops(c)
    # QKV: h x (h + 2 x 8 kv heads x 128), projection h x h, SwiGLU: three h x f matrices
    assert dense == 2 * s * h * (h + 2048) + 2 * s * h * h + 3 * 2 * s * h * f
    assert attn == 2 * s * s * h  # fused and causal: half of Q K^T and P V
    assert formulas.logits_flops(c) == 2 * s * h * V
    # model FLOPs over the global batch of 128 sequences, attention counted non-causally
    assert formulas.model_flops(c) == 3 * 128 * (L * (dense + 4 * s * s * h) + 2 * s * h * V)


def test_a_published_rows_seconds_and_bytes_by_hand():
    c = presets()[LLAMA70]
    t, h, f = 4096, 8192, 28672  # tokens per GPU: seq 8192 over cp 2
    lt = formulas.layer_times(c, PARAMS)
    dense = (2 * 8192 * h * (h + 2048) + 2 * 8192 * h * h + 6 * 8192 * h * f) / 8
    rate = 794.5e12 * PARAMS.gemm_eff * 2048 / (2048 + 64)  # smallest side h / tp = 2048
    assert lt.dense == pytest.approx(dense / rate)
    elementwise = 22 * t * h / 4 + 8 * t * f / 4  # norms and residuals over tp; SwiGLU 6 f + 2 f
    assert lt.elementwise == pytest.approx(elementwise / (3.35e12 * 0.8))
    act = t * h * 2  # one activation, bf16; a ring of 4 moves 3/4 of it per GPU
    assert lt.tp_forward == pytest.approx(4 * act * 0.75 / (450e9 * 0.8))
    assert lt.tp_backward == pytest.approx(6 * act * 0.75 / (450e9 * 0.8))
    # tp x cp x dp = 16 GPUs per stage: more than a DGX, so stages talk over the 400 Gb/s NIC
    assert formulas.send_seconds(c, PARAMS) == pytest.approx(t * h * 2 / 4 / (50e9 * 0.8))
    assert memory.state_bytes_per_param(c) == 2 + 2 + 12 / 4  # sharded over dp x cp = 4


def test_the_step_adds_up_and_its_matmul_term_is_the_busiest_ranks():
    c = presets()[LLAMA70]
    st = model.step(c, NONE)
    assert sum(t.seconds for t in st.terms) == pytest.approx(st.seconds)
    lt = formulas.layer_times(c, PARAMS)
    mm, _ = formulas.head_times(c, PARAMS)
    # the last rank is the busiest: 5 chunks of 4 layers, plus the output layer; 64 microbatches
    assert st.term("matmuls") == pytest.approx(64 * (20 * 3 * lt.dense + 3 * mm))
    assert st.term("framework host overhead") == 0.0


def test_the_data_parallel_term_is_the_exposed_share_of_the_collectives():
    c = presets()[LLAMA70]
    params = max(formulas.rank_params(c, r) for r in range(4))
    # dp x cp = 4 replicas over the NIC: reduce-scatter bf16 gradients, all-gather bf16 weights
    comm = 2 * (params * 2 * 3 / 4 / (50e9 * 0.8))
    assert model.step(c, NONE).term("data parallel") == pytest.approx(PARAMS.dp_exposed * comm)


@pytest.mark.parametrize(
    "dp, cp, distributed, dtype, nvlink",
    [
        (3, 1, True, "bf16", True),  # a 6-GPU stage in an 8-GPU domain: NVLink, a ring of 3
        (3, 1, False, "bf16", True),  # no distributed optimizer: all-reduce = 2 ring passes
        (2, 1, True, "fp8", True),  # FP8 runs all-gather 1-byte weights
        (5, 1, True, "bf16", False),  # a 10-GPU stage spans domains: the NIC
        (3, 2, True, "bf16", False),  # context-parallel ranks are replicas too: a ring of 6
    ],
)
def test_the_data_parallel_collectives_by_hand(dp, cp, distributed, dtype, nvlink):
    changes = {"dp": dp, "cp": cp, "distributed_optimizer": distributed, "dtype": dtype}
    c = with_changes(cfg(), **changes, global_batch=2 * dp * 4)
    n, link, params = dp * cp, (450e9 if nvlink else 50e9) * 0.8, 1e9

    def ring(nbytes):
        return nbytes * (n - 1) / n / link

    grads, weights = ring(params * 2), ring(params * (1 if dtype == "fp8" else 2))
    want = grads + weights if distributed else 2 * grads
    assert formulas.dp_seconds(c, params, PARAMS) == pytest.approx(want)
    shard = n if distributed else 1  # Adam on a GPU's share: 30 bytes a parameter of HBM
    assert formulas.optimizer_seconds(c, params, PARAMS) == pytest.approx(
        params / shard * 30 / (3.35e12 * PARAMS.hbm_eff)
    )


@pytest.mark.parametrize("tp, dp, nvlink", [(4, 2, False), (2, 2, True), (8, 1, False)])
def test_pipeline_sends_cross_the_nic_once_a_stage_fills_a_domain(tp, dp, nvlink):
    """On a DGX (8 GPUs per NVLink domain) a pipeline of two 4-GPU stages stays on NVLink; a stage
    of 8 GPUs (tp x cp x dp = 8) sends to the next one over the NIC."""
    c = with_changes(cfg(), tp=tp, dp=dp, heads=8, global_batch=2 * dp * 4)
    nbytes = 2 * 512 * 1024 * 2 / tp
    link = 450e9 if nvlink else 50e9
    assert formulas.send_seconds(c, PARAMS) == pytest.approx(nbytes / (link * 0.8))


def test_uneven_splits_as_megatron_makes_them():
    bloom = presets()["a100_bloom176b_384"]
    assert formulas.split(bloom) == [6] * 10 + [5] * 2  # 70 over 12: the remainder first
    counted = with_changes(bloom, embedding_in_split=True, loss_in_split=True)
    assert formulas.split(counted) == [5] + [6] * 10 + [5]  # 72 units: embedding and loss take one
    big = with_changes(
        presets()["h100_llama31_405b_bf16_576"],
        pp=8,
        dp=4,
        virtual_stages=8,
        global_batch=256,
        embedding_in_split=True,
        loss_in_split=True,
    )
    assert formulas.split(big) == [1] + [2] * 62 + [1]  # 126 + 2 over pp 8 x v 8


def test_rank_memory_by_hand_and_gpipe_holds_every_microbatch():
    c = with_changes(cfg(), sequence_parallel=True)  # 2 layers per stage, M = 8
    # per token: norms' inputs and outputs 8h, Q K V 6h, output 2h, MLP 2f + 2f; over tp = 2
    per_layer = (8 * 1024 + 6 * 1024 + 2 * 1024 + 4 * 4096) / 2 * (2 * 512)
    state, acts = memory.rank_memory(c, 0)
    assert acts == pytest.approx(2 * 2 * per_layer)  # 1F1B: rank 0 holds pp = 2 microbatches
    assert state == pytest.approx(formulas.rank_params(c, 0) * (4 + 12 / 2))
    gpipe = with_changes(c, schedule="gpipe")
    assert memory.rank_memory(gpipe, 0)[1] == pytest.approx(8 * 2 * per_layer)  # all 8


def test_interleaved_in_flight_is_megatrons_warm_up_plus_one():
    c = with_changes(cfg(), layers=16, pp=4, dp=1, virtual_stages=2, microbatch=1, global_batch=8)
    assert [memory.in_flight_chunks(c, r) for r in range(4)] == [11, 9, 7, 5]  # 2(3-r) + 4 + 1


def test_an_over_memory_layout_is_refused_with_its_estimate(tmp_path, capsys):
    path = tmp_path / "big.toml"
    path.write_text(
        "[model]\nlayers = 96\nhidden = 12288\nffn = 49152\nheads = 96\nseq = 2048\n"
        "vocab = 51200\n[parallel]\ntp = 8\npp = 1\ndp = 1\nmicrobatch = 1\n"
        'global_batch = 8\n[hardware]\ngpu = "H100-SXM"\n'
    )
    assert main(["claim", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "memory per GPU: about" in err and "GiB" in err
    assert not memory.memory(presets()[LLAMA70]).total_gib > 80  # as run, it fits


def test_every_published_run_is_taken_and_fits():
    runs = validate.published()
    assert len(runs) == 26 and {r.table for r in runs} == {"table5", "modern"}
    assert all(memory.memory(r.config).fits for r in runs)


def test_validation_meets_the_per_table_mean_goals():
    df = validate.predict(NONE)
    for table, (mean_goal, _) in validate.GOALS.items():
        mean, _ = validate.summary(df[df["table"] == table])
        assert mean <= mean_goal, (table, mean)
    t5 = df[df["table"] == "table5"]
    assert validate.summary(t5)[1] <= validate.GOALS["table5"][1]


def test_host_launches_count_the_recomputed_forward_and_the_schedule_per_action():
    c = with_changes(cfg(), recompute="full")
    host = HostCost(us_per_kernel=10.0, us_per_action=100.0, factor=1.0, source="test")
    ch = model.chunks(c, host, PARAMS)[0]  # 2 layers, no output layer
    k = model.KERNELS_PER_LAYER
    assert ch.host_forward == pytest.approx((2 * k * 10 + 100) * 1e-6)
    assert ch.host_backward == pytest.approx((2 * (2 * k + k) * 10 + 100) * 1e-6)


def test_host_overhead_shows_only_where_the_host_is_slower_than_the_gpu():
    c = cfg()
    assert model.step(c, NONE).term("framework host overhead") == 0.0
    slow = model.step(c, HostCost(1e4, 0.0, 1.0, "test"))  # 10 ms per kernel
    assert slow.term("framework host overhead") > 0
    graphs = model.step(with_changes(c, cuda_graphs=True), HostCost(1e4, 0.0, 1.0, "test"))
    assert graphs.term("framework host overhead") < slow.term("framework host overhead")


def test_the_schedule_residual_is_per_action_over_two_m(tmp_path):
    from bench.claim import host
    from bench.schema import PIPELINE_COLUMNS

    rows = [
        ("torch", "1f1b", 4, 0.008),
        ("torch", "1f1b", 8, 0.032),
        ("torch", "gpipe", 4, 9.0),
        ("jax", "1f1b", 4, 9.0),
    ]
    table = pd.DataFrame(
        [
            dict.fromkeys(PIPELINE_COLUMNS, 0)
            | {
                "schema_version": 5,
                "run_id": "x",
                "model": "mlp",
                "framework": fw,
                "schedule": name,
                "status": "ok",
                "error": "",
                "microbatches": m,
                "residual_s": r,
            }
            for fw, name, m, r in rows
        ]
    )
    table.to_csv(tmp_path / "pipeline.csv", index=False)
    # 8 ms over 2 x 4 actions = 1000 µs; 32 ms over 2 x 8 = 2000 µs; median 1500
    assert host.schedule_us_per_action("torch.eager", str(tmp_path)) == pytest.approx(1500)
    (tmp_path / "analysis.csv").write_text("impl,us_per_op\nc.ref,2.0\ntorch.eager,7.5\n")
    assert host.per_op_us("torch.eager", str(tmp_path)) == pytest.approx(5.5)


@pytest.mark.parametrize("pp, v, M", [(4, 1, 8), (4, 2, 8), (8, 3, 16), (2, 1, 2)])
def test_the_bubble_is_the_formula_when_stages_are_equal(pp, v, M):
    """(p - 1) / (m + p - 1) for 1F1B, (p - 1) / (v m + p - 1) interleaved: the simulator agrees."""
    c = with_changes(
        cfg(),
        layers=pp * v * 2,
        pp=pp,
        virtual_stages=v,
        dp=1,
        microbatch=1,
        global_batch=M,
        vocab=1,
    )
    stages = [model.Chunk(2, 1.0, 2.0, 0.0, 0.0, {})] * (pp * v)
    t = model.pipeline_seconds(c, stages, 0.0, with_host=False)
    assert (t - M * v * 3.0) / t == pytest.approx((pp - 1) / (v * M + pp - 1))


def test_the_lower_bound_never_passes_the_simulated_step():
    rng = random.Random(7)
    host = HostCost(50.0, 500.0, 1.0, "test")
    for _ in range(30):
        pp, v = rng.choice([1, 2, 4]), rng.choice([1, 2])
        v = 1 if pp == 1 else v
        c = with_changes(
            cfg(),
            layers=pp * v * rng.choice([1, 2]),
            pp=pp,
            virtual_stages=v,
            dp=1,
            microbatch=1,
            global_batch=pp * rng.choice([1, 2, 4]),
            recompute=rng.choice(search.RECOMPUTE),
        )
        for h in (NONE, host):
            assert model.lower_bound(c, h) <= model.step(c, h).seconds * (1 + 1e-12)


def _grid():
    return from_dict(
        {
            "model": {
                "layers": 8,
                "hidden": 2048,
                "ffn": 8192,
                "heads": 16,
                "seq": 1024,
                "vocab": 1000,
            },
            "parallel": {"tp": 2, "pp": 2, "dp": 2, "microbatch": 1, "global_batch": 16},
            "hardware": {"gpu": "H100-SXM"},
        },
        "grid",
    )


def test_the_search_finds_the_brute_force_best():
    c = _grid()
    cands, tried = search.candidates(c)
    assert tried > len(cands) > 10
    for host in (NONE, HostCost(30.0, 2000.0, 1.0, "test")):
        brute = min(cands, key=lambda lay: model.step(lay, host).seconds)
        found = search.best(cands, host)
        assert found.step.seconds == pytest.approx(model.step(brute, host).seconds)
        assert found.simulated < len(cands)


def test_the_search_finds_a_planted_best_layout():
    """A host that pays 1 s per pipeline action and nothing per kernel: only pp = 1 (no pipeline,
    no schedule actions) escapes it, and the framework-free stack does not need to."""
    c = _grid()
    cands, _ = search.candidates(c)
    planted = search.best(cands, HostCost(0.0, 1e6, 1.0, "test")).step.config
    assert planted.parallel.pp == 1
    v = answer.verdict(c, host=HostCost(0.0, 1e6, 1.0, "test"), cands=(cands, 0))
    assert v.best.config.parallel.pp == 1 and v.share >= 0


def test_the_search_drops_layouts_that_do_not_fit():
    c = _grid()
    every = [with_changes(c, **ch) for ch in search.layouts(c) if _valid(c, ch)]
    cands, _ = search.candidates(c)
    tight = [lay for lay in every if not memory.memory(lay).fits]
    assert all(memory.memory(lay).fits for lay in cands)
    small = with_changes(c, hidden=8192, ffn=32768, heads=64, layers=64, seq=4096)
    fit, tried = search.candidates(small)
    assert all(memory.memory(lay).fits for lay in fit) and len(fit) < tried
    assert len(tight) == 0 or not set(map(id, tight)) & set(map(id, cands))


def _valid(c, change):
    try:
        with_changes(c, **change)
    except ConfigError:
        return False
    return True


def test_the_seed_search_beats_its_fixed_layout(capsys):
    assert main(["claim", "--preset", "seed", "--search", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"best", "best_framework_free", "saving_share", "layouts_tried", "layouts_fit"} <= set(
        out
    )
    assert out["best"]["step_s"] <= out["step_s"]
    assert out["best_framework_free"]["step_s"] <= out["best"]["step_s"]
    assert {
        "tp",
        "pp",
        "dp",
        "cp",
        "virtual_stages",
        "microbatch",
        "recompute",
        "schedule",
        "step_s",
        "mfu",
    } <= set(out["best"])
    assert 0 <= out["saving_share"] < 1 and out["layouts_fit"] <= out["layouts_tried"]


@pytest.mark.parametrize(
    "change, words",
    [
        ({"model": {"layers": 1}}, "[parallel] pp: 1 layers"),
        ({"model": {"heads": 7, "hidden": 1022}}, "[parallel] tp: 2 does not divide heads 7"),
        (
            {"parallel": {"global_batch": 30}},
            "[parallel] global_batch: 30 is not divisible by microbatch x dp = 4",
        ),
        ({"hardware": {"gpu": "V100"}}, "[hardware] gpu: unknown GPU 'V100'"),
        ({"hardware": {"gpu": "A100-SXM-80GB", "dtype": "fp8"}}, "no FP8 tensor cores"),
        ({"software": {"fp8_recipe": "block"}, "hardware": {"dtype": "fp8"}}, "MX block scaling"),
        ({"parallel": {"tp": "two"}}, "[parallel] tp: expected int, got 'two'"),
        ({"parallel": {"recompute": "some"}}, "[parallel] recompute: 'some' is not one of none"),
        ({"software": {"attention": "flash"}}, "[software] attention: 'flash' is not one of"),
        ({"model": {"depth": 3}}, "[model] depth: unknown key"),
    ],
)
def test_a_bad_config_is_one_line_and_exit_2(change, words, tmp_path, capsys):
    raw = {k: dict(v) for k, v in SMALL.items()}
    for sec, kv in change.items():
        raw.setdefault(sec, {}).update(kv)
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
    (tmp_path / "b.toml").write_text(
        "[model]\nlayers = 2\n[parallel]\n[hardware]\ngpu = 'A100-SXM-80GB'\n"
    )
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
    assert out["step_s"] == pytest.approx(71.49, rel=0.085) and 0.45 < out["mfu"] < 0.62


def test_the_hardware_table_names_a_source_for_every_gpu(capsys):
    assert main(["claim", "--list-hardware"]) == 0
    out = capsys.readouterr().out
    for name in ("A100-SXM-80GB", "H100-SXM", "H200-SXM", "B200", "GB200", "GB300"):
        assert name in out and HARDWARE[name].source in out


@pytest.mark.parametrize("dtype, tflops", [("bf16", 989), ("fp8", 1979)])
def test_the_mfu_divides_by_the_datasheet_peak_of_the_steps_dtype(dtype, tflops):
    """H100 SXM's dense peaks (NVIDIA's datasheet): 989 TFLOP/s BF16, 1,979 FP8."""
    assert formulas.peak_flops(cfg(dtype=dtype)) == tflops * 1e12


def test_model_flops_are_megatrons_formula_at_a_microbatch_of_two():
    """72 B s l h^2 (1 + s/6h + V/12lh) for the global batch B, whatever the microbatch (2 here)."""
    B, s, L, h, V = 32, 512, 4, 1024, 1000
    want = 72 * B * s * L * h * h * (1 + s / (6 * h) + V / (12 * L * h))
    assert formulas.model_flops(cfg()) == pytest.approx(want, rel=1e-12)
    # 12 h^2 of matrices and two LayerNorms (4 h) a layer, one vocab x h embedding
    assert formulas.total_params(cfg()) == L * (12 * h * h + 4 * h) + V * h


@pytest.mark.parametrize(
    "changes, want",
    [
        ({}, 22 * T * H + (2 * 2 + 2) * T * F / 2),  # norms whole, the GeLU reads 2 f writes 2 f
        ({"sequence_parallel": True}, 22 * T * H / 2 + 6 * T * F / 2),
        ({"mlp": "swiglu"}, 22 * T * H + (2 * 3 + 2) * T * F / 2),  # a gated MLP reads 4 f
        ({"dtype": "fp8"}, 22 * T * H + 6 * T * F / 2 + 4 * T * H / 2),  # FP8 copy and transpose
        (
            {"dtype": "fp8", "fp8_recipe": "block", "gpu": "B200"},
            22 * T * H + 6 * T * F / 2 + (4 + 2 / 32) * T * H / 2,  # a scale per 32
        ),
        ({"attention": "materialised"}, 22 * T * H + 6 * T * F / 2 + 9 * 8 * 512 * T / 2),
        ({"cp": 2}, 22 * T / 2 * H + 6 * T / 2 * F / 2),  # cp halves a GPU's tokens
    ],
)
def test_a_layers_elementwise_bytes_by_hand(changes, want):
    assert formulas.elementwise_bytes(cfg(**changes)) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("dtype", ["bf16", "fp8"])
def test_the_output_layer_and_loss_by_hand(dtype):
    """The logits' matmul in BF16 whatever the dtype (H100's MAMF 794.5 TFLOP/s x gemm_eff, at
    its smallest side, min(tokens, hidden)); the loss reads and writes fp32 logits, 4 t V / tp."""
    c = cfg(dtype=dtype, cp=2)
    t, n = 512 * 2 / 2, 512  # tokens of a microbatch on a GPU (cp 2); smallest side
    rate = 794.5e12 * PARAMS.gemm_eff * n / (n + PARAMS.gemm_knee)
    mm = 2 * 2 * 512 * 1024 * 1000 / (2 * 2) / rate  # 2 b s h V over tp x cp
    loss = 4 * t * 1000 / 2 / (3.35e12 * PARAMS.hbm_eff)
    assert formulas.head_times(c, PARAMS) == pytest.approx((mm, loss), rel=1e-12)


@pytest.mark.parametrize(
    "where, factor, want", [("grace", 0.0, 2.7), ("xeon", 0.0, 1.0), ("grace", 10.0, 10.0)]
)
def test_host_costs_scale_by_the_hosts_factor(where, factor, want):
    """Grace is 2.7x this project's CPU (TransformerEngine issue 2053), a Xeon 1x; a factor given
    wins over the host's."""
    from bench.claim import host

    here = host.host_cost("torch.eager", "xeon", 1.0)
    there = host.host_cost("torch.eager", where, factor)
    assert here.us_per_kernel > 0 and here.us_per_action > 0
    assert there.factor == want
    assert there.us_per_kernel == pytest.approx(here.us_per_kernel * want)
    assert there.us_per_action == pytest.approx(here.us_per_action * want)
    assert f"x {want:g} for a {where} host" in there.source
    assert host.host_cost("torch.eager", "grace").factor == 2.7  # the host's own, by default


@pytest.mark.parametrize(
    "changes, per_token",
    [
        # bf16: norm inputs and outputs 8 h (whole on each tp rank), Q K V 6 h, attention output
        # 2 h, the MLP's first output 2 f and its activation 2 f (split by tp = 2)
        ({}, 8 * H + (8 * H + 4 * F) / 2),
        ({"sequence_parallel": True}, (8 * H + 8 * H + 4 * F) / 2),
        ({"mlp": "swiglu"}, 8 * H + (8 * H + 6 * F) / 2),  # both halves of the gated output
        ({"dtype": "fp8"}, 6 * H + (9 * H + 3 * F) / 2),  # 1-byte matmul inputs, an FP8 copy
        ({"kv_heads": 2}, 8 * H + (5 * H + 4 * F) / 2),  # GQA: K and V of 2 of 8 heads
        ({"attention": "materialised"}, 8 * H + (8 * H + 4 * F + 5 * 8 * 512) / 2),
    ],
)
def test_a_layers_kept_activations_by_hand(changes, per_token):
    c = cfg(**changes)
    assert memory.full_layer_bytes(c) == pytest.approx(per_token * T, rel=1e-12)
    assert memory.layer_activation_bytes(c) == pytest.approx(per_token * T, rel=1e-12)


def test_recomputation_keeps_less():
    """Full: only the layer's input (2 t h, over tp with sequence parallelism); selective: no
    s x s scores even where attention materialises them."""
    assert memory.layer_activation_bytes(cfg(recompute="full")) == 2 * T * H
    full_sp = cfg(recompute="full", sequence_parallel=True)
    assert memory.layer_activation_bytes(full_sp) == 2 * T * H / 2
    selective = cfg(recompute="selective", attention="materialised")
    assert memory.layer_activation_bytes(selective) == pytest.approx((8 * H + 4 * H + 2 * F) * T)


@pytest.mark.parametrize(
    "distributed, dp, want", [(True, 2, 4 + 12 / 2), (True, 3, 8), (False, 3, 16)]
)
def test_state_bytes_per_parameter(distributed, dp, want):
    """16-bit weights and gradients (4 bytes) and fp32 master weights and two Adam moments (12),
    the 12 sharded over dp x cp by the distributed optimizer."""
    c = cfg(distributed_optimizer=distributed, dp=dp, global_batch=2 * dp * 4)
    assert memory.state_bytes_per_param(c) == want
    state, _ = memory.rank_memory(c, 0)
    assert state == pytest.approx(formulas.rank_params(c, 0) * want)


def test_the_last_rank_also_keeps_fp32_logits_and_their_gradient():
    c = cfg()
    _, first = memory.rank_memory(c, 0)
    _, last = memory.rank_memory(c, 1)
    in_flight = [memory.in_flight_chunks(c, r) for r in (0, 1)]
    per_layer = memory.layer_activation_bytes(c) * 2  # SMALL: 2 layers a stage
    assert first == pytest.approx(in_flight[0] * per_layer)
    assert last == pytest.approx(in_flight[1] * per_layer + 2 * 4 * T * 1000 / 2)


def test_full_recomputation_also_holds_the_layer_being_recomputed():
    c = cfg(recompute="full")
    _, acts = memory.rank_memory(c, 0)
    kept = memory.in_flight_chunks(c, 0) * 2 * (2 * T * H)  # 2 layers' inputs per chunk in flight
    assert acts == pytest.approx(kept + memory.full_layer_bytes(c))


# SMALL on an H100: MAMF BF16 794.5 and FP8 1,402.6 TFLOP/s, HBM 3.35 TB/s, NVLink 450 GB/s one
# way, the NIC 50 GB/s, 8 GPUs per NVLink domain (bench/claim/hardware.py's sources)
H100_LINK, H100_NIC = 450e9 * PARAMS.link_eff, 50e9 * PARAMS.link_eff


@pytest.mark.parametrize(
    "changes, per_layer",
    [
        ({}, 1024 * (1024 + 2048) + 1024 * 1024 + 2 * 1024 * 4096 + 4 * 1024),
        # 2 kv heads of 8 (head dim 128): K and V are 256 wide; SwiGLU: three h x f matrices
        (
            {"kv_heads": 2, "mlp": "swiglu"},
            1024 * (1024 + 512) + 1024 * 1024 + 3 * 1024 * 4096 + 4 * 1024,
        ),
    ],
)
def test_a_layers_parameters_and_each_ranks_share_by_hand(changes, per_layer):
    c = with_changes(cfg(), **changes)
    assert formulas.head_dim(c) == 128
    assert formulas.layer_params(c) == per_layer
    assert formulas.total_params(c) == 4 * per_layer + 1000 * 1024  # one embedding
    # pp 2, 4 layers: 2 each; the first holds the embedding, the last the output layer; over tp 2
    assert formulas.rank_params(c, 0) == formulas.rank_params(c, 1) == (2 * per_layer + 1024e3) / 2
    middle = with_changes(c, pp=4, layers=8, global_batch=16)  # ranks 1, 2: layers only
    assert formulas.rank_params(middle, 1) == 2 * per_layer / 2
    assert formulas.rank_params(middle, 3) == (2 * per_layer + 1024e3) / 2
    # interleaved, v = 2 over pp 2: rank 0 holds chunks 0 and 2 (8 layers in 4 chunks of 2)
    inter = with_changes(c, layers=8, virtual_stages=2, global_batch=32)
    assert formulas.rank_params(inter, 0) == (4 * per_layer + 1024e3) / 2


def test_a_ring_moves_n_minus_one_nths_and_a_ring_of_one_nothing():
    assert formulas.ring_seconds(4e9, 4, 100.0, PARAMS) == pytest.approx(3e9 / (100e9 * 0.8))
    assert formulas.ring_seconds(4e9, 1, 100.0, PARAMS) == 0.0
    assert formulas.ring_seconds(4e9, 2, 100.0, PARAMS) == pytest.approx(2e9 / 80e9)


@pytest.mark.parametrize(
    "changes, forward, backward",
    [
        # no sequence parallelism: two all-reduces each way, 2 ring passes of a t x h activation
        ({}, 2 * 2, 2 * 2),
        # sequence parallel: gather twice + reduce-scatter twice; backward 4 + gather twice
        ({"sequence_parallel": True}, 4, 6),
        # FP8 gathers 1-byte activations: the two gathers count half
        ({"sequence_parallel": True, "dtype": "fp8"}, 1 + 2, 4 + 1),
    ],
)
def test_tensor_parallel_collectives_by_hand(changes, forward, backward):
    c = with_changes(cfg(), **changes)
    act = T * H * 2 * (2 - 1) / 2  # bf16, a ring of tp = 2 moves half
    fwd, bwd = formulas.tp_seconds(c, PARAMS)
    assert (fwd, bwd) == pytest.approx((forward * act / H100_LINK, backward * act / H100_LINK))
    hidden = formulas.tp_seconds(with_changes(c, tp_comm_overlap=True), PARAMS)
    assert hidden == pytest.approx((fwd * 0.25, bwd * 0.25))  # only the first of 4 chunks shows
    assert formulas.tp_seconds(with_changes(c, tp=1, heads=8), PARAMS) == (0.0, 0.0)


def test_a_layers_times_with_materialised_attention_and_fp8_matmuls():
    c = with_changes(cfg(), attention="materialised", dtype="fp8")
    lt = formulas.layer_times(c, PARAMS)
    # every score computed: 4 b s^2 h over tp 2, at the fitted share of the BF16 MAMF
    attn = 4 * 2 * 512 * 512 * 1024 / 2
    assert lt.attn == pytest.approx(attn / (794.5e12 * PARAMS.attn_eff_materialised))
    assert lt.attn_backward_ratio == 2.0
    dense = (2 * T * H * 3 * H + 2 * T * H * H + 2 * 2 * T * H * F) / 2
    rate = 1402.6e12 * PARAMS.gemm_eff_fp8 * 512 / (512 + 64)  # smallest side h / tp = 512
    assert lt.dense == pytest.approx(dense / rate)
    softmax = 9 * 8 * 512 * T / 2  # 9 a s t bytes over tp
    assert lt.softmax == pytest.approx(softmax / (3.35e12 * 0.8))
    assert lt.recompute("none") == 0.0
    assert lt.recompute("selective") == pytest.approx(lt.attn + lt.softmax)
    assert lt.recompute("full") == pytest.approx(lt.forward)
    fused = formulas.layer_times(with_changes(c, attention="fused"), PARAMS)
    assert fused.attn == pytest.approx(attn / 2 / (794.5e12 * PARAMS.attn_eff))
    assert fused.attn_backward_ratio == 2.5 and fused.softmax == 0.0


def test_stages_per_domain_and_the_send_between_them():
    assert formulas.blocks_per_domain(cfg()) == 2  # tp 2 x dp 2: two 4-GPU stages in 8
    assert formulas.blocks_per_domain(with_changes(cfg(), dp=8, global_batch=64)) == 0
    one = with_changes(cfg(), pp=1, layers=4)
    assert formulas.send_seconds(one, PARAMS) == 0.0
    nbytes = T * H * 2 / 2
    assert formulas.send_seconds(cfg(), PARAMS) == pytest.approx(nbytes / H100_LINK)  # pp 2 <= 2
    wide = with_changes(cfg(), pp=4, global_batch=32)  # 4 stages, 2 per domain: the NIC
    assert formulas.send_seconds(wide, PARAMS) == pytest.approx(nbytes / H100_NIC)
    own = with_changes(wide, nic_gbs=25.0)  # a row's own NIC wins over the GPU table's
    assert formulas.send_seconds(own, PARAMS) == pytest.approx(nbytes / (25e9 * 0.8))


def test_the_memory_estimate_is_the_fullest_rank_even_a_middle_one():
    """9 layers with the embedding and the loss counted, over pp 4: [2, 3, 3, 1]. Rank 1 holds 3
    layers and 3 microbatches in flight (1F1B), more than rank 0's 2 layers x 4 and embedding:
    the estimate is rank 1's, the most over every rank."""
    c = with_changes(cfg(), layers=9, pp=4, embedding_in_split=True, loss_in_split=True)
    assert formulas.split(c) == [2, 3, 3, 1]
    every = {r: sum(memory.rank_memory(c, r)) for r in range(4)}
    mem = memory.memory(c)
    assert mem.rank == max(every, key=every.get) == 1
    assert (mem.state_gib + mem.activations_gib) * 2**30 == pytest.approx(every[1])


HOST = HostCost(us_per_kernel=10.0, us_per_action=100.0, factor=1.0, source="test")


@pytest.mark.parametrize("recompute, redo", [("none", 0), ("selective", 3)])
def test_the_last_chunk_carries_the_output_layer_and_its_launches(recompute, redo):
    """SMALL (pp 2, 2 layers a chunk): the last chunk adds the output layer and loss, forward once
    and backward twice, and HEAD_KERNELS launches each way; selective recomputation launches 3
    kernels a layer again; with CUDA graphs each action is one launch; without a pipeline no
    schedule cost."""
    c = with_changes(cfg(), recompute=recompute)
    lt, head = formulas.layer_times(c, PARAMS), sum(formulas.head_times(c, PARAMS))
    first, last = model.chunks(c, HOST, PARAMS)
    redo_s = lt.recompute(recompute)
    assert first.forward == pytest.approx(2 * lt.forward)
    assert last.forward == pytest.approx(2 * lt.forward + head)
    assert last.backward == pytest.approx(2 * (lt.backward + redo_s) + 2 * head)
    k, h = model.KERNELS_PER_LAYER, model.HEAD_KERNELS
    assert first.host_forward == pytest.approx((2 * k * 10 + 100) * 1e-6)
    assert last.host_forward == pytest.approx(((2 * k + h) * 10 + 100) * 1e-6)
    assert last.host_backward == pytest.approx(((2 * (2 * k + redo) + h) * 10 + 100) * 1e-6)
    graphs = model.chunks(with_changes(c, cuda_graphs=True), HOST, PARAMS)[1]
    assert (graphs.host_forward, graphs.host_backward) == pytest.approx((110e-6, 110e-6))
    (alone,) = model.chunks(with_changes(c, pp=1, global_batch=16), HOST, PARAMS)
    assert alone.host_forward == pytest.approx((4 * k + h) * 10e-6)  # no schedule: no action cost


def test_every_term_of_the_busiest_rank_by_kind():
    c = presets()[LLAMA70]  # the last rank is the busiest: 5 chunks of 4 layers + output layer
    st, lt = model.step(c, NONE), formulas.layer_times(c, PARAMS)
    _, loss = formulas.head_times(c, PARAMS)
    M, layers = 64, 20
    assert st.term("attention") == pytest.approx(M * layers * (1 + 2.5) * lt.attn)
    assert st.term("other work") == pytest.approx(M * (layers * 3 * lt.elementwise + 3 * loss))
    assert st.term("tensor parallel") == pytest.approx(
        M * layers * (lt.tp_forward + lt.tp_backward)
    )
    assert st.term("recomputation") == 0.0
    full = with_changes(c, recompute="full")
    lt_full = formulas.layer_times(full, PARAMS)
    assert model.step(full, NONE).term("recomputation") == pytest.approx(
        M * layers * lt_full.forward
    )
    dp, opt = st.term("data parallel"), st.term("optimizer")
    assert dp > 0 and opt > 0 and model.lower_bound(c, NONE) >= dp + opt


def test_the_busiest_rank_and_the_dp_term_follow_the_rank_that_holds_most():
    """5 layers over pp 2 ([3, 2]), a small vocabulary: rank 0 works most. With the embedding
    counted over pp 4 ([1, 2, 1, 1]), rank 1 holds the most parameters: its gradients pace the
    data-parallel collectives."""
    c = with_changes(cfg(), layers=5)
    cs = model.chunks(c, NONE, PARAMS)
    assert model.busiest_rank(c, cs) == 0
    uneven = with_changes(cfg(), layers=5, pp=4, embedding_in_split=True, global_batch=32)
    assert formulas.split(uneven) == [1, 2, 1, 1]
    most = max(formulas.rank_params(uneven, r) for r in range(4))
    assert most == formulas.rank_params(uneven, 1)
    want = PARAMS.dp_exposed * formulas.dp_seconds(uneven, most, PARAMS)
    assert model.step(uneven, NONE).term("data parallel") == pytest.approx(want)


def test_the_lower_bound_by_hand():
    """pp 2, M = 8: rank 0 works M (f0 + b0) from the start; rank 1 cannot start before stage 0's
    first forward and backward have passed, and sends both ways: M (f1 + b1) + f0 + b0 + 2 send;
    then the data-parallel and optimizer terms."""
    c = cfg()
    f0, f1 = (ch.forward for ch in model.chunks(c, NONE, PARAMS))
    b0, b1 = (ch.backward for ch in model.chunks(c, NONE, PARAMS))
    send, M = formulas.send_seconds(c, PARAMS), c.microbatches
    st = model.step(c, NONE)
    after = st.term("data parallel") + st.term("optimizer")
    want = max(M * (f0 + b0), M * (f1 + b1) + f0 + b0 + 2 * send) + after
    assert model.lower_bound(c, NONE) == pytest.approx(want)


def test_the_lower_bound_counts_every_stage_ahead():
    """pp 4, one layer a stage: rank 3 waits for stages 0, 1 and 2 to pass microbatch 0 both ways."""
    c = with_changes(cfg(), pp=4, global_batch=32)
    cs = model.chunks(c, NONE, PARAMS)
    w = [ch.forward + ch.backward for ch in cs]
    send, M = formulas.send_seconds(c, PARAMS), c.microbatches
    st = model.step(c, NONE)
    after = st.term("data parallel") + st.term("optimizer")
    want = max(M * w[0], M * w[1] + w[0] + 2 * send, M * w[2] + w[0] + w[1] + 4 * send)
    want = max(want, M * w[3] + w[0] + w[1] + w[2] + 6 * send)
    assert model.lower_bound(c, NONE) == pytest.approx(want + after)


def test_the_breakdown_names_each_terms_formula_and_inputs():
    """What a reader sees beside each term of SMALL's step (send: t h / tp bf16 bytes over NVLink
    at 360 GB/s, 2.91 us)."""
    rows = [(t.name, t.formula, t.inputs) for t in model.step(cfg(), HOST).terms]
    mm = "M x layers x 3 F_dense / rate(n) (+ output layer 3 F_logits / rate)"
    assert rows == [
        ("matmuls", mm, "8 microbatches x 2 layers"),
        ("attention", "M x layers x (1 + backward ratio) F_attn / (MAMF x attn_eff)", "fused"),
        ("other work", "M x layers x 3 elementwise bytes / (HBM x hbm_eff) (+ loss)", "bf16"),
        (
            "tensor parallel",
            "M x layers x collectives (forward + backward) over tp on NVLink",
            "tp = 2, overlap off",
        ),
        ("recomputation", "M x layers x what the backward runs again", "none"),
        (
            "pipeline bubble and sends",
            "simulate(schedule, chunk times, send) - the busiest rank's work",
            "1f1b, pp = 2, v = 1, M = 8, send 0.00291 ms",
        ),
        (
            "data parallel",
            "dp_exposed x (reduce-scatter grads + all-gather weights) over dp x cp",
            "dp = 2, cp = 1, exposed 0.687",
        ),
        ("optimizer", "params / (dp cp) x 30 bytes / (HBM hbm_eff)", "Adam"),
        (
            "framework host overhead",
            "simulate(max(GPU, launch) per action) - simulate(GPU)",
            "10 µs per kernel, 15 kernels per layer forward, 100 µs of schedule per action, "
            "CUDA graphs off",
        ),
    ]
    on = model.step(with_changes(cfg(), tp_comm_overlap=True, cuda_graphs=True), HOST)
    assert on.terms[3].inputs == "tp = 2, overlap on" and on.terms[-1].inputs.endswith("graphs on")


@pytest.mark.parametrize(
    "changes, fullest",
    [
        # [1, 2, 2, 0] with the embedding and loss counted: rank 0's embedding and 4 microbatches
        # in flight outweigh rank 1's two layers and the last rank's logits
        ({"embedding_in_split": True, "loss_in_split": True, "vocab": 32000}, 0),
        # [2, 1, 1, 1] and a 256k vocabulary: the last rank's fp32 logits outweigh the rest
        ({"vocab": 256000}, 3),
    ],
)
def test_the_memory_estimate_is_the_fullest_rank_at_either_end(changes, fullest):
    c = with_changes(cfg(), layers=5, pp=4, global_batch=32, **changes)
    every = {r: sum(memory.rank_memory(c, r)) for r in range(4)}
    assert max(every, key=every.get) == memory.memory(c).rank == fullest


def _tiny_grid(**changes):
    """8 H100s (one NVLink domain), 4 heads, 4 layers, seq 512, 8 sequences a step."""
    model_ = {"layers": 4, "hidden": 256, "ffn": 1024, "heads": 4, "seq": 512, "vocab": 100}
    parallel = {"tp": 1, "pp": 1, "dp": 8, "microbatch": 1, "global_batch": 8}
    c = from_dict({"model": model_, "parallel": parallel, "hardware": {"gpu": "H100-SXM"}}, "tiny")
    return with_changes(c, **changes) if changes else c


def test_the_search_grid_by_hand():
    """tp divides the 4 heads; cp is a power of two dividing 512 and the GPUs left; pp divides what
    is left and is at most layers + 2 = 6 (so not 8); dp takes the rest. Schedules: one process
    runs 1F1B alone; a pipeline GPipe, 1F1B and interleaved at each v up to layers / pp."""
    shapes = {  # (tp, cp, pp, dp)
        (1, 1, 1, 8), (1, 1, 2, 4), (1, 1, 4, 2),
        (1, 2, 1, 4), (1, 2, 2, 2), (1, 2, 4, 1),
        (1, 4, 1, 2), (1, 4, 2, 1), (1, 8, 1, 1),
        (2, 1, 1, 4), (2, 1, 2, 2), (2, 1, 4, 1), (2, 2, 1, 2), (2, 2, 2, 1), (2, 4, 1, 1),
        (4, 1, 1, 2), (4, 1, 2, 1), (4, 2, 1, 1),
    }  # fmt: skip
    c = _tiny_grid()
    assert set(search._shapes(c)) == shapes and len(list(search._shapes(c))) == 18
    twelve = set(search._shapes(_tiny_grid(dp=12, global_batch=12)))
    assert (1, 1, 6, 2) in twelve and max(pp for _, _, pp, _ in twelve) == 6  # 12 > 6
    wide = set(search._shapes(_tiny_grid(dp=16, heads=16, global_batch=16)))
    assert max(tp for tp, _, _, _ in wide) == 8  # 16 heads, 16 GPUs: tp stays in a domain
    assert {tp for tp, *_ in search._shapes(_tiny_grid(heads=12, hidden=384))} == {1, 2, 4}
    # cp: powers of two only (24 GPUs, seq 96: not 3, 6, 12 or 24) and up to 32 (64 GPUs)
    assert {s[1] for s in search._shapes(_tiny_grid(seq=96, dp=24, global_batch=24))} == {
        1,
        2,
        4,
        8,
    }
    assert max(s[1] for s in search._shapes(_tiny_grid(dp=64, global_batch=64))) == 32
    assert {s[2] for s in search._shapes(_tiny_grid(dp=14, global_batch=14))} == {1, 2}  # not 7
    assert all(isinstance(x, int) for shape in search._shapes(c) for x in shape)
    assert search.divisors(36) == [1, 2, 3, 4, 6, 9, 12, 18, 36] and search.divisors(1) == [1]
    assert list(search._schedules(1, 4)) == [("1f1b", 1)]
    assert list(search._schedules(2, 4)) == [("gpipe", 1), ("1f1b", 1), ("interleaved-1f1b", 2)]
    assert list(search._schedules(4, 4)) == [("gpipe", 1), ("1f1b", 1)]
    assert list(search._schedules(2, 9))[-1] == ("interleaved-1f1b", 4)
    lays = list(search.layouts(c))
    # microbatches of 1, 2, 4, 8 that with dp divide the 8 sequences: 8 / dp of them... per shape
    per_mb = {8: 1, 4: 2, 2: 3, 1: 4}
    scheds = {1: 1, 2: 3, 4: 2}
    want = sum(per_mb[dp] * scheds[pp] * 3 for _, _, pp, dp in shapes)
    assert len(lays) == want
    assert all(lay["sequence_parallel"] == (lay["tp"] > 1) for lay in lays)
    assert {lay["recompute"] for lay in lays} == {"none", "selective", "full"}
    counted = _tiny_grid(embedding_in_split=True, loss_in_split=True)  # 6 units over pp 2: v to 3
    assert {lay["virtual_stages"] for lay in search.layouts(counted) if lay["pp"] == 2} == {1, 2, 3}
    cands, tried = search.candidates(c)
    assert tried == want and 0 < len(cands) <= tried
    one = search.layout_of(_tiny_grid())
    assert one == {
        "tp": 1,
        "pp": 1,
        "dp": 8,
        "cp": 1,
        "virtual_stages": 1,
        "microbatch": 1,
        "recompute": "none",
        "schedule": "1f1b",
        "microbatches": 1,
    }


def test_no_candidate_gives_no_best():
    assert search.best([], NONE) is None
