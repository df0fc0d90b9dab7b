"""pytest options for the pytest-benchmark route: `pytest bench/ --benchmark-only [--sizes S]
[--impl A,B] [--threads N]`, with bench run's defaults (bench/options.py). Not collected by the
project's own test command (testpaths=tests)."""

from __future__ import annotations

import pytest

from bench import options
from bench.frameworks import pin_process
from bench.sweep.pytest_route import cases


def pytest_addoption(parser):
    g = parser.getgroup("bench", "framework-overhead benchmarks")
    # the same options and defaults as bench run (bench/options.py)
    options.add(g, "model", "sizes")
    g.addoption("--impl", default="all", help="comma-separated implementation names, or all")
    options.add(g, "threads")
    g.addoption("--budget", type=float, default=0.5, help="sampling seconds per benchmark")
    options.add(g, "device", "tf32")


def pytest_configure(config):
    # Before any framework is imported: the same thread rules as the CLI's workers.
    from bench import devices

    try:
        config.bench_device = devices.resolve(config.getoption("--device"))
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None
    config.bench_threads = options.threads_or_default(config.getoption("--threads"))
    pin_process(config.bench_threads, config.bench_device)


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        c = metafunc.config
        try:
            found = cases(c.getoption("--impl"), c.getoption("--sizes"), c.getoption("--model"))
        except ValueError as e:
            raise pytest.UsageError(str(e)) from None
        metafunc.parametrize("case", found, ids=[f"{i.name}-{z.label}" for i, z in found])
