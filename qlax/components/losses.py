"""TD targets and losses as pure functions over batches: scalar, lambda-return and distributional.

Each one is checked against rlax's version of the same piece in the tests (rlax is a
test extra, not a runtime dependency: it brings distrax and TensorFlow Probability).
Shapes: a leading batch axis; distributional outputs are (batch, num_actions, atoms).
"""

import jax
import jax.numpy as jnp
import optax

PENALTIES = {  # the one list of TD error penalties: 0.5 err^2, or Huber's
    "squared": lambda td_error, delta: 0.5 * td_error**2,
    "huber": lambda td_error, delta: optax.huber_loss(td_error, delta=delta),
}
PENALTY_SETTINGS = {"squared": (), "huber": ("huber_delta",)}  # what each reads


def q_learning_target(reward: jax.Array, terminated: jax.Array, next_q: jax.Array,
                      gamma: jax.Array | float) -> jax.Array:
    """r + gamma * (1 - terminated) * max_a next_q.

    reward, terminated: (batch,); next_q: (batch, num_actions) from the bootstrap
    parameters -> (batch,).
    """
    return reward + gamma * (1.0 - terminated.astype(reward.dtype)) * jnp.max(next_q, axis=-1)


def double_q_target(reward: jax.Array, terminated: jax.Array, next_q_online: jax.Array,
                    next_q_target: jax.Array, gamma: jax.Array | float) -> jax.Array:
    """r + gamma * (1 - terminated) * next_q_target[argmax_a next_q_online] (van Hasselt et al.).

    The online parameters choose the next action, the target parameters value it, which
    removes most of max's overestimation. next_q_*: (batch, num_actions) -> (batch,).
    """
    best = jnp.argmax(next_q_online, axis=-1)
    bootstrap = select_action_values(next_q_target, best)
    return reward + gamma * (1.0 - terminated.astype(reward.dtype)) * bootstrap


def munchausen_target(reward: jax.Array, terminated: jax.Array, action: jax.Array, q_obs: jax.Array,
                      next_q: jax.Array, gamma: jax.Array | float, tau: float, alpha: float,
                      clip_low: float) -> jax.Array:
    """Munchausen-DQN's target (Vieillard et al. 2020), from the target network's Q-values:

        r + alpha * clip(tau * log pi(a|s), clip_low, 0)
          + gamma * (1 - terminated) * sum_a' pi(a'|s') (q(s', a') - tau * log pi(a'|s'))

    with pi = softmax(q / tau). q_obs: (batch, num_actions) at obs; next_q at next_obs,
    -inf at illegal actions (they get no probability and add nothing) -> (batch,).
    """
    tau_log_pi = tau * jax.nn.log_softmax(q_obs / tau, axis=-1)
    bonus = alpha * jnp.clip(select_action_values(tau_log_pi, action), clip_low, 0.0)
    next_tau_log_pi = tau * jax.nn.log_softmax(next_q / tau, axis=-1)
    legal = jnp.isfinite(next_q)
    next_pi = jnp.where(legal, jnp.exp(next_tau_log_pi / tau), 0.0)
    soft_value = jnp.sum(jnp.where(legal, next_pi * (next_q - next_tau_log_pi), 0.0), axis=-1)
    return reward + bonus + gamma * (1.0 - terminated.astype(reward.dtype)) * soft_value


def select_action_values(q: jax.Array, action: jax.Array) -> jax.Array:
    """q[i, action[i]]; q: (batch, num_actions, ...), action: (batch,) -> (batch, ...)."""
    index = action.reshape(action.shape + (1,) * (q.ndim - 1))
    return jnp.take_along_axis(q, index, axis=1)[:, 0]


def td_penalty(td_error: jax.Array, kind: str, huber_delta: float = 1.0) -> jax.Array:
    """Elementwise penalty of `PENALTIES[kind]`."""
    if kind not in PENALTIES:
        raise ValueError(f"loss = '{kind}': must be one of {', '.join(PENALTIES)}")
    return PENALTIES[kind](td_error, huber_delta)


def lambda_returns(reward: jax.Array, discount: jax.Array, value: jax.Array, lambda_: jax.Array) -> jax.Array:
    """G_t = r_t + discount_t [(1 - lambda_t) v_t + lambda_t G_{t+1}], with G_{T-1} bootstrapping
    from v_{T-1} alone; every argument is (T, ...) along time (rlax.lambda_returns' recursion).

    For Q(lambda), v_t = max_a Q(s_{t+1}, a); lambda_t = 0 cuts the return at step t (an
    episode end, or a next step that cannot be bootstrapped through).
    """
    lambda_ = jnp.broadcast_to(lambda_, reward.shape).at[-1].set(0.0)

    def back(next_return, step):
        r, d, v, lam = step
        g = r + d * ((1.0 - lam) * v + lam * next_return)
        return g, g

    _, returns = jax.lax.scan(back, value[-1], (reward, discount, value, lambda_), reverse=True)
    return returns


def categorical_atoms(v_min: jax.Array, v_max: jax.Array, num_atoms: int) -> jax.Array:
    """num_atoms evenly spaced support points from v_min to v_max."""
    return v_min + (v_max - v_min) * jnp.arange(num_atoms, dtype=jnp.float32) / (num_atoms - 1)


def categorical_q_values(logits: jax.Array, atoms: jax.Array) -> jax.Array:
    """The mean of each action's categorical distribution: (..., atoms) logits -> (...)."""
    return jnp.sum(jax.nn.softmax(logits, axis=-1) * atoms, axis=-1)


def categorical_project(target_atoms: jax.Array, probs: jax.Array, atoms: jax.Array) -> jax.Array:
    """Probabilities `probs` at shifted support `target_atoms` (batch, n), projected onto the
    fixed support `atoms` (n,) by splitting each mass between its two neighbours (C51's
    projection; rlax's L2 projection)."""
    spacing = atoms[1] - atoms[0]
    clipped = jnp.clip(target_atoms, atoms[0], atoms[-1])
    share = jnp.clip(1.0 - jnp.abs(clipped[:, None, :] - atoms[None, :, None]) / spacing, 0.0, 1.0)
    return jnp.sum(share * probs[:, None, :], axis=-1)


def categorical_loss(logits: jax.Array, action: jax.Array, reward: jax.Array, discount: jax.Array,
                     next_logits: jax.Array, next_q_selector: jax.Array, atoms: jax.Array) -> jax.Array:
    """C51's per-sample cross-entropy (Bellemare et al. 2017), with the next action chosen by
    `next_q_selector` (online Q for double Q, else the target's own means).

    logits, next_logits: (batch, num_actions, atoms); discount: (batch,), zero at terminals.
    """
    next_action = jnp.argmax(next_q_selector, axis=-1)
    next_probs = jax.nn.softmax(select_action_values(next_logits, next_action), axis=-1)
    target_atoms = reward[:, None] + discount[:, None] * atoms[None, :]
    target = jax.lax.stop_gradient(categorical_project(target_atoms, next_probs, atoms))
    log_probs = jax.nn.log_softmax(select_action_values(logits, action), axis=-1)
    return -jnp.sum(target * log_probs, axis=-1)


def quantile_midpoints(num_quantiles: int) -> jax.Array:
    """tau_i = (2i + 1) / (2N): the quantile levels QR-DQN's outputs estimate."""
    return (2.0 * jnp.arange(num_quantiles, dtype=jnp.float32) + 1.0) / (2.0 * num_quantiles)


def quantile_loss(quantiles: jax.Array, action: jax.Array, reward: jax.Array, discount: jax.Array,
                  next_quantiles: jax.Array, next_q_selector: jax.Array, huber_delta: jax.Array,
                  taus: jax.Array | None = None) -> jax.Array:
    """The per-sample quantile Huber loss of QR-DQN (Dabney et al. 2018) and IQN: for
    predicted quantile i and target sample j, huber(d_ij) |tau_i - 1{d_ij < 0}|, averaged
    over j, summed over i.

    quantiles: (batch, num_actions, N) at the fractions `taus` (batch, N), QR-DQN's
    midpoints if not given; next_quantiles: (batch, num_actions, N'), N' may differ (IQN
    samples its own). huber_delta 0 gives the plain quantile (absolute) loss, as in rlax.
    """
    next_action = jnp.argmax(next_q_selector, axis=-1)
    target = reward[:, None] + discount[:, None] * select_action_values(next_quantiles, next_action)
    target = jax.lax.stop_gradient(target)
    predicted = select_action_values(quantiles, action)
    delta = target[:, None, :] - predicted[:, :, None]  # (batch, i, j)
    tau = quantile_midpoints(predicted.shape[-1])[None, :] if taus is None else taus
    weight = jnp.abs(tau[:, :, None] - jax.lax.stop_gradient((delta < 0).astype(delta.dtype)))
    penalty = jnp.where(huber_delta > 0, optax.huber_loss(delta, delta=jnp.maximum(huber_delta, 1e-12)),
                        jnp.abs(delta))
    return jnp.sum(jnp.mean(penalty * weight, axis=-1), axis=-1)
