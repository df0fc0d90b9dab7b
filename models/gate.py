"""The equivalence gate's comparison, shared by every model: per-step losses and the parameter
updates of an implementation against the float64 reference. Tolerances live with each model."""

from __future__ import annotations

import numpy as np


def compare_to_reference(
    start: list[np.ndarray],
    losses: np.ndarray,
    params: list[np.ndarray],
    ref: tuple[np.ndarray, list[np.ndarray]],
    loss_rtol: float,
    update_rtol: float,
) -> tuple[float, float, str]:
    """(max loss rel. error, max update rel. error, '' if both within tolerance else why not).

    Updates are compared, not parameters: (p - p0) against (ref - p0) per tensor, so the check
    sees the training step itself rather than the initial values it starts from."""
    ref_losses, ref_params = ref
    losses = np.asarray(losses, np.float64)  # pragma: no mutate (equivalent: dtype only)
    if losses.shape != ref_losses.shape:
        return np.inf, np.inf, f"losses shape {losses.shape} != {ref_losses.shape}"
    if not np.all(np.isfinite(losses)):
        return np.inf, np.inf, f"non-finite loss {losses.tolist()}"
    loss_err = float(np.max(np.abs(losses - ref_losses) / np.abs(ref_losses)))
    if len(params) != len(ref_params):
        return loss_err, np.inf, f"{len(params)} parameter tensors, reference has {len(ref_params)}"
    update_err = 0.0
    for i, (p, r, p0) in enumerate(
        zip(params, ref_params, start, strict=True)
    ):  # pragma: no mutate (lengths checked)
        p = np.asarray(p, np.float64)  # pragma: no mutate (equivalent: dtype only)
        if p.shape != r.shape:
            return loss_err, np.inf, f"param {i} shape {p.shape} != {r.shape}"
        if not np.all(
            np.isfinite(p)
        ):  # the last step's update, after its (finite) loss, can be the one
            return loss_err, np.inf, f"non-finite values in param {i}"
        ref_update = r - p0
        # A tensor the reference leaves (almost) unchanged, e.g. behind dead ReLUs, is judged
        # against float32 resolution of the tensor itself instead of its vanishing update.
        denom = max(np.linalg.norm(ref_update), 1e-7 * np.linalg.norm(r), 1e-30)
        update_err = max(update_err, float(np.linalg.norm((p - p0) - ref_update) / denom))
    why = []
    if not loss_err <= loss_rtol:
        why.append(f"loss rel. error {loss_err:.2e} > {loss_rtol:.0e}")
    if not update_err <= update_rtol:
        why.append(f"update rel. error {update_err:.2e} > {update_rtol:.0e}")
    return loss_err, update_err, "; ".join(why)


def grad_rel_err(grad: np.ndarray, want: np.ndarray) -> float:
    """Relative error of one gradient tensor against the float64 reference's: the norm of the
    difference over the reference's norm (the pipeline gates: PyTorch's, JAX's and C's)."""
    g = np.asarray(grad, np.float64)  # pragma: no mutate (equivalent: dtype only)
    return float(np.linalg.norm(g - want) / max(np.linalg.norm(want), 1e-30))
