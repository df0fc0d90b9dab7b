"""pytest options for the pytest-benchmark route: `pytest bench/ --benchmark-only [--sizes S]
[--impl A,B] [--threads N]`. Not collected by the project's own test command (testpaths=tests)."""

from __future__ import annotations

import os

import pytest

from bench.frameworks import pin_process
from bench.sweep.pytest_route import cases


def pytest_addoption(parser):
    g = parser.getgroup("bench", "framework-overhead benchmarks")
    g.addoption("--model", default="mlp", help="mlp or gpt")
    g.addoption("--sizes", default="quick", help="quick | default | BxHxL[,BxHxL...] (default quick)")
    g.addoption("--impl", default="all", help="comma-separated implementation names, or all")
    g.addoption("--threads", type=int, default=len(os.sched_getaffinity(0)), help="threads for every framework")
    g.addoption("--budget", type=float, default=0.5, help="sampling seconds per benchmark")
    g.addoption("--device", default="cpu", choices=["cpu", "cuda", "auto"], help="as bench run --device")
    g.addoption("--tf32", action="store_true", help="allow TF32 matmuls on CUDA")


def pytest_configure(config):
    # Before any framework is imported: the same thread rules as the CLI's workers.
    from bench import devices

    try:
        config.bench_device = devices.resolve(config.getoption("--device"))
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None
    pin_process(config.getoption("--threads"), config.bench_device)


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        c = metafunc.config
        try:
            found = cases(c.getoption("--impl"), c.getoption("--sizes"), c.getoption("--model"))
        except ValueError as e:
            raise pytest.UsageError(str(e)) from None
        metafunc.parametrize("case", found, ids=[f"{i.name}-{z.label}" for i, z in found])
