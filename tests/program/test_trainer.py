"""What a chunk reports of each member beside its returns: episode lengths, the gradient
steps taken and the learning rate, against counts worked out from the settings."""

import jax
import numpy as np
import optax
import pytest

import probe_envs
from qlax.runs.experiment import start
from qlax.settings.config import TrainConfig

# Reward 1 each step, every episode cut after 5 steps; 2 chunks of 50 vector steps of 4 envs.
DQN = TrainConfig(env=probe_envs.TIME_LIMIT_PROBE, num_envs=4, total_steps=400, chunk_steps=50, seeds=2,
                  num_centers=8, buffer_size=400, learning_starts=100, train_freq=8, gradient_steps=2,
                  early_stop=False, eval_episodes=2)


def dqn_updates(config: TrainConfig, vector_steps: int) -> int:
    """Gradient steps after `vector_steps`: each vector step stores num_envs transitions (the
    probe's cuts keep their final observations), and one whose env steps cross a multiple of
    train_freq takes gradient_steps updates per crossing once learning_starts are stored."""
    n = config.num_envs
    return sum(((n * t + n) // config.train_freq - n * t // config.train_freq) * config.gradient_steps
               for t in range(vector_steps) if min(n * (t + 1), config.buffer_size) >= config.learning_starts)


def schedule_count(opt_state) -> int:
    """The count optax's learning-rate schedule stands at (of the first member)."""
    is_schedule = lambda s: isinstance(s, optax.ScaleByScheduleState)  # noqa: E731
    [schedule] = [s for s in jax.tree.leaves(opt_state, is_leaf=is_schedule) if is_schedule(s)]
    return int(schedule.count[0])


def test_a_dqn_chunk_reports_its_episode_length_updates_and_learning_rate():
    run = start(DQN)
    before = run.population.observe(run.state)
    assert np.isnan(before.episode_length).all() and before.updates.tolist() == [0, 0]
    state, first = run.population.run_chunk(run.state)
    _, second = run.population.run_chunk(state)
    assert dqn_updates(DQN, 50) == 26 and dqn_updates(DQN, 100) == 76  # the arithmetic, worked by hand
    assert first.updates.tolist() == [26, 26] and second.updates.tolist() == [76, 76]
    assert first.episode_length.tolist() == [5.0, 5.0]  # the probe's time limit
    np.testing.assert_array_equal(second.learning_rate, np.float32(DQN.lr))


def test_a_dqn_learning_rate_decays_to_0_at_the_budgets_last_update():
    config = DQN.replace(lr_decay=True)
    run = start(config)
    state, first = run.population.run_chunk(run.state)
    state, second = run.population.run_chunk(state)
    total = dqn_updates(config, config.vector_steps)  # 76, the budget's every update
    assert schedule_count(state.agent.learner.opt_state) == total == int(second.updates[0])
    lr = np.float32(config.lr)
    assert first.learning_rate.tolist() == pytest.approx([lr * (1 - 26 / total)] * 2, rel=1e-6)
    assert second.learning_rate.tolist() == [0.0, 0.0]


# 10 rollouts of 8 vector steps, 2 epochs of 2 minibatches each: 40 updates, 16 per chunk of 4 rollouts.
PQN = TrainConfig(algorithm="pqn", env=probe_envs.TIME_LIMIT_PROBE, num_envs=4, total_steps=320, chunk_steps=32,
                  seeds=1, num_centers=8, num_steps=8, num_epochs=2, num_minibatches=2, lr_decay=True,
                  early_stop=False, eval_episodes=2)


def test_pqn_reports_its_decayed_learning_rate_as_the_schedule_gives_it():
    run = start(PQN)
    state, reported = run.state, [run.population.observe(run.state)]
    for _ in range(3):  # the third chunk is short: the budget ends after 2 of its rollouts
        state, metrics = run.population.run_chunk(state)
        reported.append(metrics)
    updates = [int(m.updates[0]) for m in reported]
    assert updates == [0, 16, 32, 40] and schedule_count(state.agent.learner.opt_state) == 40
    lr = np.float32(PQN.lr)
    assert [float(m.learning_rate[0]) for m in reported] == pytest.approx([lr, 0.6 * lr, 0.2 * lr, 0.0], rel=1e-6)
    assert reported[-1].episode_length.tolist() == [5.0]
