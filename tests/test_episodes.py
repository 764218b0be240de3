"""Episode returns and the rolling 100-episode record, against a plain Python reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qlax import episodes

WINDOW = episodes.WINDOW
update = jax.jit(episodes.update)  # one compile per num_envs
average_return = jax.jit(episodes.average_return)


class Reference:
    """Plain Python bookkeeping: envs scanned in order, each finished return appended."""

    def __init__(self, num_envs):
        self.running, self.length, self.finished = [0.0] * num_envs, [0] * num_envs, []

    def update(self, reward, done):
        for i in range(len(self.running)):
            self.running[i] += float(reward[i])
            self.length[i] += 1
            if done[i]:
                self.finished.append(self.running[i])
                self.running[i], self.length[i] = 0.0, 0

    def ring(self):
        """Episode k (counted from 0) sits in slot k % WINDOW; slots never written hold 0."""
        slots = [0.0] * WINDOW
        for k, ret in enumerate(self.finished):
            slots[k % WINDOW] = ret
        return slots

    def average(self):
        last = self.finished[-WINDOW:]
        return np.mean(last) if last else np.nan


def test_matches_reference_over_many_episodes():
    rng = np.random.default_rng(0)
    num_envs, steps = 5, 300
    rewards = rng.normal(size=(steps, num_envs)).astype(np.float32)
    dones = rng.random((steps, num_envs)) < 0.3  # often several envs end in one step
    dones[7] = True  # every env at once
    dones[8] = [True, False, True, False, True]
    stats, reference = episodes.init(num_envs), Reference(num_envs)
    assert np.isnan(float(average_return(stats)))
    several_at_once = 0
    for r, d in zip(rewards, dones):
        stats = update(stats, jnp.asarray(r), jnp.asarray(d))
        reference.update(r, d)
        several_at_once += d.sum() > 1
        assert int(stats.episodes) == len(reference.finished)
        np.testing.assert_allclose(stats.running_return, reference.running, rtol=1e-5, atol=1e-5)
        assert stats.running_length.tolist() == reference.length
        np.testing.assert_allclose(stats.recent_returns, reference.ring(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(average_return(stats), reference.average(), rtol=1e-5, atol=1e-5)
        assert bool(episodes.window_full(stats)) == (len(reference.finished) >= WINDOW)
    assert len(reference.finished) > 2 * WINDOW and several_at_once > 50  # the ring wrapped, twice


def test_more_episodes_ending_at_once_than_the_window_keeps_the_last():
    stats = episodes.init(150)
    stats = update(stats, jnp.arange(150, dtype=jnp.float32), jnp.ones(150, bool))
    assert int(stats.episodes) == 150
    # Episodes 50..149 in env order, episode k in slot k % 100; episodes 0..49 are gone.
    expected = [100.0 + i for i in range(50)] + [float(i) for i in range(50, 100)]
    assert np.asarray(stats.recent_returns).tolist() == expected
    assert float(average_return(stats)) == pytest.approx(np.mean(np.arange(50, 150)), rel=1e-6)
    assert np.asarray(stats.running_return).tolist() == [0.0] * 150
    # The next episodes continue at slot 150 % 100 = 50: env 149 overwrites episode 50.
    done = jnp.zeros(150, bool).at[149].set(True).at[3].set(True)
    stats = update(stats, jnp.full(150, 1000.0), done)
    assert int(stats.episodes) == 152
    ring = np.asarray(stats.recent_returns)
    assert ring[50] == 1000.0 and ring[51] == 1000.0 and ring[52] == 52.0 and ring[49] == 149.0
    assert float(average_return(stats)) == pytest.approx(np.mean(list(range(52, 150)) + [1000.0, 1000.0]), rel=1e-6)


def test_average_is_nan_before_the_first_episode_and_partial_before_the_window():
    stats = episodes.init(2)
    assert np.isnan(float(average_return(stats)))
    stats = update(stats, jnp.array([3.0, 1.0]), jnp.array([False, False]))
    assert np.isnan(float(average_return(stats)))  # returns accumulate, nothing finished yet
    stats = update(stats, jnp.array([0.0, 1.0]), jnp.array([True, False]))
    stats = update(stats, jnp.array([1.0, 0.0]), jnp.array([False, True]))
    assert float(average_return(stats)) == 2.5  # episodes of 3 and 2, not averaged over 100 slots
    assert stats.running_length.tolist() == [1, 0] and not bool(episodes.window_full(stats))
    assert stats.running_return.tolist() == [1.0, 0.0]
