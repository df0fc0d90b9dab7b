"""MLP in PyTorch. Four rows, one model:

- `torch.eager`: nn.Module + torch.optim.SGD, zero_grad / forward / backward / step;
- `torch.compile`: that same step function under torch.compile, the common idiom. Dynamo breaks
  the graph at loss.backward() and opt.step(), so a step runs as several graphs with Python
  between them (counted in the graphs and graph_breaks columns);
- `torch.fullgraph`: the step written with torch.func (functional_call + grad_and_value) and the
  SGD update as in-place foreach arithmetic on the parameter tensors, under
  torch.compile(fullgraph=True): forward, backward and update in one graph, one Python call;
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

from .model import MLPConfig, init_params, make_batch


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
    """One training step of a kind: eager, compile, fullgraph or cudagraphs (see the module)."""

    steps_per_call = 1
    gate = True
    op_unit = "ATen ops"

    def __init__(self, cfg: MLPConfig, kind: str, device: str = "cpu") -> None:
        self.cfg, self.kind = cfg, kind
        self.init = init_params(cfg)
        x, y = make_batch(cfg)
        self.x = torch.from_numpy(x).to(device)  # (B, D)
        self.y = torch.from_numpy(y).to(device)  # (B,)
        self.model = MLP(cfg).to(device)
        self.linears = [m for m in self.model.net if isinstance(m, nn.Linear)]
        self.reset()
        if kind in ("eager", "compile"):
            self.opt = torch.optim.SGD(self.model.parameters(), lr=cfg.lr)
            self.fn, self.args = self._train_step, ()
        else:
            # share storage with the module
            self.p = {k: v.detach() for k, v in self.model.named_parameters()}
            self.fn, self.args = self._functional_step, (self.p, self.x, self.y)
        bind(self, device)

    def _train_step(self) -> torch.Tensor:
        self.opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(self.x), self.y)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def _loss(self, p: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(self.model, p, (x,)), y)

    def _functional_step(self, p: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Forward, backward (torch.func) and SGD, the parameters updated in place."""
        grads, loss = grad_and_value(self._loss)(p, x, y)
        torch._foreach_add_(list(p.values()), [grads[k] for k in p], alpha=-self.cfg.lr)
        return loss

    def losses(self, n: int) -> np.ndarray:
        return np.array([self.step_fn().item() for _ in range(n)])

    def params(self) -> list[np.ndarray]:
        out = []
        for lin in self.linears:
            out += [
                lin.weight.detach().T.cpu().numpy().copy(),
                lin.bias.detach().cpu().numpy().copy(),
            ]  # to host
        return out

    def count_ops(self) -> int:
        """ATen operators dispatched by one eager run of this row's step function (forward,
        backward, optimizer); the compiled rows count the step they compile."""
        return count_dispatched(partial(self.fn, *self.args))

    def describe(self) -> dict:
        opt = (
            "torch.optim.SGD"
            if self.kind in ("eager", "compile")
            else "SGD as torch._foreach_add_ in the graph"
        )
        return {**graph_facts(self.kind, self.fn, *self.args), "optimizer": opt}

    @torch.no_grad()
    def reset(self) -> None:
        for i, lin in enumerate(self.linears):
            lin.weight.copy_(torch.from_numpy(self.init[2 * i].T))  # (out, in) <- (in, out).T
            lin.bias.copy_(torch.from_numpy(self.init[2 * i + 1]))


class TorchScanStep:
    """torch.scan: K functional SGD steps per call in one compiled torch.scan (the counterpart of
    jax.scan); the parameters are the scan's carry, returned, not updated in place."""

    gate = True
    op_unit = "ATen ops"

    def __init__(self, cfg: MLPConfig, steps_per_call: int, device: str = "cpu") -> None:
        self.base = TorchStep(cfg, "eager", device)  # the module, data and initial values
        self.names = [n for n, _ in self.base.model.named_parameters()]
        self.steps_per_call = steps_per_call
        self.driver = ScanDriver(self._body, self._start(), steps_per_call, device)
        set_call(self, self.driver.call, device)

    def _start(self) -> list[torch.Tensor]:
        self.base.reset()
        return [v.detach().clone() for v in self.base.model.parameters()]

    def _body(self, carry: list, _):
        grads, loss = grad_and_value(self._loss)(carry)
        return [p - self.base.cfg.lr * g for p, g in zip(carry, grads, strict=True)], loss

    def _loss(self, carry: list) -> torch.Tensor:
        return self.base._loss(dict(zip(self.names, carry, strict=True)), self.base.x, self.base.y)

    def losses(self, n: int) -> np.ndarray:
        return self.driver.losses(n)

    def params(self) -> list[np.ndarray]:
        return [
            (p.T if p.dim() == 2 else p).detach().cpu().numpy().copy() for p in self.driver.carry
        ]  # (in, out)

    def count_ops(self) -> int:
        return count_dispatched(lambda: self._body(self.driver.carry, None))

    def describe(self) -> dict:
        return {**self.driver.describe(), "optimizer": "SGD as tensor arithmetic in the scan body"}

    def reset(self) -> None:
        self.driver.carry = self._start()


build_eager, build_compiled, build_fullgraph, build_cudagraphs, build_scan = builders(
    TorchStep, TorchScanStep
)


def pipeline_stages(
    cfg: MLPConfig, n: int
) -> list[tuple[nn.Module, list[tuple[int, torch.Tensor, bool]]]]:
    """The MLP cut into n stages of consecutive linear layers (each with the ReLU after it), from
    the shared seeded start: [(stage module, [(index in the model's parameter list, tensor,
    stored transposed)])]. The last stage returns the logits (pipeline_loss gives the loss)."""
    if not 1 <= n <= cfg.depth + 1:
        raise ValueError(f"{n} stages for {cfg.depth + 1} linear layers")
    model = TorchStep(cfg, "eager").model
    layers = list(model.net)
    linear_at = [i for i, m in enumerate(layers) if isinstance(m, nn.Linear)]
    out = []
    for chunk in np.array_split(np.arange(len(linear_at)), n):
        first, last = (
            linear_at[chunk[0]],
            (linear_at[chunk[-1] + 1] if chunk[-1] + 1 < len(linear_at) else len(layers)),
        )
        params = []
        for j in chunk:
            lin = layers[linear_at[j]]
            params += [(2 * int(j), lin.weight, True), (2 * int(j) + 1, lin.bias, False)]
        out.append((nn.Sequential(*layers[first:last]), params))
    return out


def pipeline_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y)  # (B, C), (B,): mean over the (micro)batch
