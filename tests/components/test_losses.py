"""TD targets, penalties and learner updates against hand-worked numbers."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from qlax.algorithms import dqn
from qlax.components import losses
from qlax.components.networks import QFunction
from qlax.core.types import Transition
from qlax.settings.config import TrainConfig


def test_q_learning_target_by_hand():
    reward = jnp.array([1.0, 1.0, -2.0, 0.5])
    terminated = jnp.array([False, True, False, True])
    next_q = jnp.array([[2.0, 5.0], [2.0, 5.0], [-1.0, -3.0], [100.0, -100.0]])
    target = losses.q_learning_target(reward, terminated, next_q, 0.9)
    # 1 + 0.9 * 5 = 5.5; terminated: r alone; max of negatives is -1: -2 - 0.9 = -2.9.
    np.testing.assert_allclose(target, [5.5, 1.0, -2.9, 0.5], rtol=1e-6)
    assert target.shape == (4,)


def test_q_learning_target_takes_a_traced_gamma_and_per_row_discounts():
    reward, terminated = jnp.array([1.0, 1.0]), jnp.array([False, False])
    next_q = jnp.array([[2.0, 5.0], [4.0, 3.0]])
    jitted = jax.jit(losses.q_learning_target)
    np.testing.assert_allclose(jitted(reward, terminated, next_q, jnp.float32(0.5)), [3.5, 3.0], rtol=1e-6)
    # n-step discounts gamma^k, one per row: 0.81 and 0.729.
    np.testing.assert_allclose(jitted(reward, terminated, next_q, jnp.array([0.81, 0.729])),
                               [1 + 0.81 * 5, 1 + 0.729 * 4], rtol=1e-6)


def test_select_action_values():
    q = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [-7.0, 8.0, 9.0]])
    np.testing.assert_array_equal(losses.select_action_values(q, jnp.array([2, 0, 1])), [3.0, 4.0, 8.0])
    np.testing.assert_array_equal(losses.select_action_values(q, jnp.array([0, 0, 0])), [1.0, 4.0, -7.0])


def test_penalties_by_hand():
    err = jnp.array([0.5, -2.0, 3.0, 0.0, -0.25])
    np.testing.assert_allclose(losses.td_penalty(err, "squared"), [0.125, 2.0, 4.5, 0.0, 0.03125])
    # Huber, delta 1: 0.5 e^2 inside, |e| - 0.5 outside.
    np.testing.assert_allclose(losses.td_penalty(err, "huber", 1.0), [0.125, 1.5, 2.5, 0.0, 0.03125])
    # Huber, delta 2: 0.5 e^2 for |e| <= 2, else 2 (|e| - 1): 3 -> 4.
    np.testing.assert_allclose(losses.td_penalty(err, "huber", 2.0), [0.125, 2.0, 4.0, 0.0, 0.03125])
    # Huber, delta 0.5: 0.5 e^2 for |e| <= 0.5, else 0.5 (|e| - 0.25).
    np.testing.assert_allclose(losses.td_penalty(err, "huber", 0.5), [0.125, 0.875, 1.375, 0.0, 0.03125])
    with pytest.raises(ValueError, match="loss = 'l1'"):
        losses.td_penalty(err, "l1")


# A linear Q whose "features" are the observation itself: Q(s) = s @ W, W: (2, 2).
LINEAR = QFunction(init=None, features=lambda params, obs: obs, head=lambda params, phi, noise=None: phi @ params["W"])
W0 = np.array([[1.0, 0.5], [-0.5, 2.0]], np.float32)
BATCH = Transition(obs=jnp.array([[1.0, 0.0], [0.0, 1.0], [0.5, -1.0]]), action=jnp.array([0, 1, 1]),
                   reward=jnp.array([1.0, 0.0, -0.5]), next_obs=jnp.array([[0.0, 1.0], [1.0, 1.0], [2.0, 0.5]]),
                   terminated=jnp.array([False, True, False]))
GAMMA, LR = 0.9, 0.1


def numpy_grads(W, residual: bool, target_W=None, huber_delta=None, weights=None, discount=None):
    """d/dW of mean penalty(Q(s,a) - y), y = r + discount (1 - t) max_a' Q'(s', a').

    Semi-gradient: y held fixed, Q' from target_W (default W). Residual: Q' = Q (the online W)
    and the gradient also flows through the max term into column argmax Q(s').
    """
    obs, act, rew = np.asarray(BATCH.obs, np.float64), np.asarray(BATCH.action), np.asarray(BATCH.reward)
    nxt, term = np.asarray(BATCH.next_obs, np.float64), np.asarray(BATCH.terminated)
    W = np.asarray(W, np.float64)
    boot_W = W if (residual or target_W is None) else np.asarray(target_W, np.float64)
    n = len(obs)
    weights = np.ones(n) if weights is None else np.asarray(weights)
    discount = np.full(n, GAMMA) if discount is None else np.asarray(discount)
    grad, errors = np.zeros_like(W), []
    for i, (s, a, r, s2, t) in enumerate(zip(obs, act, rew, nxt, term)):
        q2 = s2 @ boot_W
        best = int(np.argmax(q2))
        err = s @ W[:, a] - (r + discount[i] * (1 - t) * q2[best])
        errors.append(err)
        dpen = err if huber_delta is None else np.clip(err, -huber_delta, huber_delta)  # penalty'(err)
        dpen *= weights[i] / n
        grad[:, a] += dpen * s
        if residual and not t:
            grad[:, best] -= discount[i] * dpen * s2
    return grad, np.array(errors)


def sgd(hp):
    return optax.sgd(LR)


def hparams(**dynamic):
    """The learner's dynamic numbers: GAMMA and `dynamic` over the defaults."""
    return TrainConfig(gamma=GAMMA, **dynamic).hparams()


def make_learner(q_function, optimizer, **settings):
    """The DQN learner of scalar Q-values with `settings` (loss, gradient, target, double_q)."""
    config = TrainConfig(**settings)
    return dqn.learner_for(config, q_function, dqn.scalar_values(config), optimizer)


def one_update(huber_delta=1.0, weights=None, batch=BATCH, **kwargs):
    """(state after one update from W0, loss, td_error) for a learner built with kwargs."""
    learner = make_learner(LINEAR, sgd, **kwargs)
    hp = hparams(huber_delta=huber_delta)
    return learner.update(learner.init({"W": jnp.asarray(W0)}, hp), batch, hp, weights)


def test_semi_gradient_update_is_the_hand_computed_step():
    state, loss, td_error = one_update(loss="squared", gradient="semi", target="online")
    grad, errors = numpy_grads(W0, residual=False)
    np.testing.assert_allclose(state.params["W"], W0 - LR * grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(td_error, errors, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss, np.mean(0.5 * errors**2), rtol=1e-5)
    assert int(state.updates) == 1
    # Hand check of the first row: Q(s0, 0) = 1, y = 1 + 0.9 * max([-0.5, 2]) = 2.8.
    assert float(td_error[0]) == pytest.approx(1.0 - 2.8, rel=1e-6)
    assert float(td_error[1]) == pytest.approx(2.0 - 0.0, rel=1e-6)  # terminated: y = r = 0


def test_residual_gradient_update_flows_through_the_bootstrap_term():
    state, loss, td_error = one_update(loss="squared", gradient="residual", target="online")
    grad, errors = numpy_grads(W0, residual=True)
    np.testing.assert_allclose(state.params["W"], W0 - LR * grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss, np.mean(0.5 * errors**2), rtol=1e-5)
    semi_grad, _ = numpy_grads(W0, residual=False)
    assert not np.allclose(grad, semi_grad)  # the two variants really differ on this batch
    assert not np.allclose(state.params["W"], W0 - LR * semi_grad)


def test_huber_update_clips_the_error_in_the_gradient():
    state, loss, _ = one_update(loss="huber", huber_delta=0.5, gradient="semi", target="online")
    grad, errors = numpy_grads(W0, residual=False, huber_delta=0.5)
    assert np.abs(errors).max() > 0.5  # the clip matters here
    np.testing.assert_allclose(state.params["W"], W0 - LR * grad, rtol=1e-5, atol=1e-6)
    huber = np.where(np.abs(errors) <= 0.5, 0.5 * errors**2, 0.5 * (np.abs(errors) - 0.25))
    np.testing.assert_allclose(loss, np.mean(huber), rtol=1e-5)


def test_importance_weights_scale_each_sample():
    weights = np.array([0.5, 0.0, 2.0], np.float32)
    state, loss, _ = one_update(loss="squared", target="online", weights=jnp.asarray(weights))
    grad, errors = numpy_grads(W0, residual=False, weights=weights)
    np.testing.assert_allclose(state.params["W"], W0 - LR * grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss, np.mean(weights * 0.5 * errors**2), rtol=1e-5)


def test_a_transition_discount_replaces_gamma():
    discount = np.array([0.5, 0.9, 0.25], np.float32)
    batch = BATCH.replace(discount=jnp.asarray(discount))
    state, _, td_error = one_update(loss="squared", target="online", batch=batch)
    grad, errors = numpy_grads(W0, residual=False, discount=discount)
    np.testing.assert_allclose(td_error, errors, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state.params["W"], W0 - LR * grad, rtol=1e-5, atol=1e-6)
    assert float(td_error[0]) == pytest.approx(1.0 - (1 + 0.5 * 2.0), rel=1e-6)


@pytest.mark.parametrize("name", ["adam", "radam"])
def test_the_optimizer_setting_takes_its_first_step(name):
    """Adam's first step moves each weight by lr against its gradient's sign; RAdam's, whose
    variance estimate is not yet trusted, is a plain gradient step of lr (its warm-up)."""
    config = TrainConfig(loss="squared", target="online", optimizer=name, lr=LR)
    learner = dqn.learner_for(config, LINEAR, dqn.scalar_values(config))
    hp = config.replace(gamma=GAMMA).hparams()
    state, _, _ = learner.update(learner.init({"W": jnp.asarray(W0)}, hp), BATCH, hp)
    grad, _ = numpy_grads(W0, residual=False)
    step = np.sign(grad) if name == "adam" else grad
    np.testing.assert_allclose(state.params["W"], W0 - LR * step, rtol=1e-4, atol=1e-6)


def test_adam_eps_shrinks_the_first_step_of_small_gradients():
    """Adam's first step is lr g / (|g| + adam_eps): with adam_eps at the gradients' median
    size, a weight moves by less than lr, and the smaller its gradient, the less."""
    grad, _ = numpy_grads(W0, residual=False)
    eps = float(np.median(np.abs(grad[grad != 0])))
    config = TrainConfig(loss="squared", target="online", lr=LR, adam_eps=eps)
    learner = dqn.learner_for(config, LINEAR, dqn.scalar_values(config))
    hp = config.replace(gamma=GAMMA).hparams()
    state, _, _ = learner.update(learner.init({"W": jnp.asarray(W0)}, hp), BATCH, hp)
    np.testing.assert_allclose(state.params["W"], W0 - LR * grad / (np.abs(grad) + eps), rtol=1e-4, atol=1e-7)
    moved = np.abs(np.asarray(state.params["W"]) - W0)[grad != 0]
    assert np.all(moved < LR) and np.argmin(moved) == np.argmin(np.abs(grad[grad != 0]))


def test_semi_gradient_bootstraps_from_the_target_parameters():
    learner = make_learner(LINEAR, sgd, loss="squared", target="periodic")
    hp = hparams(target_period=100)
    target_w = W0 * 3
    state = learner.init({"W": jnp.asarray(W0)}, hp).replace(target_params={"W": jnp.asarray(target_w)})
    state, _, _ = learner.update(state, BATCH, hp)
    grad, _ = numpy_grads(W0, residual=False, target_W=target_w)
    np.testing.assert_allclose(state.params["W"], W0 - LR * grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(state.target_params["W"], target_w)  # not refreshed before 100
    assert not np.allclose(grad, numpy_grads(W0, residual=False)[0])


def test_periodic_target_refreshes_every_period():
    learner = make_learner(LINEAR, sgd, loss="squared", target="periodic")
    hp = hparams(target_period=3)
    update = jax.jit(learner.update)
    state = learner.init({"W": jnp.asarray(W0)}, hp)
    np.testing.assert_array_equal(state.target_params["W"], W0)
    refreshed = None
    for n in range(1, 8):
        state, _, _ = update(state, BATCH, hp)
        assert int(state.updates) == n
        if n % 3 == 0:  # right after updates 3 and 6: the online parameters of that moment
            np.testing.assert_array_equal(state.target_params["W"], state.params["W"])
            refreshed = np.asarray(state.params["W"])
        else:
            assert not np.allclose(state.target_params["W"], state.params["W"])
            np.testing.assert_array_equal(state.target_params["W"], W0 if n < 3 else refreshed)


def test_polyak_target_moves_by_tau():
    tau = 0.25
    learner = make_learner(LINEAR, sgd, loss="squared", target="polyak")
    hp = hparams(tau=tau)
    state, _, _ = learner.update(learner.init({"W": jnp.asarray(W0)}, hp), BATCH, hp)
    grad, _ = numpy_grads(W0, residual=False)
    online = W0 - LR * grad
    np.testing.assert_allclose(state.params["W"], online, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state.target_params["W"], tau * online + (1 - tau) * W0, rtol=1e-5, atol=1e-6)
    old_target = np.asarray(state.target_params["W"])
    state, _, _ = learner.update(state, BATCH, hp)
    np.testing.assert_allclose(state.target_params["W"], tau * np.asarray(state.params["W"]) + (1 - tau) * old_target,
                               rtol=1e-5, atol=1e-6)


def test_online_target_is_the_parameters():
    learner = make_learner(LINEAR, sgd, loss="squared", target="online")
    hp = hparams()
    state = learner.init({"W": jnp.asarray(W0)}, hp)
    for _ in range(2):
        state, _, _ = learner.update(state, BATCH, hp)
        np.testing.assert_array_equal(state.target_params["W"], state.params["W"])
    assert not np.allclose(state.params["W"], W0)


@pytest.mark.parametrize("option,value", [("target", "perodic"), ("gradient", "full"), ("loss", "l1")])
def test_misspelt_options_are_refused(option, value):
    with pytest.raises(ValueError, match=f"{option} = '{value}'"):
        TrainConfig(**{option: value}).validated()
    if option == "target":  # the learner itself refuses too: a misspelt target must never run another one
        with pytest.raises(ValueError, match="target = 'perodic'"):
            dqn.make_learner(lambda *a: None, sgd, "perodic")


def numpy_munchausen_target(reward, terminated, action, q_obs, next_q, gamma, tau, alpha, clip_low):
    """M-DQN's target row by row in float64, from the paper's definitions: pi = softmax(q / tau),
    bonus alpha * clip(tau log pi(a|s), clip_low, 0), soft value over the legal next actions."""
    targets = []
    for r, t, a, q, q2 in zip(reward, terminated, action, np.asarray(q_obs, np.float64), np.asarray(next_q, np.float64)):
        log_pi = q / tau - (np.max(q / tau) + np.log(np.sum(np.exp(q / tau - np.max(q / tau)))))
        bonus = alpha * min(max(tau * log_pi[a], clip_low), 0.0)
        legal = np.isfinite(q2)
        z = q2[legal] / tau
        next_log_pi = z - (np.max(z) + np.log(np.sum(np.exp(z - np.max(z)))))
        soft_value = np.sum(np.exp(next_log_pi) * (q2[legal] - tau * next_log_pi))
        targets.append(r + bonus + gamma * (1.0 - t) * soft_value)
    return np.array(targets)


def test_munchausen_target_against_numpy():
    rng = np.random.default_rng(3)
    q_obs = rng.normal(size=(6, 4)).astype(np.float32)
    next_q = rng.normal(size=(6, 4)).astype(np.float32)
    next_q[2, [0, 3]] = -np.inf  # actions illegal at next_obs
    reward = rng.normal(size=6).astype(np.float32)
    terminated = np.array([False, True, False, False, True, False])
    action = np.array([0, 3, 1, 2, 2, 0])
    for tau, alpha, clip_low in ((0.03, 0.9, -1.0), (1.0, 0.5, -0.2), (10.0, 1.0, -100.0)):
        got = losses.munchausen_target(jnp.asarray(reward), jnp.asarray(terminated), jnp.asarray(action),
                                       jnp.asarray(q_obs), jnp.asarray(next_q), GAMMA, tau, alpha, clip_low)
        want = numpy_munchausen_target(reward, terminated, action, q_obs, next_q, GAMMA, tau, alpha, clip_low)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # At a tiny temperature the soft value is the max and the bonus of a greedy action is 0.
    tiny = losses.munchausen_target(jnp.asarray(reward), jnp.asarray(terminated), jnp.argmax(q_obs, axis=1),
                                    jnp.asarray(q_obs), jnp.asarray(next_q), GAMMA, 1e-4, 0.9, -1.0)
    np.testing.assert_allclose(tiny, reward + GAMMA * (1 - terminated) * np.max(next_q, axis=1), rtol=1e-4, atol=1e-4)


def test_munchausen_update_takes_its_bonus_and_soft_value_from_the_target_parameters():
    from qlax.algorithms import mdqn

    config = TrainConfig(algorithm="mdqn", gamma=GAMMA, loss="squared", munchausen_tau=0.5, munchausen_alpha=0.9,
                         munchausen_clip=-1.0)
    learner = dqn.learner_for(config, LINEAR, mdqn.values(config), sgd)
    hp = hparams()
    target_W = np.array([[0.2, -1.0], [1.5, 0.3]], np.float32)
    state = learner.init({"W": jnp.asarray(W0)}, hp).replace(target_params={"W": jnp.asarray(target_W)})
    new_state, loss, td_error = learner.update(state, BATCH, hp, None)
    obs, nxt = np.asarray(BATCH.obs, np.float64), np.asarray(BATCH.next_obs, np.float64)
    y = numpy_munchausen_target(np.asarray(BATCH.reward), np.asarray(BATCH.terminated), np.asarray(BATCH.action),
                                obs @ target_W, nxt @ target_W, GAMMA, 0.5, 0.9, -1.0)
    err = np.array([s @ W0[:, a] for s, a in zip(obs, np.asarray(BATCH.action))]) - y
    grad = np.zeros_like(W0, np.float64)
    for s, a, e in zip(obs, np.asarray(BATCH.action), err):
        grad[:, a] += e * s / len(err)  # squared penalty, semi-gradient
    np.testing.assert_allclose(td_error, err, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_state.params["W"], W0 - LR * grad, rtol=1e-5, atol=1e-6)
