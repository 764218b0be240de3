"""Episode returns and lengths and the rolling 100-episode record, against a plain Python reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qlax.program import episodes

WINDOW = episodes.WINDOW
update = jax.jit(episodes.update)  # one compile per num_envs
average_return = jax.jit(episodes.average_return)
average_length = jax.jit(episodes.average_length)


def step(stats, reward, done, reset_step=None):
    reset_step = np.zeros(len(done), bool) if reset_step is None else reset_step
    return update(stats, jnp.asarray(reward, jnp.float32), jnp.asarray(done), jnp.asarray(reset_step))


class Reference:
    """Plain Python bookkeeping: envs scanned in order, each finished return and length appended."""

    def __init__(self, num_envs):
        self.running, self.length, self.finished, self.lengths = [0.0] * num_envs, [0] * num_envs, [], []

    def update(self, reward, done, reset_step):
        for i in range(len(self.running)):
            self.running[i] += float(reward[i])
            self.length[i] += 0 if reset_step[i] else 1
            if done[i]:
                self.finished.append(self.running[i])
                self.lengths.append(self.length[i])
                self.running[i], self.length[i] = 0.0, 0

    @staticmethod
    def ring(values):
        """Episode k (counted from 0) sits in slot k % WINDOW; slots never written hold 0."""
        slots = [0.0] * WINDOW
        for k, value in enumerate(values):
            slots[k % WINDOW] = value
        return slots

    @staticmethod
    def average(values):
        last = values[-WINDOW:]
        return np.mean(last) if last else np.nan


def test_matches_reference_over_many_episodes():
    rng = np.random.default_rng(0)
    num_envs, steps = 5, 300
    rewards = rng.normal(size=(steps, num_envs)).astype(np.float32)
    dones = rng.random((steps, num_envs)) < 0.3  # often several envs end in one step
    dones[7] = True  # every env at once
    dones[8] = [True, False, True, False, True]
    # Reset steps (an env starting its next episode, as EnvPool's do): no end, score 0, no length.
    resets = (rng.random((steps, num_envs)) < 0.2) & ~dones
    rewards[resets] = 0.0
    stats, reference = episodes.init(num_envs), Reference(num_envs)
    assert np.isnan(float(average_return(stats))) and np.isnan(float(average_length(stats)))
    several_at_once = 0
    for r, d, reset in zip(rewards, dones, resets):
        stats = step(stats, r, d, reset)
        reference.update(r, d, reset)
        several_at_once += d.sum() > 1
        assert int(stats.episodes) == len(reference.finished)
        np.testing.assert_allclose(stats.running_return, reference.running, rtol=1e-5, atol=1e-5)
        assert stats.running_length.tolist() == reference.length
        np.testing.assert_allclose(stats.recent_returns, reference.ring(reference.finished), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(average_return(stats), reference.average(reference.finished), rtol=1e-5,
                                   atol=1e-5)
        assert np.asarray(stats.recent_lengths).tolist() == reference.ring(reference.lengths)
        np.testing.assert_allclose(average_length(stats), reference.average(reference.lengths), rtol=1e-6)
        assert bool(episodes.window_full(stats)) == (len(reference.finished) >= WINDOW)
    assert len(reference.finished) > 2 * WINDOW and several_at_once > 50  # the ring wrapped, twice
    assert len(set(reference.lengths)) > 5 and resets.sum() > 100


def test_more_episodes_ending_at_once_than_the_window_keeps_the_last():
    stats = episodes.init(150)
    stats = step(stats, np.arange(150), np.ones(150, bool))
    assert int(stats.episodes) == 150
    # Episodes 50..149 in env order, episode k in slot k % 100; episodes 0..49 are gone.
    expected = [100.0 + i for i in range(50)] + [float(i) for i in range(50, 100)]
    assert np.asarray(stats.recent_returns).tolist() == expected
    assert float(average_return(stats)) == pytest.approx(np.mean(np.arange(50, 150)), rel=1e-6)
    assert np.asarray(stats.running_return).tolist() == [0.0] * 150
    # The next episodes continue at slot 150 % 100 = 50: env 149 overwrites episode 50.
    done = np.zeros(150, bool)
    done[[3, 149]] = True
    stats = step(stats, np.full(150, 1000.0), done)
    assert int(stats.episodes) == 152
    ring = np.asarray(stats.recent_returns)
    assert ring[50] == 1000.0 and ring[51] == 1000.0 and ring[52] == 52.0 and ring[49] == 149.0
    assert float(average_return(stats)) == pytest.approx(np.mean(list(range(52, 150)) + [1000.0, 1000.0]), rel=1e-6)
    assert np.asarray(stats.recent_lengths).tolist() == [1.0] * 100  # every episode here lasted one step
    assert float(average_length(stats)) == 1.0


def test_average_is_nan_before_the_first_episode_and_partial_before_the_window():
    stats = episodes.init(2)
    assert np.isnan(float(average_return(stats)))
    stats = step(stats, [3.0, 1.0], [False, False])
    assert np.isnan(float(average_return(stats)))  # returns accumulate, nothing finished yet
    stats = step(stats, [0.0, 1.0], [True, False])
    stats = step(stats, [1.0, 0.0], [False, True])
    assert float(average_return(stats)) == 2.5  # episodes of 3 and 2, not averaged over 100 slots
    assert float(average_length(stats)) == 2.5  # lasting 2 and 3 steps
    assert stats.running_length.tolist() == [1, 0] and not bool(episodes.window_full(stats))
    assert stats.running_return.tolist() == [1.0, 0.0]


def test_lengths_by_hand_with_a_reset_step_between_episodes():
    # Env 0: an episode of 3 steps, a reset step, then one of 2; env 1: one of 4 steps.
    rewards = [[1, 1], [1, 1], [1, 1], [0, 1], [1, 0], [1, 0]]
    dones = [[0, 0], [0, 0], [1, 0], [0, 1], [0, 0], [1, 0]]
    resets = [[0, 0], [0, 0], [0, 0], [1, 0], [0, 0], [0, 0]]
    stats = episodes.init(2)
    for r, d, reset in zip(rewards, dones, resets):
        stats = step(stats, r, np.array(d, bool), np.array(reset, bool))
    assert np.asarray(stats.recent_lengths)[:4].tolist() == [3.0, 4.0, 2.0, 0.0]
    assert np.asarray(stats.recent_returns)[:3].tolist() == [3.0, 4.0, 2.0]
    assert float(average_length(stats)) == pytest.approx(np.mean([3, 4, 2]))


@pytest.mark.parametrize("saved", [30, 250])
def test_lengths_unknown_to_an_older_record_are_nan_until_a_window_of_new_episodes_replaced_them(saved):
    ring = episodes.unknown_lengths(np.int32(saved))
    assert ring.dtype == np.float32 and np.isnan(ring[:min(saved, WINDOW)]).all() and not ring[saved:].any()
    assert episodes.unknown_lengths(np.array([3, 0])).shape == (2, WINDOW)  # a member axis
    stats = episodes.init(10).replace(episodes=jnp.int32(saved), recent_lengths=jnp.asarray(ring))
    for done_steps in range(1, 11):  # ten episodes of one step each
        stats = step(stats, np.ones(10), np.ones(10, bool))
        assert np.isnan(float(average_length(stats))) == (done_steps < 10)
    assert float(average_length(stats)) == 1.0
