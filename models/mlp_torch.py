"""MLP in PyTorch: nn.Module + torch.optim.SGD (`torch.eager`), and the same step under
torch.compile (`torch.compile`)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.mlp import MLPConfig, init_params, make_batch


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
        if device.startswith("cuda"):
            self.call = self._call_synced  # the CPU path stays a plain call, nothing added to its timed region
        self.train_step = self._train_step
        if compiled:
            # One static-shape graph per size: never fall back to dynamic shapes between sizes.
            # mode="reduce-overhead" (torch.cudagraphs) replays each compiled graph as a CUDA graph.
            self.train_step = torch.compile(self._train_step, dynamic=False, mode=mode)

    def _train_step(self) -> torch.Tensor:
        self.opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(self.x), self.y)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def call(self) -> None:
        self.train_step()  # the CPU is synchronous

    def _call_synced(self) -> None:
        self.train_step()
        torch.cuda.synchronize()  # on CUDA, wait for the step inside the timed region

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


def count_dispatched(fn) -> int:
    """Run fn once eagerly and count the ATen operators it dispatches (TorchDispatchMode)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.n += 1
            return func(*args, **(kwargs or {}))

    with Count():
        fn()
    return Count.n


def configure_compile() -> None:
    """Every size gets its own graph: raise Dynamo's recompile limit far above the size count."""
    import torch._dynamo.config as dynamo_config

    for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit"):
        if hasattr(dynamo_config, name):
            setattr(dynamo_config, name, max(getattr(dynamo_config, name), 256))


def build_eager(cfg: MLPConfig, device: str = "cpu") -> TorchStep:
    return TorchStep(cfg, compiled=False, device=device)


def build_compiled(cfg: MLPConfig, device: str = "cpu") -> TorchStep:
    configure_compile()
    return TorchStep(cfg, compiled=True, device=device)


def build_cudagraphs(cfg: MLPConfig, device: str = "cuda") -> TorchStep:
    """The whole step under torch.compile(mode="reduce-overhead"): CUDA graphs. CUDA only."""
    if not device.startswith("cuda"):
        raise RuntimeError("torch.cudagraphs needs --device cuda")
    configure_compile()
    return TorchStep(cfg, compiled=True, device=device, mode="reduce-overhead")
