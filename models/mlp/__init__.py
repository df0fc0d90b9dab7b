"""The MLP benchmark model: `model.py` is its shared truth, one `<framework>_impl.py` per framework,
`pipeline.py` what the pipeline probe needs; SPEC is what the harness needs of it."""

from models.spec import ModelSpec, SizeGrammar


def _size(batch: int, width: int, depth: int, sweep: str) -> tuple[dict[str, int], str]:
    return {"batch": batch, "width": width, "depth": depth}, sweep


SPEC = ModelSpec(
    presets={
        # seconds: the smallest model and a small one
        "quick": [_size(1, 1, 2, "width"), _size(32, 64, 2, "width")],
        # width sweep B = H from dispatch-bound to compute-bound (B1024-H1024: 9.8 GFLOP per step),
        # then a depth sweep at tiny width for the cost per op; its L=2 point is B8-H8-L2 above
        "default": [_size(b, b, 2, "width") for b in (1, 8, 32, 128, 256, 512, 1024)]
        + [_size(8, 8, d, "depth") for d in (1, 4, 8, 16)],
        # for a large GPU: launch-bound at the small end, compute-bound at B = H = 8192
        # (3.51 TFLOP per step), depth sweep at tiny width for the cost per launch
        "gpu": [_size(b, b, 2, "width") for b in (1, 64, 256, 1024, 2048, 4096, 8192)]
        + [_size(8, 8, d, "depth") for d in (1, 4, 8, 16)],
    },
    grammar=SizeGrammar(
        r"^(\d+)x(\d+)x(\d+)$",
        "BxHxL",
        ("batch", "width", "depth"),
        "1x1x2,64x256x2",
        depth_fields=("depth",),
    ),
    size_columns=("batch", "width", "depth", "d_in", "classes"),
    budget_min=10.0,
)
