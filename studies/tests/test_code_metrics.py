"""studies/code_metrics.py on a module written for it: every figure by hand."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import code_metrics  # noqa: E402

MODULE = (
    '''def add(a, b):  # a comment is not a token
    total = a + b
    return total


def long_one(x, *rest, key=None, **extra):
    return "'''
    + "y" * 100
    + """"
"""
)


def test_every_figure_of_a_small_module(tmp_path):
    (tmp_path / "m.py").write_text(MODULE)
    m = code_metrics.metrics(tmp_path)
    # tokens: def add ( a , b ) : | total = a + b | return total | def long_one ( x , * rest ,
    # key = None , * * extra ) : | return "..."  ->  8 + 5 + 2 + 16 + 2 = 33 over 5 lines
    assert m["modules"] == 1 and m["tokens_per_code_line"] == pytest.approx(33 / 5)
    assert m["long_line_share"] == pytest.approx(1 / 7)  # the return of 100 y's, of 7 lines
    # names: a, b, total, x, rest, key, extra -> a, b and x: 3 of 7 at most 2 characters
    assert m["short_name_share"] == pytest.approx(3 / 7)
    assert m["longest_function"][:2] == (3, 2) and m["most_arguments"][1] == 4
