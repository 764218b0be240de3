"""Munchausen-DQN (Vieillard et al. 2020): DQN whose target adds the scaled log-policy of
the action taken and bootstraps from a soft value, on DQN's plumbing.

The policy is the softmax of the target network's Q-values at temperature
`munchausen_tau`. The target is r + munchausen_alpha * clip(tau * log pi(a|s),
munchausen_clip, 0) + gamma * sum_a' pi(a'|s') (q(s', a') - tau * log pi(a'|s'))
(`losses.munchausen_target`), learned semi-gradient with the TD penalty `loss`. With
n-step returns the bonus is the first action's and the soft value bootstraps after n
steps (the steps between add their rewards, not their log-policies). The soft value
weighs every next action, so there is no `double_q`. Replay, prioritized replay, dueling
heads and the target network come from `dqn.build`.
"""

from __future__ import annotations

import jax

from qlax.algorithms import dqn
from qlax.components import losses
from qlax.components.contract import Algorithm
from qlax.settings.config import TrainConfig


def values(config: TrainConfig) -> dqn.Values:
    def loss(forward: dqn.Forward, batch, hp):
        q = losses.select_action_values(forward.outputs, batch.action)
        discount = hp.gamma if batch.discount is None else batch.discount  # gamma^k of an n-step transition
        y = losses.munchausen_target(batch.reward, batch.terminated, batch.action, forward.target_outputs,
                                     forward.next_selector, discount, config.munchausen_tau,
                                     config.munchausen_alpha, config.munchausen_clip)
        td_error = q - jax.lax.stop_gradient(y)
        return losses.td_penalty(td_error, config.loss, hp.huber_delta), td_error

    return dqn.Values(outputs_per_action=1, q_values=lambda outputs: outputs, loss=loss, target_at_obs=True)


FAMILY = tuple(name for name in dqn.FAMILY_SETTINGS if name != "double_q")
SETTINGS = (*FAMILY, "loss", "munchausen_alpha", "munchausen_tau", "munchausen_clip")  # `config.owners`


def check(config: TrainConfig) -> None:
    dqn.check(config)


def make(config: TrainConfig, env) -> Algorithm:
    return dqn.build(config, env, values(config))
