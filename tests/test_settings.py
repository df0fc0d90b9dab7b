"""What a run measures unless told otherwise: the default sweep's implementations, rounds and
time goal per model, and what `--impl` changes."""

import pytest

from bench.sweep.settings import RunOptions, Settings, new_settings


def settings(model, impl, sizes="default", **kw):
    return new_settings(RunOptions(model, impl, sizes, **kw))


def test_the_gpt_default_sweep_leaves_out_torch_scan_with_why():
    s = settings("gpt", None)
    assert "torch.scan" not in s.impls and "torch.fullgraph" in s.impls and "jax.scan" in s.impls
    assert list(s.left_out) == ["torch.scan"]
    assert (
        "every worker process" in s.left_out["torch.scan"]
        and "scan operator" in s.left_out["torch.scan"]
    )
    assert (s.rounds, s.max_rounds, s.budget_min) == (5, 32, 15.0)


@pytest.mark.parametrize(
    "model,impl,sizes",
    [
        ("gpt", "all", "default"),
        ("gpt", None, "quick"),
        ("gpt", None, "4x64x32x2x2"),
        ("mlp", None, "default"),
    ],
)
def test_all_an_explicit_size_and_the_mlp_keep_torch_scan(model, impl, sizes):
    s = settings(model, impl, sizes)
    assert "torch.scan" in s.impls and s.left_out == {}


def test_naming_torch_scan_runs_it_in_the_default_gpt_sweep():
    s = settings("gpt", "torch.scan,c.ref")
    assert (s.impls, s.left_out) == (["torch.scan", "c.ref"], {})


def test_an_empty_impl_is_still_refused():
    with pytest.raises(ValueError, match="unknown gpt implementation ''"):
        settings("gpt", "")


def test_left_out_survives_run_json_and_old_run_json_has_none():
    s = settings("gpt", None)
    assert Settings.from_json(s.to_json()).left_out == s.left_out
    old = s.to_json()
    del old["left_out"]
    assert Settings.from_json(old).left_out == {}


def test_the_report_header_names_what_was_left_out():
    from bench.report.render import left_out_lines

    assert left_out_lines({"left_out": {}}) == [] and left_out_lines({}) == []
    (blank, line) = left_out_lines(
        {"left_out": {"torch.scan": "its compile is paid in every process"}}
    )
    assert blank == "" and line == (
        "Left out of this sweep (`--impl all` includes them): torch.scan: its compile "
        "is paid in every process."
    )
