"""A policy learned on gymnax acts the same on Gymnasium's own CartPole."""

import json

import gymnasium
import numpy as np
import pytest

import qlax
from qlax.runs.gymnasium_backend import gymnasium_policy
from qlax.tools import cli

pytestmark = pytest.mark.slow  # every test here trains or starts processes


@pytest.fixture(scope="module")
def partly_trained(tmp_path_factory):
    """A CartPole agent stopped early, so its greedy returns vary from episode to episode."""
    out = tmp_path_factory.mktemp("partly")
    config = qlax.presets.load("cartpole-rbf").replace(seeds=1, total_steps=16_000, eval_episodes=100)
    qlax.train(config, out=out, progress=False)
    return out


def test_gymnax_and_gymnasium_returns_agree(partly_trained):
    assert cli.main(["eval", str(partly_trained)]) == 0
    ours = json.loads((partly_trained / "eval.json").read_text())
    assert cli.main(["eval", str(partly_trained), "--backend", "gymnasium"]) == 0
    theirs = json.loads((partly_trained / "eval.json").read_text())
    assert (ours["backend"], theirs["backend"]) == ("gymnax", "gymnasium")
    for counted in (ours, theirs):  # CartPole pays 1 per step, within a limit of 500 on both sides
        assert counted["time_limit"] == 500 and counted["mean_length"] == pytest.approx(counted["mean_return"])
        assert (counted["at_time_limit"][0] > 0) == (counted["max_return"][0] >= 500)  # a return of 500: the limit
    mean_a, mean_b = ours["mean_return"][0], theirs["mean_return"][0]
    assert 20 < mean_a < 490  # a policy that is neither hopeless nor perfect, or the check means little
    # Same policy, same physics: only the random initial states differ, so the two means may
    # differ by sampling noise alone. Allow four standard errors of the difference.
    se = np.sqrt((ours["std_return"][0] ** 2 + theirs["std_return"][0] ** 2) / 100)
    assert abs(mean_a - mean_b) < 4 * se + 1e-6, (mean_a, mean_b, se)


def test_adapter_acts_in_gymnasium_and_refuses_other_spaces(partly_trained):
    env = gymnasium.make("CartPole-v1")
    act = gymnasium_policy(partly_trained, 0, env)
    obs, _ = env.reset(seed=0)
    assert act(obs) in (0, 1)
    with pytest.raises(qlax.ConfigError, match="3 discrete actions|has 2 discrete actions"):
        gymnasium_policy(partly_trained, 0, gymnasium.make("Acrobot-v1"))
