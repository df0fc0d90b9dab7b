"""Tiny GPT in PyTorch, nanoGPT style: nn.Module, F.scaled_dot_product_attention (causal), tied
head, AdamW with weight decay on 2-D tensors only. Four rows, one model:

- `torch.eager`: the module + torch.optim.AdamW(fused=True), the fastest implementation the
  docs give (on CPU and CUDA);
- `torch.compile`: that step function under torch.compile, the common idiom (graph breaks at
  backward() and the optimizer step are allowed; counted in graphs and graph_breaks);
- `torch.fullgraph`: torch.func (functional_call + grad_and_value) and AdamW written as foreach
  arithmetic with the same formula as torch.optim.AdamW, parameters and moments updated in place,
  under torch.compile(fullgraph=True): one graph per step;
- `torch.cudagraphs` (CUDA only): the full-graph step under mode="reduce-overhead";
- `torch.scan`: K of those functional steps per call in one compiled torch.scan, the
  counterpart of jax.scan (torch.scan is a prototype op in torch 2.13).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value

from models.torch_util import ScanDriver, bind, builders, count_dispatched, graph_facts, set_call

from .model import GPTConfig, init_params, make_batch


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # (B, T, C) each
        # (B, nh, T, hs)
        q, k, v = (a.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for a in (q, k, v))
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
            out += [
                (b.ln_1.weight, False),
                (b.ln_1.bias, False),
                (b.attn.c_attn.weight, True),
                (b.attn.c_attn.bias, False),
                (b.attn.c_proj.weight, True),
                (b.attn.c_proj.bias, False),
                (b.ln_2.weight, False),
                (b.ln_2.bias, False),
                (b.c_fc.weight, True),
                (b.c_fc.bias, False),
                (b.c_proj.weight, True),
                (b.c_proj.bias, False),
            ]
        return out + [(self.ln_f.weight, False), (self.ln_f.bias, False)]


def adamw_(
    p: list, g: list, m: list, v: list, t: torch.Tensor, decayed: list, cfg: GPTConfig
) -> None:
    """torch.optim.AdamW's arithmetic, in place with foreach ops, for the full graph: decoupled
    decay on the matrices, moments, bias correction at step t (a tensor: no recompile per step)."""
    t.add_(1)
    bc1, bc2_sqrt = 1 - cfg.beta1**t, (1 - cfg.beta2**t).sqrt()  # 0-d tensors
    torch._foreach_mul_(decayed, 1 - cfg.lr * cfg.weight_decay)
    torch._foreach_lerp_(m, g, 1 - cfg.beta1)
    torch._foreach_mul_(v, cfg.beta2)
    torch._foreach_addcmul_(v, g, g, value=1 - cfg.beta2)
    denom = torch._foreach_div(torch._foreach_sqrt(v), bc2_sqrt)
    torch._foreach_add_(denom, cfg.eps)
    update = torch._foreach_div(m, denom)
    torch._foreach_mul_(update, cfg.lr / bc1)
    torch._foreach_sub_(p, update)


def adamw(p: list, g: list, m: list, v: list, t: torch.Tensor, decay: list, cfg: GPTConfig):
    """The same AdamW as adamw_, pure (new tensors returned): for the torch.scan carry."""
    t = t + 1
    bc1, bc2_sqrt = 1 - cfg.beta1**t, (1 - cfg.beta2**t).sqrt()
    m = [mi.lerp(gi, 1 - cfg.beta1) for mi, gi in zip(m, g, strict=True)]
    v = [vi * cfg.beta2 + (1 - cfg.beta2) * gi * gi for vi, gi in zip(v, g, strict=True)]
    p = [
        (pi * (1 - cfg.lr * cfg.weight_decay) if d else pi)
        - (cfg.lr / bc1) * mi / (vi.sqrt() / bc2_sqrt + cfg.eps)
        for pi, mi, vi, d in zip(p, m, v, decay, strict=True)
    ]
    return p, m, v, t


class TorchGPTStep:
    """One training step of a kind: eager, compile, fullgraph or cudagraphs (see the module)."""

    steps_per_call = 1
    gate = True
    op_unit = "ATen ops"

    def __init__(self, cfg: GPTConfig, kind: str, device: str = "cpu") -> None:
        self.cfg, self.kind = cfg, kind
        idx, targets = make_batch(cfg)
        self.idx, self.targets = (
            torch.from_numpy(idx).to(device),
            torch.from_numpy(targets).to(device),
        )  # (B, T)
        self.model = GPT(cfg).to(device)
        # the tied weight once; shared storage
        self.p = {k: v.detach() for k, v in self.model.named_parameters()}
        self.m = {k: torch.zeros_like(v) for k, v in self.p.items()}
        self.v = {k: torch.zeros_like(v) for k, v in self.p.items()}
        # The step count is a float32 0-d tensor, as torch.optim.AdamW keeps it. (A float64 0-d
        # tensor mutated in place is miscompiled by inductor on torch 2.13 CPU: it stays 0.)
        self.t = torch.zeros((), dtype=torch.float32, device=device)
        self.reset()
        if kind in ("eager", "compile"):
            self.fn, self.args = self._train_step, ()
        else:
            self.fn, self.args = (
                self._functional_step,
                (self.p, self.m, self.v, self.t, self.idx, self.targets),
            )
        bind(self, device)

    def _make_optimizer(self) -> torch.optim.AdamW:
        """nanoGPT's groups; the fastest implementation the docs give, fused, where the device has it."""
        params = dict(self.model.named_parameters())  # the tied weight appears once
        decay = [p for p in params.values() if p.dim() >= 2]
        no_decay = [p for p in params.values() if p.dim() < 2]
        c = self.cfg
        return torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": c.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=c.lr,
            betas=(c.beta1, c.beta2),
            eps=c.eps,
            fused=FUSED_ADAMW,
        )

    def _train_step(self) -> torch.Tensor:
        self.opt.zero_grad(set_to_none=True)
        loss = self.model(self.idx, self.targets)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def _loss(self, p: dict, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, p, (idx, targets))

    def _functional_step(self, p, m, v, t, idx, targets) -> torch.Tensor:
        """Forward, backward (torch.func) and AdamW, parameters and moments updated in place."""
        grads, loss = grad_and_value(self._loss)(p, idx, targets)
        keys = list(p)
        adamw_(
            [p[k] for k in keys],
            [grads[k] for k in keys],
            [m[k] for k in keys],
            [v[k] for k in keys],
            t,
            [p[k] for k in keys if p[k].dim() >= 2],
            self.cfg,
        )
        return loss

    def losses(self, n: int) -> np.ndarray:
        return np.array([self.step_fn().item() for _ in range(n)])

    def params(self) -> list[np.ndarray]:
        return [
            (p.detach().T if t else p.detach()).cpu().numpy().copy()
            for p, t in self.model.ordered()
        ]

    def count_ops(self) -> int:
        """ATen operators dispatched by one eager run of this row's step function."""
        return count_dispatched(partial(self.fn, *self.args))

    def describe(self) -> dict:
        opt = (
            f"torch.optim.AdamW(fused={FUSED_ADAMW})"
            if self.kind in ("eager", "compile")
            else "AdamW as torch._foreach_* ops in the graph"
        )
        return {**graph_facts(self.kind, self.fn, *self.args), "optimizer": opt}

    @torch.no_grad()
    def reset(self) -> None:
        for (p, transposed), value in zip(self.model.ordered(), init_params(self.cfg), strict=True):
            p.copy_(torch.from_numpy(value.T if transposed else value))
        for state in (*self.m.values(), *self.v.values(), self.t):
            state.zero_()
        if hasattr(self, "opt"):
            self.opt.state.clear()  # fresh AdamW moments and step count
        elif self.kind in ("eager", "compile"):
            self.opt = self._make_optimizer()


class TorchGPTScanStep:
    """torch.scan: K functional AdamW steps per call in one compiled torch.scan (the counterpart
    of jax.scan); parameters, moments and step count are the scan's carry."""

    gate = True
    op_unit = "ATen ops"

    def __init__(self, cfg: GPTConfig, steps_per_call: int, device: str = "cpu") -> None:
        self.base = TorchGPTStep(cfg, "eager", device)  # the module, data and initial values
        self.names = list(self.base.p)
        self.decay = [self.base.p[n].dim() >= 2 for n in self.names]
        self.steps_per_call = steps_per_call
        self.driver = ScanDriver(self._body, self._start(), steps_per_call, device)
        set_call(self, self.driver.call, device)

    def _start(self) -> tuple:
        self.base.reset()
        p = [self.base.p[n].clone() for n in self.names]
        return (
            p,
            [torch.zeros_like(x) for x in p],
            [torch.zeros_like(x) for x in p],
            torch.zeros_like(self.base.t),
        )

    def _body(self, carry: tuple, _):
        p, m, v, t = carry
        grads, loss = grad_and_value(self._loss)(p)
        return adamw(p, grads, m, v, t, self.decay, self.base.cfg), loss

    def _loss(self, p: list) -> torch.Tensor:
        return self.base._loss(
            dict(zip(self.names, p, strict=True)), self.base.idx, self.base.targets
        )

    def losses(self, n: int) -> np.ndarray:
        return self.driver.losses(n)

    @torch.no_grad()
    def params(self) -> list[np.ndarray]:
        for name, value in zip(self.names, self.driver.carry[0], strict=True):
            self.base.p[name].copy_(value)  # into the module's layout, then read it as eager does
        return self.base.params()

    def count_ops(self) -> int:
        return count_dispatched(lambda: self._body(self.driver.carry, None))

    def describe(self) -> dict:
        return {
            **self.driver.describe(),
            "optimizer": "AdamW as tensor arithmetic in the scan body",
        }

    def reset(self) -> None:
        self.driver.carry = self._start()


FUSED_ADAMW = True  # torch.optim.AdamW(fused=True): CPU and CUDA on torch >= 2.4


build_eager, build_compiled, build_fullgraph, build_cudagraphs, build_scan = builders(
    TorchGPTStep, TorchGPTScanStep
)


class GPTStage(nn.Module):
    """A run of blocks; the first stage also embeds, the last also normalises and projects to
    the vocabulary with its own copy of the tied weight (the runner sums the two gradients)."""

    def __init__(self, gpt: GPT, blocks: list[int], first: bool, last: bool) -> None:
        super().__init__()
        self.first, self.last = first, last
        if first:
            self.wte, self.wpe = gpt.wte, gpt.wpe
            self.register_buffer("pos", gpt.pos.clone(), persistent=False)
        self.h = nn.ModuleList(gpt.h[i] for i in blocks)
        if last:
            self.ln_f = gpt.ln_f
            self.head = nn.Linear(gpt.wte.weight.shape[1], gpt.wte.weight.shape[0], bias=False)
            with torch.no_grad():
                self.head.weight.copy_(gpt.wte.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.first:
            x = self.wte(x) + self.wpe(self.pos[: x.shape[1]])  # idx (B, T) -> (B, T, C)
        for block in self.h:
            x = block(x)
        return self.head(self.ln_f(x)) if self.last else x  # logits (B, T, V) or (B, T, C)


def pipeline_stages(
    cfg: GPTConfig, n: int
) -> list[tuple[nn.Module, list[tuple[int, torch.Tensor, bool]]]]:
    """The GPT cut into n stages of consecutive blocks (embedding with the first, final LayerNorm
    and head with the last), from the shared seeded start: [(stage module, [(index in
    model.param_names, tensor, stored transposed)])]. Index 0 (wte) appears in the first stage
    (embedding) and the last (head): their gradients sum to the tied weight's."""
    if not 1 <= n <= cfg.n_layer:
        raise ValueError(f"{n} stages for {cfg.n_layer} blocks")
    gpt = TorchGPTStep(cfg, "eager").model
    ordered = gpt.ordered()
    out = []
    for s, chunk in enumerate(np.array_split(np.arange(cfg.n_layer), n)):
        stage = GPTStage(gpt, [int(i) for i in chunk], s == 0, s == n - 1)
        params = [(0, gpt.wte.weight, False), (1, gpt.wpe.weight, False)] if s == 0 else []
        for i in chunk:
            params += [
                (
                    2 + 12 * int(i) + j,
                    ordered[2 + 12 * int(i) + j][0],
                    ordered[2 + 12 * int(i) + j][1],
                )
                for j in range(12)
            ]
        if s == n - 1:
            params += [
                (len(ordered) - 2, gpt.ln_f.weight, False),
                (len(ordered) - 1, gpt.ln_f.bias, False),
                (0, stage.head.weight, False),
            ]
        out.append((stage, params))
    return out


def pipeline_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    # mean over tokens
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
