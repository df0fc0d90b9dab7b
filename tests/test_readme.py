"""The README documents the schema and statuses the code writes, and the commands CI runs."""

from pathlib import Path

from bench.schema import RESULT_COLUMNS, SAMPLE_COLUMNS, STATUSES

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_documents_every_column_and_status():
    for col in [*RESULT_COLUMNS, *SAMPLE_COLUMNS]:
        assert f"| `{col}` |" in README, col
    for status in STATUSES:
        assert f"| `{status}` |" in README, status


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -q -c constraints.txt -e ".[all,test]"' in ci
    assert '.venv/bin/pip install -c constraints.txt -e ".[all,test]" && .venv/bin/python -m pytest -q' in README
    assert ".venv/bin/python -m pytest -q" in ci


def test_constraints_pin_the_cpu_torch_build():
    pins = (ROOT / "constraints.txt").read_text()
    assert "torch==2.13.0" in pins and "jax==" in pins


def _headlines(report_md: str) -> str:
    return report_md[report_md.index("## Headlines") + len("## Headlines"): report_md.index("![step time]")].strip()


def test_readme_numbers_come_from_committed_runs_and_regenerate(tmp_path):
    """Every committed run the README links: its report's headlines are in the README, and
    `bench report` on a copy of the run's CSV files gives the same headlines again."""
    import re
    import shutil

    from bench.report import write_report

    runs = sorted(set(re.findall(r"results/(\d{8}T\d{6}Z_[\w-]+)/", README)))
    assert runs, "the README shows no committed run"
    for run in runs:
        committed = (ROOT / "results" / run / "report.md").read_text()
        assert _headlines(committed) in README, run
        copy = tmp_path / run
        shutil.copytree(ROOT / "results" / run, copy, ignore=shutil.ignore_patterns("*.png", "report.md", "analysis.csv"))
        assert _headlines(write_report(copy).read_text()) == _headlines(committed), run
