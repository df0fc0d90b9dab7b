"""Tiny GPT in PyTorch, nanoGPT style: nn.Module, F.scaled_dot_product_attention (causal),
tied head, torch.optim.AdamW (default implementation) with weight decay on 2-D tensors only.
`torch.eager`, and the same whole step under torch.compile (`torch.compile`)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.gpt.model import GPTConfig, init_params, make_batch
from models.torch_util import configure_compile, count_dispatched, synced


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # (B, T, C) each
        q, k, v = (a.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for a in (q, k, v))  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))  # (B, T, C)
        return x + self.c_proj(self.gelu(self.c_fc(self.ln_2(x))))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.wte = nn.Embedding(cfg.vocab, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.seq_len, cfg.n_embd)
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        self.register_buffer("pos", torch.arange(cfg.seq_len), persistent=False)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx) + self.wpe(self.pos[: idx.shape[1]])  # (B, T, C)
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))  # (B, T, V)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))

    def ordered(self) -> list[tuple[torch.Tensor, bool]]:
        """(parameter, stored transposed) in model.param_names order."""
        out = [(self.wte.weight, False), (self.wpe.weight, False)]
        for b in self.h:
            out += [(b.ln_1.weight, False), (b.ln_1.bias, False), (b.attn.c_attn.weight, True),
                    (b.attn.c_attn.bias, False), (b.attn.c_proj.weight, True), (b.attn.c_proj.bias, False),
                    (b.ln_2.weight, False), (b.ln_2.bias, False), (b.c_fc.weight, True), (b.c_fc.bias, False),
                    (b.c_proj.weight, True), (b.c_proj.bias, False)]
        return out + [(self.ln_f.weight, False), (self.ln_f.bias, False)]


class TorchGPTStep:
    steps_per_call = 1
    gate = True

    def __init__(self, cfg: GPTConfig, compiled: bool, device: str = "cpu", mode: str | None = None) -> None:
        self.cfg = cfg
        idx, targets = make_batch(cfg)
        self.idx, self.targets = torch.from_numpy(idx).to(device), torch.from_numpy(targets).to(device)  # (B, T)
        self.model = GPT(cfg).to(device)
        self.reset()
        self.train_step = self._train_step
        if compiled:
            self.train_step = torch.compile(self._train_step, dynamic=False, mode=mode)
        # On CUDA the call waits for the step inside the timed region; on the CPU it is the step.
        self.call = synced(self.train_step) if device.startswith("cuda") else self.train_step

    def _make_optimizer(self) -> torch.optim.AdamW:
        params = dict(self.model.named_parameters())  # the tied weight appears once
        decay = [p for p in params.values() if p.dim() >= 2]
        no_decay = [p for p in params.values() if p.dim() < 2]
        c = self.cfg
        return torch.optim.AdamW(
            [{"params": decay, "weight_decay": c.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=c.lr, betas=(c.beta1, c.beta2), eps=c.eps,
        )

    def _train_step(self) -> torch.Tensor:
        self.opt.zero_grad(set_to_none=True)
        loss = self.model(self.idx, self.targets)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def losses(self, n: int) -> np.ndarray:
        return np.array([self.train_step().item() for _ in range(n)])

    def params(self) -> list[np.ndarray]:
        return [(p.detach().T if t else p.detach()).cpu().numpy().copy() for p, t in self.model.ordered()]

    def count_ops(self) -> int:
        return count_dispatched(self._train_step)

    @torch.no_grad()
    def reset(self) -> None:
        for (p, transposed), value in zip(self.model.ordered(), init_params(self.cfg), strict=True):
            p.copy_(torch.from_numpy(value.T if transposed else value))
        if hasattr(self, "opt"):
            self.opt.state.clear()  # fresh AdamW moments and step count
        else:
            self.opt = self._make_optimizer()


def build_eager(cfg: GPTConfig, k: int = 1, device: str = "cpu") -> TorchGPTStep:
    return TorchGPTStep(cfg, compiled=False, device=device)


def build_compiled(cfg: GPTConfig, k: int = 1, device: str = "cpu") -> TorchGPTStep:
    configure_compile()
    return TorchGPTStep(cfg, compiled=True, device=device)


def build_cudagraphs(cfg: GPTConfig, k: int = 1, device: str = "cuda") -> TorchGPTStep:
    """torch.compile(mode="reduce-overhead"): the compiled graphs replayed as CUDA graphs. CUDA only."""
    if not device.startswith("cuda"):
        raise RuntimeError("torch.cudagraphs needs --device cuda")
    configure_compile()
    return TorchGPTStep(cfg, compiled=True, device=device, mode="reduce-overhead")
