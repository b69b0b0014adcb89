"""Which parameters an update trains and sends: the strategies of
`amslib.core.registry.STRATEGIES`, each an object whose `train` runs one update on a
`Trainer` (amslib/sim/training.py) and returns the new values and the mask sent.

Gradient-guided selection (SPEC.md, "Mechanisms"): take one Adam step on all parameters,
rank every scalar by |change|, keep the top `fraction`, revert the rest, then train the
remaining steps changing only the kept ones. The mask is recomputed at every update.

The fixed-mask strategies choose the mask before training and train all `iterations` steps
inside it; each picks exactly round(fraction * P) scalars, so all compare at equal
`fraction`: `first_layers` / `last_layers` take the first / last scalars in the model's
parameter order (input to output; the boundary layer is cut part-way to keep the count
exact), `first_and_last` half from each end, `random` a fresh uniform draw at every update.
`full` trains and sends every parameter.

`gradient_magnitude` (ours, not the paper's) ranks by |gradient| on the first batch instead
of by one Adam step's change, then trains all `iterations` steps inside that mask. The reason:
from a fresh Adam state the first step is lr * g / (|g| + eps'), about lr for every scalar
whose |g| is well above eps' (1e-7 / sqrt(1 - beta2), 3.2e-6), so ranking by that change
barely tells the scalars apart (docs/decisions.md).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from amslib.core.registry import STRATEGIES
from amslib.models.student import flat_weights, set_flat_weights


@dataclass(frozen=True)
class TrainResult:
    """Parameters after an update: `values` (P,) float32, `mask` (P,) bool or None for all."""

    values: np.ndarray
    mask: np.ndarray | None
    losses: tuple[float, ...]


def selection_count(num_params: int, fraction: float) -> int:
    """round(fraction * P), at least 1 and at most P: the scalars every strategy sends."""
    return min(num_params, max(1, int(round(fraction * num_params))))


def top_fraction_mask(delta: np.ndarray, fraction: float) -> np.ndarray:
    """(P,) bool selecting exactly round(fraction * P) scalars (at least 1) with the largest
    |delta|; the same count for every strategy keeps them comparable at equal `fraction`."""
    k = selection_count(delta.size, fraction)
    mask = np.zeros(delta.size, bool)
    mask[np.argpartition(np.abs(delta), delta.size - k)[delta.size - k:]] = True
    return mask


def draw_batch(rng: np.random.Generator, num_samples: int, batch_size: int) -> np.ndarray:
    """Indices of one training batch: `batch_size` of `num_samples` (all if fewer), no repeats."""
    return rng.choice(num_samples, size=min(batch_size, num_samples), replace=False)


class Strategy:
    """How one update trains and what it sends. `fixed_mask`: the mask is chosen before any
    training (so it can be drawn without a model, as notebook 05 does)."""

    fixed_mask = False

    def train(self, trainer, frames: np.ndarray, labels: np.ndarray, *, base: np.ndarray,
              policy, rng: np.random.Generator) -> TrainResult:  # pragma: no cover - abstract
        raise NotImplementedError


def _fit(trainer, frames, labels, policy, rng, *, steps: int) -> list[float]:
    return trainer.fit(frames, labels, steps=steps, batch_size=policy.batch_size, rng=rng)


class Full(Strategy):
    """Train and send every parameter."""

    def train(self, trainer, frames, labels, *, base, policy, rng) -> TrainResult:
        trainer.restrict(None, base)
        losses = _fit(trainer, frames, labels, policy, rng, steps=policy.iterations)
        return TrainResult(flat_weights(trainer.model), None, tuple(losses))


class GradientGuided(Strategy):
    """The paper's: one step on all, keep the top `fraction` by |change|, train those."""

    def train(self, trainer, frames, labels, *, base, policy, rng) -> TrainResult:
        trainer.restrict(None, base)
        losses = _fit(trainer, frames, labels, policy, rng, steps=1)
        after_one = flat_weights(trainer.model)
        mask = top_fraction_mask(after_one - base, policy.fraction)
        set_flat_weights(trainer.model, np.where(mask, after_one, base))  # revert the rest
        trainer.restrict(mask, base)
        losses += _fit(trainer, frames, labels, policy, rng, steps=policy.iterations - 1)
        return TrainResult(flat_weights(trainer.model), mask, tuple(losses))


class Masked(Strategy):
    """Train `iterations` steps inside a mask chosen before training by `choose`."""

    def train(self, trainer, frames, labels, *, base, policy, rng) -> TrainResult:
        mask = self.choose(trainer, frames, labels, base=base, policy=policy, rng=rng)
        trainer.restrict(mask, base)
        losses = _fit(trainer, frames, labels, policy, rng, steps=policy.iterations)
        return TrainResult(flat_weights(trainer.model), mask, tuple(losses))

    def choose(self, trainer, frames, labels, *, base, policy, rng) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


class GradientMagnitude(Masked):
    """Ours: the top `fraction` by |gradient| on the first batch."""

    def choose(self, trainer, frames, labels, *, base, policy, rng) -> np.ndarray:
        return trainer.gradient_mask(frames, labels, policy.fraction, batch_size=policy.batch_size, rng=rng)


class FixedMask(Masked):
    """A mask from the parameter order alone (or a random draw): `rule(P, k, rng)`."""

    fixed_mask = True

    def __init__(self, rule: Callable[[int, int, np.random.Generator], np.ndarray]) -> None:
        self.rule = rule

    def mask(self, num_params: int, fraction: float, *, rng: np.random.Generator) -> np.ndarray:
        """(P,) bool of exactly round(fraction * P) scalars."""
        return self.rule(num_params, selection_count(num_params, fraction), rng)

    def choose(self, trainer, frames, labels, *, base, policy, rng) -> np.ndarray:
        return self.mask(base.size, policy.fraction, rng=rng)


def _first(p: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(p) < k


def _last(p: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(p) >= p - k


def _first_and_last(p: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return _first(p, k // 2, rng) | _last(p, k - k // 2, rng)


def _random(p: int, k: int, rng: np.random.Generator) -> np.ndarray:
    mask = np.zeros(p, bool)
    mask[rng.choice(p, size=k, replace=False)] = True
    return mask


# The objects amslib.core.registry.STRATEGIES names.
FULL = Full()
GRADIENT_GUIDED = GradientGuided()
GRADIENT_MAGNITUDE = GradientMagnitude()
FIRST_LAYERS = FixedMask(_first)
LAST_LAYERS = FixedMask(_last)
FIRST_AND_LAST = FixedMask(_first_and_last)
RANDOM = FixedMask(_random)


def fixed_mask_strategies() -> tuple[str, ...]:
    """The registered strategies whose mask is chosen before training."""
    return tuple(name for name in STRATEGIES if STRATEGIES.load(name).fixed_mask)


def strategy_mask(strategy: str, num_params: int, fraction: float, *,
                  rng: np.random.Generator) -> np.ndarray:
    """(P,) bool of the scalars a fixed-mask strategy trains (see the module docstring)."""
    chosen = STRATEGIES.load(STRATEGIES.check(strategy))
    if not chosen.fixed_mask:
        raise ValueError(f"'{strategy}' is not a fixed-mask strategy; use one of {', '.join(fixed_mask_strategies())}")
    return chosen.mask(num_params, fraction, rng=rng)
