"""The GPUs `bench claim` knows, as data: every figure with its source. Dense (no sparsity) peaks;
link figures per GPU. `python -m bench claim --list-hardware` prints this table."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GPU:
    name: str
    bf16_tflops: float  # dense BF16/FP16 tensor-core peak
    fp8_tflops: float  # dense FP8 peak (A100: none, runs FP8 at the BF16 rate)
    hbm_tbs: float  # HBM bandwidth, TB/s
    hbm_gb: float  # HBM capacity, GB
    nvlink_gbs: float  # NVLink bandwidth per GPU, one direction, GB/s (half the "both directions" figure)
    nvlink_domain: int  # GPUs in one NVLink domain (DGX/HGX 8; NVL72 72)
    nic_gbs: float  # scale-out NIC bandwidth per GPU, one direction, GB/s
    source: str


HARDWARE: dict[str, GPU] = {g.name: g for g in (
    GPU("A100-SXM-80GB", 312, 312, 2.0, 80, 300, 8, 25,
        "NVIDIA A100 datasheet (312 TFLOP/s BF16 dense, 2.0 TB/s, 80 GB, NVLink 600 GB/s both directions); DGX A100: "
        "one 200 Gb/s HDR NIC per GPU (shared/claim/README.md)"),
    GPU("H100-SXM", 989, 1979, 3.35, 80, 450, 8, 50,
        "NVIDIA H100 datasheet (989 TFLOP/s BF16 dense, 1,979 FP8, 3.35 TB/s, 80 GB, NVLink 900 GB/s); DGX H100: one "
        "400 Gb/s NDR NIC per GPU; jax-ml/scaling-book gpus.md"),
    GPU("H200-SXM", 989, 1979, 4.8, 141, 450, 8, 50,
        "NVIDIA H200 datasheet (same GH100 die and NVLink 4 as H100: 989 TFLOP/s BF16 dense; 141 GB HBM3e at 4.8 TB/s); "
        "HGX H200: one 400 Gb/s NIC per GPU"),
    GPU("GB200", 2500, 5000, 8.0, 186, 900, 72, 50,
        "GB200 NVL72: 180 PFLOP/s dense BF16 over 72 GPUs (2,500 each; jax-ml/scaling-book gpus.md gives 2,250-2,500), "
        "8 TB/s, 13.4 TB HBM3e / 72 = 186 GB, NVLink 5 1.8 TB/s both directions, 400 Gb/s ConnectX-7 per GPU"),
    GPU("GB300", 2500, 5000, 8.0, 288, 900, 72, 100,
        "GB300 NVL72 (verda.com GB300 NVL72 article; NVIDIA NVL72 reference architecture): 2,500 TFLOP/s BF16 dense, "
        "5,000 FP8, 8 TB/s, 288 GB HBM3e per B300, NVLink 5 1.8 TB/s both directions, one 800 Gb/s ConnectX-8 per GPU"),
)}


def table() -> str:
    lines = ["| GPU | BF16 TFLOP/s | FP8 TFLOP/s | HBM TB/s | HBM GB | NVLink GB/s (one way) | NVLink domain | "
             "NIC GB/s (one way) | source |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for g in HARDWARE.values():
        lines.append(f"| {g.name} | {g.bf16_tflops:g} | {g.fp8_tflops:g} | {g.hbm_tbs:g} | {g.hbm_gb:g} | "
                     f"{g.nvlink_gbs:g} | {g.nvlink_domain} | {g.nic_gbs:g} | {g.source} |")
    return "\n".join(lines)
