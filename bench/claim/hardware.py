"""The GPUs `bench claim` knows, as data: every figure with its source. Dense (no sparsity) peaks;
link figures per GPU, one direction. `python -m bench claim --list-hardware` prints this table.

Two rates per dtype: the datasheet's peak, and the Maximum Achievable Matmul FLOPS (MAMF) that a
brute-force search over matmul shapes measured on that GPU (stas00/ml-engineering,
compute/accelerator/README.md, "Maximum Achievable Matmul FLOPS comparison table"). The model runs
every matrix product at a fitted share of the MAMF, so the gap between a GPU's datasheet and what
its matmuls reach (87% on an A100, 80% on an H100, 73-78% on Blackwell) is a measured figure, not
a fitted one.
"""

from __future__ import annotations

from dataclasses import dataclass

MAMF = (
    "MAMF: stas00/ml-engineering compute/accelerator/README.md, Maximum Achievable Matmul "
    "FLOPS comparison table"
)


@dataclass(frozen=True)
class GPU:
    name: str
    bf16_tflops: float  # dense BF16/FP16 tensor-core peak (datasheet)
    fp8_tflops: float  # dense FP8 peak (datasheet); 0: no FP8 tensor cores
    mamf_bf16: float  # measured maximum achievable BF16 matmul, TFLOP/s
    mamf_fp8: float  # measured maximum achievable FP8 matmul, TFLOP/s (0: no FP8)
    hbm_tbs: float  # HBM bandwidth, TB/s
    hbm_gib: float  # HBM capacity, GiB (HBM stacks are binary: an "80 GB" H100 has 80 GiB)
    nvlink_gbs: float  # NVLink bandwidth per GPU, one direction, GB/s (half "both directions")
    nvlink_domain: int  # GPUs in one NVLink domain (DGX/HGX 8; NVL72 72)
    nic_gbs: float  # scale-out NIC bandwidth per GPU, one direction, GB/s
    mx_fp8: bool  # MX block-scaled FP8 in the tensor cores (Blackwell)
    source: str


HARDWARE: dict[str, GPU] = {
    g.name: g
    for g in (
        GPU(
            "A100-SXM-80GB",
            312,
            0,
            271.2,
            0,
            2.0,
            80,
            300,
            8,
            25,
            False,
            "NVIDIA A100 datasheet (312 TFLOP/s BF16 dense, no FP8, 2.0 TB/s, 80 GB, NVLink 600 "
            "GB/s "
            "both directions); DGX A100: one 200 Gb/s HDR NIC per GPU (shared/claim/README.md); "
            f"MAMF BF16 271.2 ({MAMF})",
        ),
        GPU(
            "H100-SXM",
            989,
            1979,
            794.5,
            1402.6,
            3.35,
            80,
            450,
            8,
            50,
            False,
            "NVIDIA H100 datasheet (989 TFLOP/s BF16 dense, 1,979 FP8, 3.35 TB/s, 80 GB, NVLink "
            "900 GB/s); DGX H100: one 400 Gb/s NDR NIC per GPU; jax-ml/scaling-book gpus.md; "
            f"MAMF BF16 794.5, FP8 1,402.6 ({MAMF})",
        ),
        GPU(
            "H200-SXM",
            989,
            1979,
            794.5,
            1453.4,
            4.8,
            141,
            450,
            8,
            50,
            False,
            "NVIDIA H200 datasheet (the H100's GH100 die and NVLink 4: 989 TFLOP/s BF16 dense, "
            "1,979 "
            "FP8; 141 GB HBM3e at 4.8 TB/s); HGX H200: one 400 Gb/s NIC per GPU; MAMF BF16 as the "
            f"H100 ('H200 is the same'), FP8 1,453.4 ({MAMF})",
        ),
        GPU(
            "B200",
            2250,
            4500,
            1745.0,
            3432.5,
            8.0,
            180,
            900,
            8,
            50,
            True,
            "NVIDIA DGX B200 datasheet: 8 GPUs, 1,440 GB HBM3e (180 GB each), 64 TB/s (8 TB/s "
            "each), "
            "72 PFLOP/s FP8 with sparsity (4,500 dense each; BF16 2,250 dense at 1,000 W, "
            "glennklockwood.com/garden/processors/B200), NVLink 5 1.8 TB/s both directions, one "
            f"400 Gb/s ConnectX-7 per GPU; MAMF BF16 1,745, FP8 3,432.5 ({MAMF})",
        ),
        GPU(
            "GB200",
            2500,
            5000,
            1822.0,
            3615.6,
            8.0,
            186,
            900,
            72,
            50,
            True,
            "GB200 NVL72: 180 PFLOP/s dense BF16 over 72 GPUs (2,500 each; jax-ml/scaling-book "
            "gpus.md "
            "gives 2,250-2,500), 5,000 FP8 dense, 8 TB/s, 13.4 TB HBM3e / 72 = 186 GB, NVLink 5 "
            "1.8 TB/s both directions, 400 Gb/s ConnectX-7 per GPU; "
            f"MAMF BF16 1,822, FP8 3,615.6 ({MAMF})",
        ),
        GPU(
            "GB300",
            2500,
            5000,
            1769.0,
            3353.3,
            8.0,
            288,
            900,
            72,
            100,
            True,
            "GB300 NVL72 (verda.com GB300 NVL72 article; NVIDIA NVL72 reference architecture): "
            "2,500 "
            "TFLOP/s BF16 dense, 5,000 FP8 (360 PFLOP/s FP8 over 72), 8 TB/s, 288 GB HBM3e per "
            "B300, "
            "NVLink 5 1.8 TB/s both directions, one 800 Gb/s ConnectX-8 per GPU; MAMF not "
            "measured on "
            f"a GB300: the B300 SXM's (same chip) BF16 1,769, FP8 3,353.3 ({MAMF})",
        ),
    )
}


def table() -> str:
    head = (
        "| GPU | BF16 TFLOP/s | FP8 TFLOP/s | MAMF BF16 | MAMF FP8 | HBM TB/s | HBM GiB | "
        "NVLink GB/s (one way) | NVLink domain | NIC GB/s (one way) | MX FP8 | source |"
    )
    lines = [head, "|---|" + "---:|" * 10 + "---|"]
    for g in HARDWARE.values():
        lines.append(
            f"| {g.name} | {g.bf16_tflops:g} | {g.fp8_tflops:g} | {g.mamf_bf16:g} | "
            f"{g.mamf_fp8:g} | {g.hbm_tbs:g} | {g.hbm_gib:g} | {g.nvlink_gbs:g} | "
            f"{g.nvlink_domain} | {g.nic_gbs:g} | {'yes' if g.mx_fp8 else 'no'} | {g.source} |"
        )
    return "\n".join(lines)
