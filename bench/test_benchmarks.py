"""One pytest-benchmark per (implementation, size): `pytest bench/ --benchmark-only`.

See bench/conftest.py for --sizes, --impl, --threads and --budget."""


def test_step(benchmark, case, request):
    from bench.sweep.pytest_route import bench_case

    impl, size = case
    c = request.config
    bench_case(
        benchmark,
        impl,
        size,
        c.bench_threads,
        c.getoption("--budget"),
        c.bench_device,
        c.getoption("--tf32"),
    )
