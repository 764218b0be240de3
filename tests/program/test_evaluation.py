"""Greedy evaluation counts each episode's steps, so one the environment never ended (it ran
to the time limit) is told apart from one it ended."""

import jax
import numpy as np
import pytest

import probe_envs
from qlax.program import evaluation
from qlax.runs import reports
from qlax.runs.experiment import start
from qlax.settings.config import TrainConfig

CONFIG = TrainConfig(env=probe_envs.TIME_LIMIT_PROBE, num_envs=2, total_steps=100, seeds=2, num_centers=8,
                     learning_starts=50, buffer_size=100, eval_episodes=2)


@pytest.mark.parametrize("env_id,length,at_limit", [
    (probe_envs.TIME_LIMIT_PROBE, 5, 5),  # reward 1 each step, never terminates, cut after 5 steps
    (probe_envs.TERMINATING_PROBE, 3, 0),  # reward 1 each step, terminates at the third
])
def test_greedy_episodes_report_their_lengths_and_which_ran_to_the_time_limit(env_id, length, at_limit,
                                                                               monkeypatch):
    monkeypatch.setattr(evaluation, "EVAL_BATCH", 2)  # 5 episodes in 3 rounds of 2, the last one's second cut off
    run = start(CONFIG.replace(env=env_id))
    params = run.state.agent.learner.params  # untrained: any action gives the same episode
    keys = jax.random.split(jax.random.PRNGKey(0), CONFIG.seeds)
    returns, lengths = evaluation.evaluate_population(env_id, run.trainer.q_function, params, keys, 5)
    np.testing.assert_array_equal(returns, np.full((2, 5), float(length)))  # 1 per step: the return counts them too
    np.testing.assert_array_equal(lengths, np.full((2, 5), length))
    limit = evaluation.episode_limit(run.trainer.env.spec)
    assert limit == (5 if env_id == probe_envs.TIME_LIMIT_PROBE else 2**30)
    assert reports.length_numbers(np.asarray(lengths), limit) == {"mean_length": [float(length)] * 2,
                                                                  "at_time_limit": [at_limit] * 2}
