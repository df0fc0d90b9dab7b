"""Model implementations. This package never imports `bench`.

Layout: one folder per model (`mlp/`, `gpt/`), each with `model.py` (the shared truth: config,
seeded parameters and data, FLOPs, tolerances) and one file per framework with mirrored public
names (`numpy_impl.py` holds the float64 `reference`). Shared pieces: `step.py` (the interface),
`registry.py` (names -> builders; imports no framework), `gate.py` (the equivalence check),
`cbuild.py` (compile and cache C sources), `torch_util.py`, `null.py` (the control).
"""
