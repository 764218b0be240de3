"""Every target and loss against rlax's version of the same piece, on random batches (max abs
difference <= 1e-5). rlax works on one sample at a time; it is vmapped over the batch here."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qlax.algorithms import Rollout
from qlax.algorithms.pqn import lambda_targets
from qlax.components import losses, nstep
from qlax.core.types import Transition
from qlax.settings.config import TrainConfig

BATCH, ACTIONS, ATOMS = 64, 4, 11
TOL = 1e-5


@pytest.fixture(scope="module")
def rlax():
    """rlax, imported by the worker that runs these tests only (1.5 s, with distrax and TFP)."""
    return pytest.importorskip("rlax")


def batched(per_sample, in_axes=0):
    """rlax's one-sample `per_sample` over the batch, as one compiled program: run op by op,
    each of its operations compiled a program of its own."""
    return jax.jit(jax.vmap(per_sample, in_axes=in_axes))


def draw(seed: int):
    """A random batch: rewards, terminal flags, discounts, actions and Q-like arrays."""
    rng = np.random.default_rng(seed)
    return {
        "reward": jnp.asarray(rng.normal(size=BATCH), jnp.float32),
        "terminated": jnp.asarray(rng.random(BATCH) < 0.2),
        "gamma": jnp.asarray(rng.uniform(0.5, 1.0, BATCH), jnp.float32),
        "action": jnp.asarray(rng.integers(0, ACTIONS, BATCH), jnp.int32),
        "q": jnp.asarray(rng.normal(size=(BATCH, ACTIONS)), jnp.float32),
        "next_q": jnp.asarray(rng.normal(size=(BATCH, ACTIONS)), jnp.float32),
        "selector": jnp.asarray(rng.normal(size=(BATCH, ACTIONS)), jnp.float32),
        "logits": jnp.asarray(rng.normal(size=(BATCH, ACTIONS, ATOMS)), jnp.float32),
        "next_logits": jnp.asarray(rng.normal(size=(BATCH, ACTIONS, ATOMS)), jnp.float32),
        "quantiles": jnp.asarray(rng.normal(size=(BATCH, ACTIONS, ATOMS)), jnp.float32),
        "next_quantiles": jnp.asarray(rng.normal(size=(BATCH, ACTIONS, ATOMS)), jnp.float32),
    }


def discount(d):
    return d["gamma"] * (1.0 - d["terminated"].astype(jnp.float32))


def assert_close(ours, theirs):
    assert np.max(np.abs(np.asarray(ours) - np.asarray(theirs))) <= TOL


@pytest.mark.parametrize("seed", [0, 1])
def test_one_step_target_matches_rlax_q_learning(seed, rlax):
    d = draw(seed)
    y = losses.q_learning_target(d["reward"], d["terminated"], d["next_q"], d["gamma"])
    td = batched(rlax.q_learning)(d["q"], d["action"], d["reward"], discount(d), d["next_q"])
    assert_close(y - losses.select_action_values(d["q"], d["action"]), td)


@pytest.mark.parametrize("seed", [0, 1])
def test_double_q_target_matches_rlax(seed, rlax):
    d = draw(seed)
    y = losses.double_q_target(d["reward"], d["terminated"], d["selector"], d["next_q"], d["gamma"])
    td = batched(rlax.double_q_learning)(d["q"], d["action"], d["reward"], discount(d), d["next_q"], d["selector"])
    assert_close(y - losses.select_action_values(d["q"], d["action"]), td)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_nstep_transitions_match_rlax_n_step_returns(n, rlax):
    """One env's trajectory with terminations: the emitted n-step transition, bootstrapped
    with the value of its next observation, is rlax's n-step bootstrapped return."""
    rng = np.random.default_rng(n)
    horizon, gamma = 40, 0.9
    rewards = rng.normal(size=horizon).astype(np.float32)
    terminated = rng.random(horizon) < 0.15
    values = rng.normal(size=horizon + 1).astype(np.float32)  # v(s_t); next_obs of step t is s_{t+1}
    steps = [Transition(obs=jnp.full((1, 1), t, jnp.float32), action=jnp.zeros(1, jnp.int32),
                        reward=jnp.asarray(rewards[t:t + 1]), next_obs=jnp.full((1, 1), t + 1, jnp.float32),
                        terminated=jnp.asarray(terminated[t:t + 1])) for t in range(horizon)]
    accumulate = nstep.accumulator(n)
    window, step = accumulate.init(steps[0]), jax.jit(accumulate.step)
    ours = []
    for t in range(horizon):
        window, out, storable = step(window, steps[t], jnp.asarray(terminated[t:t + 1]), jnp.ones(1, bool), gamma)
        if bool(storable[0]):
            boot = values[int(out.next_obs[0, 0])] * (1.0 - float(out.terminated[0]))
            ours.append(float(out.reward[0]) + float(out.discount[0]) * boot)
    theirs = rlax.n_step_bootstrapped_returns(jnp.asarray(rewards), jnp.asarray(gamma * (1.0 - terminated)),
                                              jnp.asarray(values[1:]), n)
    assert len(ours) == horizon - n + 1
    assert_close(ours, theirs[:len(ours)])


@pytest.mark.parametrize("double", [False, True])
def test_categorical_loss_matches_rlax(double, rlax):
    d = draw(2 + double)
    atoms = losses.categorical_atoms(jnp.float32(-3.0), jnp.float32(4.0), ATOMS)
    selector = d["selector"] if double else losses.categorical_q_values(d["next_logits"], atoms)
    ours = jax.jit(losses.categorical_loss)(d["logits"], d["action"], d["reward"], discount(d), d["next_logits"],
                                            selector, atoms)
    if double:
        theirs = batched(rlax.categorical_double_q_learning, in_axes=(None, 0, 0, 0, 0, None, 0, 0))(
            atoms, d["logits"], d["action"], d["reward"], discount(d), atoms, d["next_logits"], d["selector"])
    else:
        theirs = batched(rlax.categorical_q_learning, in_axes=(None, 0, 0, 0, 0, None, 0))(
            atoms, d["logits"], d["action"], d["reward"], discount(d), atoms, d["next_logits"])
    assert_close(ours, theirs)
    np.testing.assert_allclose(losses.categorical_q_values(d["logits"], atoms),
                               jnp.sum(jax.nn.softmax(d["logits"]) * atoms, -1), atol=TOL)


@pytest.mark.parametrize("huber", [0.0, 1.0])
def test_quantile_loss_matches_rlax(huber, rlax):
    d = draw(4)
    ours = jax.jit(losses.quantile_loss)(d["quantiles"], d["action"], d["reward"], discount(d), d["next_quantiles"],
                                         d["selector"], jnp.float32(huber))
    tau = losses.quantile_midpoints(ATOMS)
    per_sample = lambda q, a, r, g, sel, nq: rlax.quantile_q_learning(  # noqa: E731
        q.T, tau, a, r, g, sel, nq.T, huber_param=huber)
    # rlax picks the next action from the mean of a quantile selector: give it one whose mean is ours.
    selector = jnp.repeat(d["selector"][:, None, :], ATOMS, axis=1)
    theirs = batched(per_sample)(d["quantiles"], d["action"], d["reward"], discount(d), selector,
                                  d["next_quantiles"])
    assert_close(ours, theirs)


def test_lambda_returns_match_rlax(rlax):
    rng = np.random.default_rng(5)
    steps = 30
    r, v = rng.normal(size=steps).astype(np.float32), rng.normal(size=steps).astype(np.float32)
    g = (0.99 * (rng.random(steps) > 0.1)).astype(np.float32)
    lam = rng.uniform(0, 1, steps).astype(np.float32)
    assert_close(losses.lambda_returns(*map(jnp.asarray, (r, g, v, lam))),
                 rlax.lambda_returns(*map(jnp.asarray, (r, g, v, lam))))


def test_pqn_targets_match_rlax_q_lambda(rlax):
    """A rollout of 2 envs without episode ends: PQN's returns less Q(s, a) are rlax.q_lambda's TD errors."""
    rng = np.random.default_rng(6)
    steps, envs, lam, gamma = 16, 2, 0.65, 0.95
    q = jnp.asarray(rng.normal(size=(steps + 1, envs, ACTIONS)), jnp.float32)  # Q at s_0 .. s_T
    action = jnp.asarray(rng.integers(0, ACTIONS, (steps, envs)), jnp.int32)
    reward = jnp.asarray(rng.normal(size=(steps, envs)), jnp.float32)
    no = jnp.zeros((steps, envs), bool)
    transition = Transition(obs=jnp.zeros((steps, envs, 1)), action=action, reward=reward,
                            next_obs=jnp.zeros((steps, envs, 1)), terminated=no)
    hp = TrainConfig(gamma=gamma, td_lambda=lam).hparams()
    returns, weights = lambda_targets(Rollout(transition, no, ~no, jnp.zeros((steps, envs, 1))), q[1:], hp)
    ours = returns - jnp.take_along_axis(q[:-1], action[..., None], -1)[..., 0]
    for env in range(envs):
        theirs = rlax.q_lambda(q[:-1, env], action[:, env], reward[:, env], jnp.full(steps, gamma), q[1:, env],
                               jnp.full(steps, lam))
        assert_close(ours[:, env], theirs)
    assert np.all(np.asarray(weights) == 1.0)


def test_pqn_targets_bootstrap_through_time_limits_and_stop_at_terminals():
    """By hand: step 1 is cut by a time limit (bootstrap from its final observation's value,
    lambda cut), step 3 terminates (reward only), step 5's next observation is unknown
    (left out, and step 4 bootstraps from s_5 instead of continuing into it)."""
    steps, gamma, lam = 6, 0.5, 0.5
    v = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], np.float32)  # max_a Q at each transition's next_obs
    q_next = jnp.asarray(np.stack([v, v - 10], -1)[:, None, :])  # (T, 1 env, 2 actions)
    reward = jnp.ones((steps, 1))
    done = jnp.asarray([[False], [True], [False], [True], [False], [True]])
    terminated = jnp.asarray([[False], [False], [False], [True], [False], [False]])
    known = jnp.asarray([[True], [True], [True], [True], [True], [False]])
    transition = Transition(obs=jnp.zeros((steps, 1, 1)), action=jnp.zeros((steps, 1), jnp.int32), reward=reward,
                            next_obs=jnp.zeros((steps, 1, 1)), terminated=terminated)
    hp = TrainConfig(gamma=gamma, td_lambda=lam).hparams()
    returns, weights = lambda_targets(Rollout(transition, done, known, jnp.zeros((steps, 1, 1))), q_next, hp)
    g1 = 1 + gamma * 2.0  # time limit: bootstrap from the final observation alone
    g0 = 1 + gamma * ((1 - lam) * 1.0 + lam * g1)
    g3 = 1.0  # terminated
    g2 = 1 + gamma * ((1 - lam) * 3.0 + lam * g3)
    g4 = 1 + gamma * 5.0  # the next step's own next observation is unknown: no continuing into it
    np.testing.assert_allclose(np.asarray(returns)[:5, 0], [g0, g1, g2, g3, g4], rtol=1e-6)
    assert np.asarray(weights)[:, 0].tolist() == [1, 1, 1, 1, 1, 0]


@pytest.mark.parametrize("huber", [0.0, 1.0])
def test_iqn_loss_matches_rlax_with_the_same_sampled_fractions(huber, rlax):
    """IQN's loss as the algorithm computes it: a network pass samples each sample's own
    fractions from its key; rlax gets those fractions and the same quantiles."""
    from qlax import envs
    from qlax.algorithms import dqn, iqn
    from qlax.components import networks

    config = TrainConfig(algorithm="iqn", q_function="mlp", hidden_sizes=[16], num_quantiles=8,
                         quantile_embedding=16, huber_delta=huber)
    values = iqn.values(config)
    q_function = networks.build(config, envs.env_spec("CartPole-v1"), 1, values.q_values, values.fractions)
    rng = np.random.default_rng(7)
    obs, next_obs = (jnp.asarray(rng.normal(size=(BATCH, 4)), jnp.float32) for _ in range(2))
    init = jax.jit(q_function.init)
    params, target_params = (init(jax.random.PRNGKey(k), config.hparams()) for k in (1, 2))
    k_online, k_next = jax.random.split(jax.random.PRNGKey(3))
    forward = jax.jit(lambda params, obs, key: q_function.head(params, q_function.features(params, obs), key))
    outputs = forward(params, obs, k_online)
    next_outputs = forward(target_params, next_obs, k_next)
    (quantiles, taus), (next_quantiles, next_taus) = outputs, next_outputs
    assert quantiles.shape == (BATCH, 2, 8) and taus.shape == (BATCH, 8) and not np.allclose(taus, next_taus)
    assert float(jnp.min(taus)) >= 0.0 and float(jnp.max(taus)) <= 1.0 and len(np.unique(np.asarray(taus))) > BATCH
    d = draw(8)
    action = d["action"] % 2
    selector = values.q_values(next_outputs)
    batch = Transition(obs=obs, action=action, reward=d["reward"], next_obs=next_obs, terminated=d["terminated"],
                       discount=d["gamma"])
    ours, _ = jax.jit(values.loss)(dqn.Forward(outputs, next_outputs, selector), batch, config.hparams())
    per_sample = lambda q, tau, a, r, g, sel, nq: rlax.quantile_q_learning(  # noqa: E731
        q.T, tau, a, r, g, sel, nq.T, huber_param=huber)
    theirs = batched(per_sample)(quantiles, taus, action, d["reward"], discount(d),
                                  jnp.repeat(selector[:, None, :], 8, axis=1), next_quantiles)
    assert_close(ours, theirs)
    # Without a key (acting, evaluation) the fractions are the midpoints: the same Q-values every time.
    acting = q_function.head(params, q_function.features(params, obs))
    np.testing.assert_allclose(acting[1][0], losses.quantile_midpoints(8))
    np.testing.assert_array_equal(q_function.apply(params, obs), q_function.apply(params, obs))


def test_quantile_loss_takes_fractions_and_a_target_of_another_count(rlax):
    d = draw(9)
    rng = np.random.default_rng(9)
    taus = jnp.asarray(rng.random((BATCH, ATOMS)), jnp.float32)
    next_quantiles = jnp.asarray(rng.normal(size=(BATCH, ACTIONS, 5)), jnp.float32)
    ours = jax.jit(losses.quantile_loss)(d["quantiles"], d["action"], d["reward"], discount(d), next_quantiles,
                                         d["selector"], jnp.float32(1.0), taus)
    per_sample = lambda q, tau, a, r, g, sel, nq: rlax.quantile_q_learning(  # noqa: E731
        q.T, tau, a, r, g, sel, nq.T, huber_param=1.0)
    theirs = batched(per_sample)(d["quantiles"], taus, d["action"], d["reward"], discount(d),
                                  jnp.repeat(d["selector"][:, None, :], 5, axis=1), next_quantiles)
    assert_close(ours, theirs)
