"""Generated argument lists: never a traceback, always a documented exit code."""

import contextlib
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.commands import main

OPTIONS = [
    "--model",
    "--impl",
    "--sizes",
    "--threads",
    "--rounds",
    "--budget",
    "--min-samples",
    "--case-timeout",
    "--device",
    "--resume",
    "--out",
    "--no-report",
    "--help",
]
VALUES = [
    "mlp",
    "gpt",
    "all",
    "torch.eager",
    "numpy.loop,jax.jit",
    "nope",
    "quick",
    "default",
    "0x1x1",
    "1x1x1",
    "4x8x2",
    "99999999x1x1",
    "1x1",
    "x",
    "-1",
    "0",
    "1",
    "2",
    "3",
    "1e9",
    "nan",
    "inf",
    "0.01",
    "",
    " ",
    "cpu",
    "cuda",
    "/nonexistent/dir",
    "results",
    "--",
    "=",
    "ü",
    "1,2",
]
token = st.one_of(st.sampled_from(OPTIONS), st.sampled_from(VALUES), st.text(max_size=8))
argv = st.tuples(
    st.sampled_from(["run", "list", "env", "report", "bogus", "--help", ""]),
    st.lists(token, max_size=6),
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(args=argv)
def test_generated_arguments_never_traceback(args, tmp_path_factory):
    command, rest = args
    argv = [command, *rest] if command else list(rest)
    if (
        command == "run"
    ):  # an existing --out last: nothing is ever measured, only parsed and checked
        argv += ["--out", str(tmp_path_factory.getbasetemp())]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse --help
            code = e.code
    assert code in (0, 1, 2, 130), (argv, code)
    assert "Traceback" not in err.getvalue()
    if code == 2:
        lines = err.getvalue().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("bench: error:"), (argv, err.getvalue())
