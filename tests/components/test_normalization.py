"""Observation scaling: fixed bounds, running moments, and how the training loop keeps them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qlax
from qlax.components import normalization
from qlax.components.replay import uniform
from qlax.runs.experiment import start
from qlax.settings.config import TrainConfig


def test_running_moments_match_numpy_over_uneven_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 3)).astype(np.float32) for n in (1, 7, 16, 40)]
    stats = normalization.init_stats(3)
    for batch in batches:
        stats = normalization.update_stats(stats, jnp.asarray(batch))
    seen = np.concatenate(batches)
    assert float(stats.count) == len(seen)
    np.testing.assert_allclose(stats.mean, seen.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.m2 / stats.count, seen.var(0), rtol=1e-4)


def test_bounds_map_to_minus_one_one_and_statistics_to_two_deviations():
    low, high = np.array([-2.0, 0.0, -np.inf]), np.array([2.0, 10.0, np.inf])
    assert normalization.bounded(low, high).tolist() == [True, True, False]
    scale = normalization.fixed_scale(low, high)
    np.testing.assert_allclose(normalization.apply(scale, jnp.array([[-2.0, 0.0, 7.0], [2.0, 10.0, 7.0]])),
                               [[-1.0, -1.0, 7.0], [1.0, 1.0, 7.0]])  # unbounded: the identity until stats
    stats = normalization.update_stats(normalization.init_stats(3), jnp.array([[0.0, 0.0, 1.0], [0.0, 0.0, 5.0]]))
    scale = normalization.with_stats(scale, stats, ~normalization.bounded(low, high), low, high)
    np.testing.assert_allclose(normalization.apply(scale, jnp.array([[2.0, 5.0, 3.0], [2.0, 5.0, 7.0]])),
                               [[1.0, 0.0, 0.0], [1.0, 0.0, 1.0]])  # mean 3, std 2: 3 + 2 * 2 -> 1


def test_a_dimension_that_barely_varied_stays_within_the_limit():
    """A grid cell that the warmup never set (std 0) once reached the network at 500,000."""
    low, high = np.zeros(3, np.float32), np.array([1.0, 1.0, np.inf], np.float32)
    scaler = normalization.tracker(low, high, "statistics")
    warmup = jnp.float32([[0.0, 0.0, 1.0], [0.0, 1.0, 3.0]] * 50)  # cell 0 never set, cell 1 half the time
    params = scaler.rescale({"obs_scale": normalization.fixed_scale(low, high)}, scaler.init(warmup))
    seen = np.asarray(normalization.apply(params["obs_scale"], jnp.float32([[1.0, 1.0, 1e3]])))[0]
    np.testing.assert_allclose(seen[0], normalization.LIMIT)  # at its far bound: the limit, not 1 / 2e-6
    np.testing.assert_allclose(seen[1:], [0.5, (1e3 - 2.0) / 2.0])  # a spread one (mean + 1 std), an unbounded one
    constant = scaler.rescale(params, scaler.init(warmup[:1] * 5.0))["obs_scale"]  # std 0 everywhere
    seen = np.asarray(normalization.apply(constant, jnp.float32([[1.0, 0.0, 10.0]])))[0]
    np.testing.assert_allclose(seen, [normalization.LIMIT, 0.0, normalization.LIMIT])  # no bounds: by its mean, 5
    loose = normalization.tracker(np.float32([-1e3]), np.float32([1e3]), "statistics")  # values far inside
    small = jnp.float32([[-0.01], [0.01]])  # std 0.01: by its spread (floor 0.01), not by the bounds' reach (10)
    scale = loose.rescale({"obs_scale": normalization.fixed_scale(np.float32([-1e3]), np.float32([1e3]))},
                          loose.init(small))["obs_scale"]
    np.testing.assert_allclose(normalization.apply(scale, small)[:, 0], [-0.5, 0.5], rtol=1e-5)  # 1 std


UNBOUNDED = TrainConfig(num_envs=4, total_steps=800, chunk_steps=50, seeds=2, num_centers=16, buffer_size=1000,
                        learning_starts=100, early_stop=False)


@pytest.mark.parametrize("mode", ["always", "warmup"])
@pytest.mark.slow
def test_the_loop_standardizes_unbounded_dimensions_by_what_it_saw(mode):
    run = start(UNBOUNDED.replace(obs_stats=mode))
    state, _ = run.population.run_chunk(run.state)
    state, _ = run.population.run_chunk(state)
    member = jax.tree.map(lambda leaf: np.asarray(leaf)[1], state)
    seen = np.asarray(uniform.contents(member.agent.replay).obs)[:int(member.agent.replay.size)]  # obs before each step
    seen = np.concatenate([seen, member.obs])  # and the one the agent sees now
    if mode == "warmup":  # frozen once 100 transitions were stored: 25 vector steps of 4 envs
        seen = seen[:4 * 25]
    stats = member.agent.obs_stats
    assert float(stats.count) == len(seen)
    np.testing.assert_allclose(stats.mean, seen.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stats.m2 / stats.count, seen.var(0), rtol=1e-3, atol=1e-7)
    for params in (member.agent.learner.params, member.agent.learner.target_params):
        scale = params["obs_scale"]
        np.testing.assert_allclose(scale["shift"][[1, 3]], seen.mean(0)[[1, 3]], rtol=1e-4, atol=1e-6)  # velocities
        np.testing.assert_allclose(scale["scale"][[1, 3]], 2 * seen.std(0)[[1, 3]], rtol=1e-3)
        np.testing.assert_allclose(scale["scale"][[0, 2]], [4.8, 0.41887903], rtol=1e-6)  # the space's bounds


def test_explicit_bounds_need_no_statistics():
    seed = qlax.presets.load("seed")
    run = start(seed.replace(seeds=1, total_steps=1600, learning_starts=100, buffer_size=1000))
    assert run.state.agent.obs_stats == ()
    params = run.state.agent.learner.params
    np.testing.assert_array_equal(params["obs_scale"]["scale"][0], np.float32([2.4, 3.0, 0.2, 3.0]))
    np.testing.assert_array_equal(params["obs_scale"]["shift"][0], 0.0)  # the notebook's obs / constants


def test_no_scaling_passes_observations_through_and_refuses_bounds():
    config = qlax.presets.load("cartpole-dqn").replace(seeds=1, total_steps=1600, learning_starts=100,
                                                        buffer_size=1000, obs_scaling="none", obs_low=None,
                                                        obs_high=None)
    run = start(config)
    assert run.state.agent.obs_stats == ()  # CartPole's velocities are unbounded, yet nothing is estimated
    scale = run.state.agent.learner.params["obs_scale"]
    obs = jnp.float32([[0.3, -7.0, 0.1, 12.0]])
    np.testing.assert_array_equal(normalization.apply(jax.tree.map(lambda x: x[0], scale), obs), obs)
    with pytest.raises(qlax.ConfigError, match="obs_scaling = 'none'"):
        start(config.replace(obs_low=[-1.0] * 4, obs_high=[1.0] * 4))


# A Discrete observation's one-hot reaches the Q-function as 0/1 under every scaling, from
# every source that emits one (mapped onto -1/+1, 500 states had a cosine similarity of 0.992).
DISCRETE_SOURCES = {
    "gymnax": "FrozenLake-misc",
    "JAX protocol": "user_env:corridor",
    "Gymnasium, stepped from its table": "gymnasium:FrozenLake-v1",
    "Gymnasium, stepped on the host": "gymnasium:FrozenLake-v1@sync",
    "Gymnasium, Discrete beside a Box": "gymnasium:gym_probes:dict_obs",
}


@pytest.mark.parametrize("scaling", ["bounds", "statistics", "none"])
@pytest.mark.parametrize("source", DISCRETE_SOURCES)
def test_a_discrete_observation_reaches_the_q_function_one_hot_as_zero_and_one(source, scaling):
    from qlax.components import networks
    from qlax.envs import env_spec, make_env
    from qlax.envs.base import one_hot_entries

    if source.startswith("Gymnasium"):
        pytest.importorskip("gymnasium")
    name = DISCRETE_SOURCES[source]
    spec = env_spec(name)
    one_hot = one_hot_entries(spec)
    assert one_hot.any()
    obs, _ = jax.jit(make_env(name, 6).reset)(jax.random.PRNGKey(0))
    obs = np.asarray(obs)
    assert set(np.unique(obs[:, one_hot])) <= {0.0, 1.0}
    config = TrainConfig(env=name, q_function="mlp", obs_scaling=scaling, hidden_sizes=[8])
    params = jax.jit(networks.build(config, spec).init)(jax.random.PRNGKey(1), config.hparams())
    scaler = networks.observation_scaler(config, spec)
    for stats in (scaler.init(jnp.asarray(obs)), scaler.init(jnp.asarray(obs[:1]))):  # any statistics at all
        seen = np.asarray(normalization.apply(scaler.rescale(params, stats)["obs_scale"], jnp.asarray(obs)))
        np.testing.assert_array_equal(seen[:, one_hot], obs[:, one_hot])
