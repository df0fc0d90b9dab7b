"""What a model package declares of itself (`SPEC` in its `__init__.py`): the harness finds the
package (models/registry.py) and needs nothing else of it. Its name is the package's name.

A model package holds `model.py` (the shared truth: Config, init_params, make_batch, the FLOP and
op counts, the tolerances, `describe` for its size columns), one `<framework>_impl.py` per
framework (numpy_impl.py with the float64 `reference`), and `pipeline.py` (what the pipeline
probe needs); its modules import each other relatively, so a copy under another name is another
model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FUSED, FLOOR, CUDA = {"fused": True}, {"fused": True, "role": "floor"}, {"cuda_only": True}

# Every built-in model has these (one file per framework in its package): (name, target in the
# package, options). A model may list its own instead.
IMPLEMENTATIONS = (
    ("numpy.loop", "numpy_impl:build"),
    ("torch.eager", "torch_impl:build_eager"),
    ("torch.compile", "torch_impl:build_compiled"),
    ("torch.fullgraph", "torch_impl:build_fullgraph"),
    ("torch.cudagraphs", "torch_impl:build_cudagraphs", CUDA),
    ("torch.scan", "torch_impl:build_scan", FUSED),
    ("jax.eager", "jax_impl:build_eager"),
    ("jax.jit", "jax_impl:build_jit"),
    ("jax.scan", "jax_impl:build_scan", FUSED),
    ("c.ref", "c_impl:build_ref", FLOOR),
    ("c.step", "c_impl:build_step"),
)


@dataclass(frozen=True)
class SizeGrammar:
    """Custom sizes on the command line: e.g. `BxHxL`, each value a Config field."""

    pattern: str  # a regular expression with one group per field
    form: str  # how the help and errors write it, e.g. BxHxL
    fields: tuple[str, ...]  # the Config fields of the groups, in order
    example: str  # e.g. 1x1x2,64x256x2
    depth_fields: tuple[str, ...] = ()  # fields bounded by the depth limit, not the width one


@dataclass(frozen=True)
class ModelSpec:
    presets: dict[str, list[tuple[dict[str, int], str]]]  # name -> [(Config fields, sweep)]
    grammar: SizeGrammar
    size_columns: tuple[str, ...]  # the results.csv columns its describe() fills (bench/schema.py
    #                                says what each means; a new one is added after the others)
    budget_min: float | None = None  # the default sweep's time goal on the 2-core machine
    left_out: dict[str, str] = field(default_factory=dict)  # a default sweep leaves these out: why
    implementations: tuple[tuple, ...] = IMPLEMENTATIONS
