"""One gradient step on a batch, plus the target-parameter refresh: the piece every
algorithm's learning shares.

A learner is built from a loss, `loss(params, target_params, batch, hp, key) -> (per-sample
loss (batch,), per-sample priority (batch,))`, so it never knows whether the batch holds
one-step transitions, n-step ones or lambda-returns, nor whether the Q-values are numbers
or distributions. The priority is each loss's own signal for prioritized replay: |TD
error| for scalar Q-learning, the per-sample loss for distributional ones.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

if TYPE_CHECKING:
    from qlax.core.hparams import HParams


# Adam, or RAdam (Liu et al. 2020): Adam with its variance estimate rectified, which warms
# its steps up over the first updates; purejaxql's PQN trains Atari with it.
OPTIMIZERS = {"adam": optax.adam, "radam": optax.radam}


def clipped_optimizer(name: str, lr, max_grad_norm, eps: float) -> optax.GradientTransformation:
    """OPTIMIZERS[name] at `lr` (a number or a schedule) with epsilon `eps`, after global-norm
    clipping at `max_grad_norm` (inf: clipping is a no-op)."""
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), OPTIMIZERS[name](lr, eps=eps))


class Schedule(NamedTuple):
    """An algorithm's optimizer and the learning rate it steps at.

    optimizer(hp) -> the optax transformation for `make_learner`;
    learning_rate(hp, updates) -> the learning rate of the next step after `updates` steps.
    """

    optimizer: Callable
    learning_rate: Callable


def schedule(config, total_updates: Callable) -> Schedule:
    """`config.optimizer` after clipping at hp.lr, or under `config.lr_decay` at a rate
    falling linearly from hp.lr to 0 over `total_updates(hp)` steps (the budget's; a
    member's own where its hyperparameters set it). optax counts the steps the optimizer
    took, which are the learner's: a step `guarded` rejects is undone with its state."""

    def learning_rate(hp: HParams, updates) -> jax.Array:
        if not config.lr_decay:
            return hp.lr
        return hp.lr * jnp.maximum(1.0 - updates / total_updates(hp), 0.0)

    def optimizer(hp: HParams) -> optax.GradientTransformation:
        lr = functools.partial(learning_rate, hp) if config.lr_decay else hp.lr
        return clipped_optimizer(config.optimizer, lr, hp.max_grad_norm, config.adam_eps)

    return Schedule(optimizer, learning_rate)


def _online(params, target_params, updates, hp):
    return params


def _periodic(params, target_params, updates, hp):
    return optax.periodic_update(params, target_params, updates, hp.target_period)


def _polyak(params, target_params, updates, hp):
    return optax.incremental_update(params, target_params, hp.tau)


# The one list of target updates: (params, target_params, updates taken, hp) -> target_params.
TARGETS = {"online": _online, "periodic": _periodic, "polyak": _polyak}
TARGET_SETTINGS = {"online": (), "periodic": ("target_period",), "polyak": ("tau",)}  # what each reads


@struct.dataclass
class LearnerState:
    params: dict
    target_params: dict  # the bootstrap parameters; equal to params for target "online"
    opt_state: optax.OptState
    updates: jax.Array  # int32 (): gradient steps taken


class Learner(NamedTuple):
    """init(params, hparams) -> LearnerState;
    update(state, batch, hparams, weights=None, key=None) -> (state, mean loss, priorities (batch,)).

    `weights` (batch,) scale each sample's loss: importance weights of prioritized replay.
    `key` feeds whatever the loss samples (noisy networks' noise).
    """

    init: Callable
    update: Callable


def make_learner(loss: Callable, optimizer: Callable[[HParams], optax.GradientTransformation],
                 target: str = "periodic") -> Learner:
    """A learner minimizing `loss` with `optimizer(hparams)`, refreshing targets by `TARGETS[target]`.

    `optimizer(hparams)` builds the optax transformation from the member's traced
    hyperparameters at every step (their state layout never depends on them), so the
    learning rate is state, not a compiled-in constant: the effect of
    `optax.inject_hyperparams`, with the training state's `HParams` as the one place
    the numbers live.
    """
    if target not in TARGETS:  # otherwise a misspelt target would silently run another one
        raise ValueError(f"target = '{target}': must be one of {', '.join(TARGETS)}")
    refresh = TARGETS[target]

    def mean_loss(params, target_params, batch, hp, weights, key):
        per_sample, priorities = loss(params, target_params, batch, hp, key)
        if weights is not None:
            per_sample = weights * per_sample
        return jnp.mean(per_sample), priorities

    def init(params, hp: HParams):
        return LearnerState(params=params, target_params=params,
                            opt_state=optimizer(hp).init(params), updates=jnp.int32(0))

    def update(state: LearnerState, batch, hp: HParams, weights: jax.Array | None = None,
               key: jax.Array | None = None):
        (value, priorities), grads = jax.value_and_grad(mean_loss, has_aux=True)(
            state.params, state.target_params, batch, hp, weights, key)
        step_updates, opt_state = optimizer(hp).update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, step_updates)
        updates = state.updates + 1
        target_params = refresh(params, state.target_params, updates, hp)
        return LearnerState(params, target_params, opt_state, updates), value, jax.lax.stop_gradient(priorities)

    return Learner(init=init, update=update)


def all_finite(tree) -> jax.Array:
    """Whether every element of every leaf is finite (bool scalar)."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))


def guarded(ready: jax.Array, new: LearnerState, old: LearnerState, loss: jax.Array):
    """(the learner state to keep, whether it was accepted, whether the update diverged).

    An update that was due (`ready`) is taken only when its loss and parameters are
    finite; a non-finite one is never taken, so a diverging member freezes at its last
    finite state instead of spreading NaNs.
    """
    finite = jnp.isfinite(loss) & all_finite(new.params)
    accept = ready & finite
    return jax.tree.map(lambda n, o: jnp.where(accept, n, o), new, old), accept, ready & ~finite
