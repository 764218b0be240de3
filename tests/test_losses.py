"""TD targets, penalties and learner updates against hand-worked numbers."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from qlax import losses
from qlax.learner import make_learner
from qlax.qfunctions import QFunction
from qlax.types import Transition


def test_q_learning_target_by_hand():
    reward = jnp.array([1.0, 1.0, -2.0])
    terminated = jnp.array([False, True, False])
    next_q = jnp.array([[2.0, 5.0], [2.0, 5.0], [-1.0, -3.0]])
    target = losses.q_learning_target(reward, terminated, next_q, 0.9)
    np.testing.assert_allclose(target, [1 + 0.9 * 5, 1.0, -2 + 0.9 * -1], rtol=1e-6)


def test_select_action_values():
    q = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(losses.select_action_values(q, jnp.array([2, 0])), [3.0, 4.0])


def test_penalties_by_hand():
    err = jnp.array([0.5, -2.0, 3.0])
    np.testing.assert_allclose(losses.td_penalty(err, "squared"), [0.125, 2.0, 4.5])
    # Huber, delta 1: 0.5 e^2 inside, |e| - 0.5 outside.
    np.testing.assert_allclose(losses.td_penalty(err, "huber", 1.0), [0.125, 1.5, 2.5])
    np.testing.assert_allclose(losses.td_penalty(err, "huber", 2.0), [0.125, 2.0, 4.0])  # 2*(3-1)
    with pytest.raises(ValueError, match="loss = 'l1'"):
        losses.td_penalty(err, "l1")


# A linear Q whose "features" are the observation itself: Q(s) = s @ W, W: (2, 2).
LINEAR = QFunction(init=None, features=lambda params, obs: obs, head=lambda params, phi: phi @ params["W"])
W0 = np.array([[1.0, 0.5], [-0.5, 2.0]], np.float32)
BATCH = Transition(obs=jnp.array([[1.0, 0.0], [0.0, 1.0]]), action=jnp.array([0, 1]),
                   reward=jnp.array([1.0, 0.0]), next_obs=jnp.array([[0.0, 1.0], [1.0, 1.0]]),
                   terminated=jnp.array([False, True]))
GAMMA, LR = 0.9, 0.1


def numpy_grads(W, residual: bool):
    """d/dW of mean 0.5 (Q(s,a) - y)^2, with y held fixed or (residual) differentiated."""
    obs, act, rew = np.asarray(BATCH.obs), np.asarray(BATCH.action), np.asarray(BATCH.reward)
    nxt, term = np.asarray(BATCH.next_obs), np.asarray(BATCH.terminated)
    grad = np.zeros_like(W)
    for s, a, r, s2, t in zip(obs, act, rew, nxt, term):
        q2 = s2 @ W
        best = int(np.argmax(q2))
        err = s @ W[:, a] - (r + GAMMA * (1 - t) * q2[best])
        grad[:, a] += err * s / len(obs)
        if residual and not t:
            grad[:, best] -= GAMMA * err * s2 / len(obs)
    return grad


@pytest.mark.parametrize("gradient", ["semi", "residual"])
def test_update_is_the_hand_computed_gradient_step(gradient):
    learner = make_learner(LINEAR, optax.sgd(LR), gamma=GAMMA, loss="squared", gradient=gradient,
                           target="online")
    state, loss, _ = learner.update(learner.init({"W": jnp.asarray(W0)}), BATCH)
    expected = W0 - LR * numpy_grads(W0, residual=gradient == "residual")
    np.testing.assert_allclose(state.params["W"], expected, rtol=1e-5)
    q = np.asarray(BATCH.obs) @ W0
    y = np.array([1 + GAMMA * max(np.asarray(BATCH.next_obs[0]) @ W0), 0.0])
    np.testing.assert_allclose(loss, np.mean(0.5 * (q[[0, 1], [0, 1]] - y) ** 2), rtol=1e-5)


def test_semi_and_residual_gradients_differ():
    assert not np.allclose(numpy_grads(W0, False), numpy_grads(W0, True))


def test_periodic_target_refreshes_every_period():
    learner = make_learner(LINEAR, optax.sgd(LR), gamma=GAMMA, loss="squared", target="periodic", target_period=3)
    state = learner.init({"W": jnp.asarray(W0)})
    for update in range(1, 7):
        state, _, _ = learner.update(state, BATCH)
        if update % 3:
            assert not np.allclose(state.target_params["W"], state.params["W"])
        else:
            np.testing.assert_array_equal(state.target_params["W"], state.params["W"])
        if update < 3:
            np.testing.assert_array_equal(state.target_params["W"], W0)


def test_semi_gradient_bootstraps_from_the_target_parameters():
    learner = make_learner(LINEAR, optax.sgd(LR), gamma=GAMMA, loss="squared", target="periodic", target_period=100)
    target_w = W0 * 3
    state = learner.init({"W": jnp.asarray(W0)}).replace(target_params={"W": jnp.asarray(target_w)})
    state, _, _ = learner.update(state, BATCH)
    obs, nxt = np.asarray(BATCH.obs), np.asarray(BATCH.next_obs)
    err0 = obs[0] @ W0[:, 0] - (1 + GAMMA * max(nxt[0] @ target_w))
    err1 = obs[1] @ W0[:, 1] - 0.0
    expected = W0.copy()
    expected[:, 0] -= LR * err0 * obs[0] / 2
    expected[:, 1] -= LR * err1 * obs[1] / 2
    np.testing.assert_allclose(state.params["W"], expected, rtol=1e-5)


def test_polyak_and_online_targets():
    tau = 0.25
    polyak = make_learner(LINEAR, optax.sgd(LR), gamma=GAMMA, loss="squared", target="polyak", tau=tau)
    state, _, _ = polyak.update(polyak.init({"W": jnp.asarray(W0)}), BATCH)
    np.testing.assert_allclose(state.target_params["W"], tau * state.params["W"] + (1 - tau) * W0, rtol=1e-6)
    online = make_learner(LINEAR, optax.sgd(LR), gamma=GAMMA, loss="squared", target="online")
    state, _, _ = online.update(online.init({"W": jnp.asarray(W0)}), BATCH)
    np.testing.assert_array_equal(state.target_params["W"], state.params["W"])
