"""Faulty implementations for the reliability tests, registered only when the tests set
BENCH_EXTRA_IMPLS=tests.faulty (models.registry, on first use). Each runs in the numpy worker,
so the real numpy.loop cases after it prove that the worker is replaced."""

from __future__ import annotations

import ctypes
import time

from models.mlp.model import MLPConfig
from models.mlp.numpy_impl import NumpyStep, mlp_backward, mlp_forward
from models.mlp.numpy_impl import build as numpy_build
from models.registry import Impl


class Segfault(NumpyStep):
    def call(self) -> None:
        ctypes.string_at(0)  # reads address 0: SIGSEGV inside the step


class Hang(NumpyStep):
    def call(self) -> None:
        time.sleep(3600)


class NanAfterThree(NumpyStep):
    """Correct for three steps, then a NaN loss: the gate sees it in its 5 steps."""

    steps_done = 0

    def _step(self) -> float:
        self.steps_done += 1
        loss = super()._step()
        return float("nan") if self.steps_done > 3 else loss


class WrongGrad(NumpyStep):
    """Forgets the ReLU mask in the backward pass of the last hidden layer."""

    def _step(self) -> float:
        loss, cache = mlp_forward(self.p, self.x, self.y)
        caches, xent = cache
        h = caches[-1][0]
        saved = h.copy()
        h[h == 0] = 0.5  # wrong activations seen by the backward pass only
        grads = mlp_backward(self.p, cache)
        h[...] = saved
        for p, g in zip(self.p, grads, strict=True):
            p -= self.cfg.lr * g
        return loss


SLEEP_S = 0.002  # seconds per training step of the sleepers


class Sleeper(NumpyStep):
    """Correct numbers, and a known time: each call sleeps SLEEP_S per step (K steps per call when
    fused), so a run must measure SLEEP_S per step whatever K is."""

    def call(self) -> None:
        time.sleep(SLEEP_S * self.steps_per_call)


def build_sleep(cfg: MLPConfig, steps_per_call: int = 1, device: str = "cpu"):
    step = _build(Sleeper)(cfg)
    step.steps_per_call = steps_per_call
    return step


def _build(cls):
    def build(cfg: MLPConfig, steps_per_call: int = 1, device: str = "cpu"):
        base = numpy_build(cfg)
        step = cls.__new__(cls)
        step.__dict__.update(base.__dict__)
        return step

    return build


build_segfault, build_hang = _build(Segfault), _build(Hang)
build_nan, build_wrong = _build(NanAfterThree), _build(WrongGrad)

EXTRA_IMPLS = [
    Impl("fault.segfault", "mlp", "tests.faulty:build_segfault", framework="numpy"),
    Impl("fault.hang", "mlp", "tests.faulty:build_hang", framework="numpy"),
    Impl("fault.nan", "mlp", "tests.faulty:build_nan", framework="numpy"),
    Impl("fault.wrong", "mlp", "tests.faulty:build_wrong", framework="numpy"),
    Impl("fault.noimport", "mlp", "tests.faulty_broken:build", framework="numpy"),
    Impl("fault.sleep", "mlp", "tests.faulty:build_sleep", framework="numpy"),
    Impl("fault.sleepk", "mlp", "tests.faulty:build_sleep", framework="numpy", fused=True),
]
