"""MLP in PyTorch: nn.Module + torch.optim.SGD (`torch.eager`), and the same step under
torch.compile (`torch.compile`)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.mlp.model import MLPConfig, init_params, make_batch
from models.torch_util import configure_compile, count_dispatched, synced


class MLP(nn.Module):
    def __init__(self, cfg: MLPConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(cfg.layer_dims()):
            layers.append(nn.Linear(fan_in, fan_out))
            if i < cfg.depth:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, D) -> logits (B, C)


class TorchStep:
    """One training step: zero_grad, forward, cross-entropy, backward, SGD step."""

    steps_per_call = 1
    gate = True

    def __init__(self, cfg: MLPConfig, compiled: bool, device: str = "cpu", mode: str | None = None) -> None:
        self.cfg = cfg
        self.init = init_params(cfg)
        x, y = make_batch(cfg)
        self.x = torch.from_numpy(x).to(device)  # (B, D)
        self.y = torch.from_numpy(y).to(device)  # (B,)
        self.model = MLP(cfg).to(device)
        self.linears = [m for m in self.model.net if isinstance(m, nn.Linear)]
        self.reset()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=cfg.lr)
        self.train_step = self._train_step
        if compiled:
            # One static-shape graph per size: never fall back to dynamic shapes between sizes.
            # mode="reduce-overhead" (torch.cudagraphs) replays each compiled graph as a CUDA graph.
            self.train_step = torch.compile(self._train_step, dynamic=False, mode=mode)
        # On CUDA the call waits for the step inside the timed region; on the CPU (synchronous)
        # it stays the plain step, with nothing added to its timed region.
        self.call = synced(self.train_step) if device.startswith("cuda") else self.train_step

    def _train_step(self) -> torch.Tensor:
        self.opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(self.x), self.y)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def losses(self, n: int) -> np.ndarray:
        return np.array([self.train_step().item() for _ in range(n)])

    def params(self) -> list[np.ndarray]:
        out = []
        for lin in self.linears:
            out += [lin.weight.detach().T.cpu().numpy().copy(), lin.bias.detach().cpu().numpy().copy()]  # to host
        return out

    def count_ops(self) -> int:
        """ATen operators dispatched by one eager step (forward, backward, optimizer).
        torch.compile rows carry the same model's eager count."""
        return count_dispatched(self._train_step)

    @torch.no_grad()
    def reset(self) -> None:
        for i, lin in enumerate(self.linears):
            lin.weight.copy_(torch.from_numpy(self.init[2 * i].T))  # (out, in) <- (in, out).T
            lin.bias.copy_(torch.from_numpy(self.init[2 * i + 1]))


def build_eager(cfg: MLPConfig, k: int = 1, device: str = "cpu") -> TorchStep:
    return TorchStep(cfg, compiled=False, device=device)


def build_compiled(cfg: MLPConfig, k: int = 1, device: str = "cpu") -> TorchStep:
    configure_compile()
    return TorchStep(cfg, compiled=True, device=device)


def build_cudagraphs(cfg: MLPConfig, k: int = 1, device: str = "cuda") -> TorchStep:
    """The whole step under torch.compile(mode="reduce-overhead"): CUDA graphs. CUDA only."""
    if not device.startswith("cuda"):
        raise RuntimeError("torch.cudagraphs needs --device cuda")
    configure_compile()
    return TorchStep(cfg, compiled=True, device=device, mode="reduce-overhead")
