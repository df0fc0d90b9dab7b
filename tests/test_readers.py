"""Readers never crash: `bench report` and `bench compare` on any subset of implementations
report what they can, and on any damaged file say what is wrong in one line, with exit 2."""

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import shared_scope
from fixture_run import make_run

from bench.commands import main
from bench.schema import SchemaError


@pytest.fixture(scope=shared_scope)
def pristine(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("readers") / "run")


@pytest.fixture()
def run(pristine, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(pristine, copy)
    return copy


def keep_only(run, impls):
    for name in ("results.csv", "rounds.csv", "samples.csv"):
        df = pd.read_csv(run / name, keep_default_na=False, na_values=[""])
        df[df["impl"].isin(impls)].to_csv(run / name, index=False)


@pytest.mark.parametrize(
    "impls",
    [
        ["numpy.loop", "torch.eager"],  # no floor (c.ref)
        ["torch.eager"],
        ["jax.scan"],
        ["c.ref"],  # only the floor
        ["null.noop"],  # only the control
        [],
    ],
)
def test_report_handles_any_subset_of_implementations(run, impls, capsys):
    keep_only(run, impls)
    assert main(["report", str(run)]) == 0, capsys.readouterr().err
    text = (run / "report.md").read_text()
    assert "## Headlines" in text
    if impls and "c.ref" not in impls and impls != ["null.noop"]:
        assert "no floor" in text  # the overhead says why it is not computed or drawn


def test_report_handles_a_run_where_every_case_failed(run, capsys):
    df = pd.read_csv(run / "results.csv")
    df["status"], df["error"] = "crashed", "worker killed by SIGSEGV"
    df.to_csv(run / "results.csv", index=False)
    assert main(["report", str(run)]) == 0, capsys.readouterr().err
    assert "crashed" in (run / "report.md").read_text()


def truncate(path, fraction=0.6):
    text = path.read_text()
    path.write_text(text[: int(len(text) * fraction)])


def set_cell(path, column, value, row=2):
    df = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=str)
    df.loc[row, column] = value
    df.to_csv(path, index=False)


def drop_column(path, column):
    pd.read_csv(path, dtype=str, keep_default_na=False).drop(columns=[column]).to_csv(
        path, index=False
    )


def future_meta(run):
    meta = json.loads((run / "run.json").read_text())
    meta["schema_version"] = 99
    (run / "run.json").write_text(json.dumps(meta))


def drop_rows(path, impl):
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df[df["impl"] != impl].to_csv(path, index=False)


def second_row(run):
    r = pd.read_csv(run / "results.csv").iloc[2]
    return f"{r['impl']} {r['size']}"


DAMAGE = {
    "truncated results.csv": (
        lambda r: truncate(r / "results.csv"),
        "results.csv does not end with a line break: truncated",
    ),
    "non-numeric median_s": (
        lambda r: set_cell(r / "results.csv", "median_s", "fast"),
        "results.csv: column median_s has a non-numeric value 'fast' (data row 3)",
    ),
    "ok row without median_s": (
        lambda r: set_cell(r / "results.csv", "median_s", ""),
        lambda r: f"results.csv: ok row {second_row(r)} has no median_s (truncated?)",
    ),
    "rounds missing for an ok case": (
        lambda r: drop_rows(r / "rounds.csv", "numpy.loop"),
        "rounds.csv has no rounds of ok case numpy.loop B1-H1-L2 (truncated?)",
    ),
    "results missing a case": (
        lambda r: drop_rows(r / "results.csv", "torch.eager"),
        "results.csv has no row for torch.eager B1-H1-L2, which rounds.csv has (truncated?)",
    ),
    "run.json a list": (
        lambda r: (r / "run.json").write_text("[]"),
        "run.json is not a JSON object",
    ),
    "no run.json": (lambda r: (r / "run.json").unlink(), "is not a run directory (no run.json)"),
    "missing column": (
        lambda r: drop_column(r / "results.csv", "flops_per_step"),
        "missing ['flops_per_step']",
    ),
    "unknown status": (
        lambda r: set_cell(r / "results.csv", "status", "great"),
        "unknown status 'great' (allowed: ok, mismatch, diverged, error, crashed, timeout, ",
    ),
    "future schema in run.json": (future_meta, "from a newer harness"),
    "future schema in results.csv": (
        lambda r: set_cell(r / "results.csv", "schema_version", "99"),
        "results.csv has schema version 99, from a newer harness",
    ),
    "future schema in run.json, file named": (future_meta, "run.json has schema version 99"),
    "empty results file": (lambda r: (r / "results.csv").write_text(""), "results.csv is empty"),
    "run.json not JSON": (
        lambda r: (r / "run.json").write_text("{nope"),
        "run.json is not valid JSON",
    ),
    "run.json without settings": (
        lambda r: (r / "run.json").write_text('{"schema_version": 3, "run_id": "x"}'),
        "'status' is missing",
    ),
    "no rounds.csv": (lambda r: (r / "rounds.csv").unlink(), "rounds.csv is missing"),
    "truncated rounds.csv": (lambda r: truncate(r / "rounds.csv", 0.3), "rounds.csv"),
    "binary garbage": (
        lambda r: (r / "results.csv").write_bytes(b"\x00\xff\xfe" * 100),
        "results.csv",
    ),
}


# The raw samples: read by what uses them (a resume, a reader of samples), never by report or compare.
SAMPLE_DAMAGE = {
    "no samples file": (lambda r: (r / "samples.csv").unlink(), "has no samples.csv(.gz)"),
    "non-numeric call_ns": (
        lambda r: set_cell(r / "samples.csv", "call_ns", "1e9x"),
        "samples.csv",
    ),
    "empty samples file": (lambda r: (r / "samples.csv").write_text(""), "samples.csv is empty"),
}


@pytest.mark.parametrize("damage", list(SAMPLE_DAMAGE))
def test_damaged_samples_are_refused_by_their_reader_and_ignored_by_report_and_compare(
    run, pristine, damage
):
    from bench.results import read_run

    do, words = SAMPLE_DAMAGE[damage]
    do(run)
    with pytest.raises(SchemaError, match=re.escape(words)):
        read_run(run)
    assert read_run(run, samples=False)[2] is None
    assert main(["report", str(run)]) == 0 and main(["compare", str(pristine), str(run)]) == 0


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("command", ["report", "compare"])
def test_damaged_input_is_one_line_naming_the_problem_and_exit_2(
    run, pristine, damage, command, capsys
):
    do, words = DAMAGE[damage]
    do(run)
    capsys.readouterr()
    args = ["report", str(run)] if command == "report" else ["compare", str(pristine), str(run)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("bench: error:"), err
    assert (words(run) if callable(words) else words) in err, err


def test_compare_with_disjoint_runs_lists_cases_in_one_run_only(run, pristine, capsys):
    keep_only(run, ["numpy.loop"])
    assert main(["compare", str(pristine), str(run)]) == 0
    out = capsys.readouterr().out
    assert "torch.eager B1-H1-L2: only in A" in out


def _row() -> dict:
    from bench.schema import RESULT_COLUMNS

    return {
        c: 1 for c in reversed(list(RESULT_COLUMNS)) if c not in ("schema_version", "run_id")
    } | {
        "impl": "x",
        "size": "s",
    }


def test_results_file_has_the_schema_columns_in_order_and_no_index(tmp_path):
    from bench.results import RunDir
    from bench.schema import RESULT_COLUMNS, SCHEMA_VERSION

    run = RunDir.create(tmp_path / "not" / "yet" / "run")  # parents are made
    run.write_results([_row()])  # keys in reverse order
    header, line = run.results_path.read_text().splitlines()
    assert header.split(",") == list(RESULT_COLUMNS)
    assert line.split(",")[list(RESULT_COLUMNS).index("schema_version")] == str(SCHEMA_VERSION)
    assert line.split(",")[list(RESULT_COLUMNS).index("run_id")] == "run"  # the directory's


def test_results_writer_names_the_missing_and_unknown_keys(tmp_path):
    from bench.results import RunDir

    run = RunDir.create(tmp_path / "run")
    bad = _row()
    del bad["gflops"]
    bad["gflop"] = 1
    with pytest.raises(ValueError) as e:
        run.write_results([bad])
    assert str(e.value) == "results row x s: missing ['gflops'], unknown ['gflop']"


def test_compressed_samples_hold_the_same_bytes(tmp_path):
    import gzip

    from bench.results import RunDir

    run = RunDir.create(tmp_path / "run")
    before = run.samples_path.read_bytes()
    run.compress_samples()
    assert gzip.decompress((tmp_path / "run" / "samples.csv.gz").read_bytes()) == before
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["rounds.csv", "samples.csv.gz"]


def test_readers_keep_text_as_written_and_parse_the_noisy_flag(run):
    from bench.results import read_results

    set_cell(run / "results.csv", "error", "NA")  # a word pandas would turn into NaN by default
    set_cell(run / "results.csv", "noisy", "True", row=1)
    df = read_results(run)
    assert df.loc[2, "error"] == "NA"
    written = pd.read_csv(run / "results.csv", dtype=str, keep_default_na=False)["noisy"]
    assert (
        df["noisy"].dtype == bool
        and (df["noisy"] == (written == "True")).all()
        and written.eq("True").any()
    )


def test_a_compressed_run_reads_the_same_samples(run):
    from bench.results import RunDir, read_samples

    before = read_samples(run)
    RunDir(run).compress_samples()
    assert not (run / "samples.csv").exists()
    pd.testing.assert_frame_equal(read_samples(run), before)


def test_atomic_write_leaves_a_readable_file_or_nothing(tmp_path):
    from bench.results import atomic_write

    atomic_write(tmp_path / "a.csv", "x\n")
    assert (tmp_path / "a.csv").read_text() == "x\n" and (
        tmp_path / "a.csv"
    ).stat().st_mode & 0o777 == 0o644
    with pytest.raises(TypeError):
        atomic_write(tmp_path / "b.csv", 42)  # fails while writing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]  # no temporary file left behind


def test_text_columns_stay_text_even_when_they_look_like_numbers(run):
    from bench.results import read_results

    df = pd.read_csv(run / "results.csv", dtype=str, keep_default_na=False)
    df["run_id"] = "0123"  # e.g. a run written with --out 0123
    df.to_csv(run / "results.csv", index=False)
    assert (read_results(run)["run_id"] == "0123").all()


def test_an_undecodable_csv_is_named_with_the_decoders_first_line(run, capsys):
    (run / "results.csv").write_bytes(
        (run / "results.csv").read_bytes().replace(b"numpy.loop", b"numpy\xff.loop")
    )
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        "results.csv is not a readable CSV ('utf-8' codec can't decode byte 0xff" in err
        and err.endswith(")")
    ), err


def test_atomic_write_stages_a_hidden_temporary_beside_the_target(tmp_path, monkeypatch):
    import os

    from bench.results import atomic_write

    moves = []
    real = os.replace
    monkeypatch.setattr(
        os, "replace", lambda src, dst: (moves.append((Path(src), Path(dst))), real(src, dst))
    )
    atomic_write(tmp_path / "a.csv", "x\n")
    ((src, dst),) = moves
    assert src.parent == dst.parent == tmp_path  # same directory: the rename is atomic
    # hidden, and named for its target
    assert src.name.startswith(".a.csv.") and src.name.endswith(".tmp")
