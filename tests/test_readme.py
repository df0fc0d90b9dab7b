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
