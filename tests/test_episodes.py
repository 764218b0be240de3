"""Episode returns and the rolling 100-episode record, against a plain Python reference."""

import jax
import jax.numpy as jnp
import numpy as np

from qlax import episodes

update = jax.jit(episodes.update)


def reference(rewards, dones, num_envs):
    running, finished = [0.0] * num_envs, []
    for reward, done in zip(rewards, dones):
        for i in range(num_envs):
            running[i] += reward[i]
            if done[i]:
                finished.append(running[i])
                running[i] = 0.0
    return running, finished


def test_matches_reference_over_many_episodes():
    rng = np.random.default_rng(0)
    num_envs, steps = 5, 400
    rewards = rng.normal(size=(steps, num_envs)).astype(np.float32)
    dones = rng.random((steps, num_envs)) < 0.3  # often several envs end in one step
    stats = episodes.init(num_envs)
    for r, d in zip(rewards, dones):
        stats = update(stats, jnp.asarray(r), jnp.asarray(d))
    running, finished = reference(rewards, dones, num_envs)
    assert len(finished) > episodes.WINDOW
    assert int(stats.episodes) == len(finished)
    np.testing.assert_allclose(stats.running_return, running, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(sorted(np.asarray(stats.recent_returns)), sorted(finished[-100:]), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(episodes.average_return(stats), np.mean(finished[-100:]), rtol=1e-4, atol=1e-4)
    assert bool(episodes.window_full(stats))


def test_more_episodes_ending_at_once_than_the_window_keeps_the_last():
    stats = episodes.init(150)
    stats = update(stats, jnp.arange(150, dtype=jnp.float32), jnp.ones(150, bool))
    assert int(stats.episodes) == 150
    assert sorted(np.asarray(stats.recent_returns).tolist()) == list(range(50, 150))


def test_average_is_nan_before_the_first_episode_and_partial_before_the_window():
    stats = episodes.init(2)
    assert np.isnan(float(episodes.average_return(stats)))
    stats = update(stats, jnp.array([3.0, 1.0]), jnp.array([True, False]))
    stats = update(stats, jnp.array([1.0, 1.0]), jnp.array([False, True]))
    assert float(episodes.average_return(stats)) == 2.5  # episodes of 3 and 2
    assert stats.running_length.tolist() == [1, 0] and not bool(episodes.window_full(stats))
