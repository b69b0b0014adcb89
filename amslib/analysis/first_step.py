"""How far apart one Adam step moves the scalars, the step gradient-guided selection ranks by
(docs/decisions.md): from a fresh Adam state it moves nearly every scalar by about lr, so the
ranking is of near-ties; with Adam's moments kept from an earlier update, it spreads out.
Measured here for notebook 05 and for docs/claims.md.
"""
from __future__ import annotations

import numpy as np

from amslib.models.student import flat_weights, set_flat_weights
from amslib.models.teachers import LabelledFrames
from amslib.sim.engine import Students
from amslib.sim.selection import draw_batch

ADAM_EPSILON, ADAM_BETA2 = 1e-7, 0.999  # Keras' Adam defaults, which amslib.sim.training uses


def adam_first_step(gradient: np.ndarray, *, lr: float, epsilon: float = ADAM_EPSILON,
                    beta2: float = ADAM_BETA2) -> np.ndarray:
    """|change| (P,) of each scalar after one Adam step from a fresh state, for `gradient` (P,):
    lr * |g| / (|g| + epsilon / sqrt(1 - beta2)) (the bias corrections cancel m and v's scales)."""
    g = np.abs(np.asarray(gradient, np.float64))
    return lr * g / (g + epsilon / np.sqrt(1.0 - beta2))


def first_step_spread(students: Students, buffer: LabelledFrames, *, base: np.ndarray, lr: float,
                      batch_size: int, seed: int, tolerance: float = 0.01, optimizer_state: str = "reset",
                      earlier: LabelledFrames | None = None, earlier_steps: int = 10) -> dict:
    """How much one Adam step on all parameters, the step gradient-guided selection ranks by,
    tells the scalars apart, on the batch the update would draw first.

    `optimizer_state="reset"`: the step starts from a fresh Adam state. `"persist"`: first an
    earlier update of `earlier_steps` steps on `earlier` (the samples an update before this one
    trained on), then the weights go back to `base` and Adam's moments stay, as the original's
    server kept them from update to update.

    Returns `share_near_lr` (the share of scalars that moved within `tolerance` x lr of lr),
    `gradient_p10`/`gradient_p90` (the 10th and 90th percentile of |gradient| among those:
    how different the gradients that moved alike are), `change_p10`/`change_p90` (of |change|
    over all scalars), `tied_at_threshold` (the share of scalars whose |change| equals the
    top-10% threshold within `tolerance`: what ranking cannot tell apart) and the measured
    `change` and `gradient` (P,)."""
    if optimizer_state not in ("reset", "persist"):
        raise ValueError(f"optimizer_state must be reset or persist, got '{optimizer_state}'")
    if optimizer_state == "persist" and earlier is None:
        raise ValueError("optimizer_state='persist' needs `earlier`: the samples of an earlier update")
    trainer = students.trainer
    rng = np.random.default_rng(seed)
    trainer.reset_optimizer(lr=lr)
    trainer.unmask()
    if optimizer_state == "persist":
        set_flat_weights(trainer.model, base)
        trainer.fit(earlier.frames, earlier.labels, steps=earlier_steps, batch_size=batch_size, rng=rng)
    pick = draw_batch(rng, len(buffer.frames), batch_size)
    set_flat_weights(trainer.model, base)
    gradient = trainer.gradient(buffer.frames[pick], buffer.labels[pick])
    trainer.step_on(buffer.frames[pick], buffer.labels[pick])
    change = np.abs(flat_weights(trainer.model) - base)
    set_flat_weights(trainer.model, base)
    near = np.abs(change - lr) <= tolerance * lr
    g = np.abs(gradient[near]) if near.any() else np.zeros(1)
    threshold = np.quantile(change, 0.9)
    tied = np.abs(change - threshold) <= tolerance * threshold
    return {"optimizer_state": optimizer_state, "share_near_lr": float(near.mean()),
            "gradient_p10": float(np.percentile(g, 10)), "gradient_p90": float(np.percentile(g, 90)),
            "change_p10": float(np.percentile(change, 10)), "change_p90": float(np.percentile(change, 90)),
            "tied_at_threshold": float(tied.mean()), "change": change, "gradient": gradient}
