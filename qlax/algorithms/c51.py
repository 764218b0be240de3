"""C51: categorical distributional Q-learning (Bellemare et al. 2017) on DQN's plumbing.

Each action's return is a categorical distribution over `num_atoms` fixed atoms from
`v_min` to `v_max`; the target distribution, shifted by the reward and shrunk by the
discount, is projected back onto the atoms, and the loss is the cross-entropy. Replay,
n-step returns, double Q, dueling heads, noisy networks and prioritized replay (the
per-sample cross-entropy as the priority) come from `dqn.build`.
"""

from __future__ import annotations

import numpy as np

from qlax.algorithms import dqn
from qlax.components import losses
from qlax.components.contract import Algorithm
from qlax.settings.config import ConfigError, TrainConfig


def values(config: TrainConfig) -> dqn.Values:
    atoms = losses.categorical_atoms(np.float32(config.v_min), np.float32(config.v_max), config.num_atoms)

    def loss(forward: dqn.Forward, batch, hp):
        per_sample = losses.categorical_loss(forward.outputs, batch.action, batch.reward,
                                             dqn.bootstrap_discount(batch, hp), forward.next_outputs,
                                             forward.next_selector, atoms)
        return per_sample, per_sample

    return dqn.Values(outputs_per_action=config.num_atoms,
                      q_values=lambda logits: losses.categorical_q_values(logits, atoms), loss=loss,
                      double_q=config.double_q, loss_pairs=config.num_atoms ** 2)


SETTINGS = (*dqn.FAMILY_SETTINGS, "num_atoms", "v_min", "v_max")  # what C51 reads (`config.owners`)


def check(config: TrainConfig) -> None:
    dqn.check(config)
    if np.float32(config.v_min) >= np.float32(config.v_max):  # as the program holds them
        raise ConfigError(f"v_min ({config.v_min}) must be below v_max ({config.v_max})")
    if config.q_function == "linear_rbf":
        raise ConfigError("algorithm 'c51' needs a network: set q_function to 'mlp' or 'conv'")


def make(config: TrainConfig, env) -> Algorithm:
    return dqn.build(config, env, values(config))
