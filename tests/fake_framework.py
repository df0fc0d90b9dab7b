"""A fourth framework, as a user adds one: this file and its record. Its one implementation,
`fake.loop`, runs the MLP's NumPy step in a worker of its own; its record names its packages and
its matmul for the peak. Registered only when a test sets BENCH_EXTRA_FRAMEWORKS and
BENCH_EXTRA_IMPLS to tests.fake_framework (every worker's environment carries both)."""

from __future__ import annotations

from bench.framework_calls import matmul_numpy
from bench.frameworks import Framework
from models.registry import Impl

FRAMEWORKS = [Framework("fake", ("numpy",), matmul=matmul_numpy, styles={"loop": ("#17becf", "o")})]
EXTRA_IMPLS = [Impl("fake.loop", "mlp", "models.mlp.numpy_impl:build")]
