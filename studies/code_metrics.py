"""How legible is bench/? The figures issue 42 asks for, before and after a restructure.

- modules: .py files under bench/;
- tokens per code line: Python tokens (no comments, newlines or indentation) over the lines
  that hold one;
- long lines: the share of lines over 100 characters;
- short names: the share of assigned names and arguments of at most 2 characters;
- the longest function (lines) and the function with the most arguments (self included).

Usage: python studies/code_metrics.py [FOLDER]   (default bench)
"""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from pathlib import Path

LAYOUT = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
LAYOUT |= {tokenize.ENCODING, tokenize.ENDMARKER}


def token_lines(src: str) -> tuple[int, int]:
    """(tokens, lines holding a token) of one module."""
    tokens, lines = 0, set()
    for t in tokenize.generate_tokens(io.StringIO(src).readline):
        if t.type not in LAYOUT:
            tokens += 1
            lines.add(t.start[0])
    return tokens, len(lines)


def functions_and_names(tree: ast.AST, where: str) -> tuple[list, list[str]]:
    """[(lines, arguments, name)] of every function, and every assigned name and argument."""
    funcs, names = [], []
    for n in ast.walk(tree):
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef):
            a = n.args
            count = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs)
            count += bool(a.vararg) + bool(a.kwarg)
            funcs.append((n.end_lineno - n.lineno + 1, count, f"{where}:{n.name}"))
        elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            names.append(n.id)
        elif isinstance(n, ast.arg):
            names.append(n.arg)
    return funcs, names


def metrics(folder: Path) -> dict:
    files = sorted(folder.rglob("*.py"))
    tokens = code = long = total = 0
    funcs, names = [], []
    for f in files:
        src = f.read_text()
        lines = src.splitlines()
        total, long = total + len(lines), long + sum(len(line) > 100 for line in lines)
        t, c = token_lines(src)
        tokens, code = tokens + t, code + c
        fs, ns = functions_and_names(ast.parse(src), str(f))
        funcs, names = funcs + fs, names + ns
    return {
        "modules": len(files),
        "tokens_per_code_line": tokens / code,
        "long_line_share": long / total,
        "short_name_share": sum(len(n) <= 2 for n in names) / len(names),
        "longest_function": max(funcs),
        "most_arguments": max(funcs, key=lambda f: f[1]),
    }


def main(argv: list[str]) -> int:
    m = metrics(Path(argv[1] if len(argv) > 1 else "bench"))
    print(
        f"modules {m['modules']}; tokens per code line {m['tokens_per_code_line']:.2f}; "
        f"lines over 100 characters {100 * m['long_line_share']:.1f}%; "
        f"names of 1-2 characters {100 * m['short_name_share']:.1f}%"
    )
    print(f"longest function: {m['longest_function'][2]} ({m['longest_function'][0]} lines)")
    print(f"most arguments: {m['most_arguments'][2]} ({m['most_arguments'][1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
