"""What torch.compile made of each compiled torch row: torch.fullgraph is one graph with no
break (or an error saying why not); the common idiom (torch.compile) breaks at backward()."""

import pytest

torch = pytest.importorskip("torch")

from models.gpt.model import GPTConfig  # noqa: E402
from models.mlp.model import MLPConfig  # noqa: E402
from models.registry import REGISTRY  # noqa: E402
from models.torch_util import graph_facts  # noqa: E402

CFG = {
    "mlp": MLPConfig(batch=4, width=8, depth=2),
    "gpt": GPTConfig(batch=2, seq_len=8, n_embd=16, n_layer=1, n_head=2, vocab=32),
}


@pytest.mark.parametrize("model", ["mlp", "gpt"])
def test_fullgraph_is_one_graph_and_compile_is_several(model):
    full = REGISTRY[model]["torch.fullgraph"].load()(CFG[model]).describe()
    assert (full["graphs"], full["graph_breaks"]) == (1, 0)
    common = REGISTRY[model]["torch.compile"].load()(CFG[model]).describe()
    assert common["graphs"] >= 2 and common["graph_breaks"] >= 1 and common["break_reasons"]
    assert "graphs" not in REGISTRY[model]["torch.eager"].load()(CFG[model]).describe()


def test_a_full_graph_kind_that_breaks_is_an_error_with_the_reason():
    def step(x):
        y = x * 2
        print("a Python side effect")  # a graph break
        return y + 1

    with pytest.raises(
        RuntimeError, match=r"torch.fullgraph: the step is 2 graphs with 1 breaks, not one graph"
    ):
        graph_facts("fullgraph", step, torch.ones(3))
    assert graph_facts("compile", step, torch.ones(3))["graph_breaks"] == 1


def test_fullgraph_adamw_matches_torch_optim_adamw_step_by_step():
    """The functional AdamW (foreach, in the graph) against torch.optim.AdamW on the same model:
    the same losses and, tensor by tensor, the same updates after 3 steps, to float32 rounding
    (a tenth of the gate's tolerance)."""
    from models.gate import compare_to_reference
    from models.gpt.model import init_params

    cfg = GPTConfig(batch=2, seq_len=8, n_embd=16, n_layer=2, n_head=2, vocab=32)
    eager = REGISTRY["gpt"]["torch.eager"].load()(cfg)
    full = REGISTRY["gpt"]["torch.fullgraph"].load()(cfg)
    eager.reset(), full.reset()
    ref = (eager.losses(3), eager.params())
    loss_err, update_err, _ = compare_to_reference(
        init_params(cfg), full.losses(3), full.params(), ref, 1, 1
    )
    assert loss_err < 1e-6 and update_err < 1e-3


def test_the_check_after_timing_reuses_the_timed_scan_program():
    """The worker's finite-loss check after timing runs one call's K steps of a fused row, so it
    reuses the compiled torch.scan that was timed: a scan of another length is another compile
    (seconds, in every process: torch's caches do not keep a graph holding the scan op)."""
    from torch._dynamo.utils import counters

    from bench.sweep import prepare

    step = prepare.build(REGISTRY["mlp"]["torch.scan"], CFG["mlp"], 4).step
    before = counters["stats"]["unique_graphs"]
    assert prepare.still_finite(step) == ""
    assert prepare.tail_steps(step) == 4
    assert counters["stats"]["unique_graphs"] == before  # nothing compiled for the check
    step.losses(prepare.GATE_STEPS)
    assert counters["stats"]["unique_graphs"] == before + 1  # a length-5 scan is a new graph


@pytest.mark.parametrize("k, steps", [(2, 6), (4, 8)])
def test_the_gate_runs_the_timed_scan_program_in_whole_calls(k, steps):
    """The equivalence gate of a fused torch.scan row runs whole calls of the K-step scan that is
    timed (ceil(5 / K) of them) and passes; it compiles nothing more, where a 5-step scan is
    another graph (test_the_check_after_timing_reuses_the_timed_scan_program)."""
    from torch._dynamo.utils import counters

    from bench.sweep import prepare

    step = prepare.build(REGISTRY["mlp"]["torch.scan"], CFG["mlp"], k).step
    assert prepare.gate_steps(step) == steps
    before = counters["stats"]["unique_graphs"]
    g = prepare.gate(step, "mlp", CFG["mlp"])
    assert g.status == "ok" and g.loss_rel_err < 1e-6 and g.update_rel_err < 1e-3, g
    assert counters["stats"]["unique_graphs"] == before  # nothing compiled for the gate
    # the gate's unit: one call
    assert len(step.losses(k)) == k and counters["stats"]["unique_graphs"] == before
