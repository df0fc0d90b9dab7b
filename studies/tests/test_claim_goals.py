"""studies/claim_goals.py: the worst goal ratio of a frame of errors, by hand, and its table
line names every table's mean and largest."""

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import claim_goals  # noqa: E402


def frame(table5: list[float], modern: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "table": ["table5"] * len(table5) + ["modern"] * len(modern),
            "error": table5 + modern,
        }
    )


def test_the_worst_ratio_is_the_statistic_furthest_over_its_goal():
    # table 5: mean 0.03 (0.857 of 3.5%), largest 0.05; modern: mean 0.05 (1.0), largest 0.15
    df = frame([0.01, -0.05, 0.03], [0.15, -0.01, 0.0, -0.04])
    assert claim_goals.worst_ratio(df) == pytest.approx(0.15 / 0.12)
    assert claim_goals.worst_ratio(frame([0.01], [0.01])) == pytest.approx(0.01 / 0.035)


def test_a_table_line_gives_both_tables_mean_and_largest():
    line = claim_goals.line("fit", [0.5, 0.25], frame([0.01, -0.03], [0.06, 0.0]))
    assert line == "| fit | 0.5, 0.25 | 2.00% / 3.00% | 3.00% / 6.00% | 0.600 |"
