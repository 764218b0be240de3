"""One gradient step on a batch of transitions, plus the target-parameter refresh."""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from qlax import losses
from qlax.config import HParams
from qlax.qfunctions import QFunction
from qlax.types import Transition


@struct.dataclass
class LearnerState:
    params: dict
    target_params: dict  # the bootstrap parameters; equal to params for target "online"
    opt_state: optax.OptState
    updates: jax.Array  # int32 (): gradient steps taken


class Learner(NamedTuple):
    """init(params, hparams) -> LearnerState;
    update(state, batch, hparams, weights=None) -> (state, loss, td_error (batch,)).

    `hparams` supplies the dynamic numbers (gamma, huber_delta, target_period, tau and
    the optimizer's); `weights` (batch,) scale each sample's penalty: importance weights
    of prioritized replay.
    """

    init: Callable
    update: Callable


def make_learner(q_function: QFunction, optimizer: Callable[[HParams], optax.GradientTransformation], *,
                 loss: str = "huber", gradient: str = "semi", target: str = "periodic",
                 double_q: bool = False) -> Learner:
    """A Q-learning learner.

    `optimizer(hparams)` builds the optax transformation from the member's traced
    hyperparameters at every step (their state layout never depends on them), so the
    learning rate is state, not a compiled-in constant: the effect of
    `optax.inject_hyperparams`, with the training state's `HParams` as the one place
    the numbers live.

    gradient "semi" holds the bootstrap target fixed (stop_gradient): Q-learning proper.
    gradient "residual" differentiates through it, as the seed notebook does; it uses
    the online parameters for the target.
    target "online" bootstraps from the current parameters, "periodic" from a copy
    refreshed every `target_period` updates, "polyak" from an average moved by `tau`.
    double_q picks the next action with the online head and values it with the target one.
    """
    for name, value, choices in (("loss", loss, ("squared", "huber")), ("gradient", gradient, ("semi", "residual")),
                                 ("target", target, ("online", "periodic", "polyak"))):
        if value not in choices:  # otherwise a misspelt target would silently run polyak
            raise ValueError(f"{name} = '{value}': must be one of {', '.join(choices)}")

    def loss_fn(params, target_params, batch: Transition, hp: HParams, weights):
        # One feature pass for obs and next_obs together: the features are never trained,
        # so the online and the target head share them.
        phi = q_function.features(params, jnp.concatenate([batch.obs, batch.next_obs]))
        phi_obs, phi_next = jnp.split(phi, 2)
        q = losses.select_action_values(q_function.head(params, phi_obs), batch.action)
        bootstrap = params if gradient == "residual" else target_params
        next_q = q_function.head(bootstrap, phi_next)
        discount = hp.gamma if batch.discount is None else batch.discount
        if double_q:
            next_q_online = jax.lax.stop_gradient(q_function.head(params, phi_next))
            y = losses.double_q_target(batch.reward, batch.terminated, next_q_online, next_q, discount)
        else:
            y = losses.q_learning_target(batch.reward, batch.terminated, next_q, discount)
        if gradient == "semi":
            y = jax.lax.stop_gradient(y)
        td_error = q - y
        penalty = losses.td_penalty(td_error, loss, hp.huber_delta)
        if weights is not None:
            penalty = weights * penalty
        return jnp.mean(penalty), td_error

    def init(params, hp: HParams):
        return LearnerState(params=params, target_params=params,
                            opt_state=optimizer(hp).init(params), updates=jnp.int32(0))

    def update(state: LearnerState, batch: Transition, hp: HParams, weights: jax.Array | None = None):
        (value, td_error), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state.target_params, batch, hp, weights)
        step_updates, opt_state = optimizer(hp).update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, step_updates)
        updates = state.updates + 1
        if target == "online":
            target_params = params
        elif target == "periodic":
            target_params = optax.periodic_update(params, state.target_params, updates, hp.target_period)
        else:
            target_params = optax.incremental_update(params, state.target_params, hp.tau)
        return LearnerState(params, target_params, opt_state, updates), value, jax.lax.stop_gradient(td_error)

    return Learner(init=init, update=update)
