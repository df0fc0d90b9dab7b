"""The tiny GPT benchmark model: `model.py` is its shared truth, one `<framework>_impl.py` per
framework, `pipeline.py` what the pipeline probe needs; SPEC is what the harness needs of it."""

from models.spec import ModelSpec, SizeGrammar


def _size(batch, seq_len, n_embd, n_layer, n_head, sweep, vocab=512):
    return (
        {
            "batch": batch,
            "seq_len": seq_len,
            "n_embd": n_embd,
            "n_layer": n_layer,
            "n_head": n_head,
            "vocab": vocab,
        },
        sweep,
    )


SPEC = ModelSpec(
    presets={
        "quick": [
            _size(2, 16, 32, 1, 2, "width", vocab=64),
            _size(2, 24, 64, 2, 4, "width", vocab=128),
        ],
        # width sweep from ~0.1 M parameters to > 1 GFLOP per step, at 2 layers and T = 64;
        # depth sweep at tiny width (n_embd 32), its n_layer = 2 point is the first width size
        "default": [
            _size(4, 64, c, 2, h, "width")
            for c, h in ((32, 2), (64, 4), (128, 4), (256, 8), (384, 6))
        ]
        + [_size(4, 64, 32, n, 2, "depth") for n in (1, 4, 8)],
        # for a large GPU: up to C = 2048, T = 256, 4 layers (2.5 TFLOP per step)
        "gpu": [
            _size(8, 256, c, 4, h, "width")
            for c, h in ((64, 4), (256, 4), (512, 8), (1024, 16), (2048, 16))
        ]
        + [_size(1, 16, 32, n, 2, "depth") for n in (1, 2, 4, 8)],
    },
    grammar=SizeGrammar(
        r"^(\d+)x(\d+)x(\d+)x(\d+)x(\d+)$",
        "BxTxCxLxNH",
        ("batch", "seq_len", "n_embd", "n_layer", "n_head"),
        "2x16x32x1x2",
        depth_fields=("n_layer",),
    ),
    size_columns=("batch", "width", "depth", "seq_len", "heads", "vocab"),
    budget_min=15.0,
    left_out={
        "torch.scan": "its compile (6 to 36 s per GPT size on the 2-core VM) is paid again in "
        "every worker process, since torch 2.13's FX graph and AOTAutograd caches bypass the "
        "scan operator; at 5 rounds its first calls alone take about 9 of the sweep's 15 "
        "minutes"
    },
)
