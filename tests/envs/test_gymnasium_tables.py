"""Gymnasium's table environments stepped compiled step as Gymnasium's own do: the same next
state, reward and end for every (state, action), the same outcome frequencies where moves
slip, the same time limit; and only environments that step by their table alone qualify."""

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qlax.envs import env_spec, make_env
from qlax.envs.gymnasium_adapter.source import Source
from qlax.envs.gymnasium_adapter.tables import table_of

NUM_ENVS = 3


def _played(name: str, vector_steps: int, seed: int = 0):
    """(states acted in, actions, transitions, dones) of `vector_steps` random vector steps of
    the compiled env `name`."""
    env = make_env(name, NUM_ENVS)
    assert not env.spec.host and env.restart is None  # compiled: a checkpoint holds its episodes

    def step(carry, key):
        obs, state = carry
        k_action, k_step = jax.random.split(key)
        action = jax.random.randint(k_action, (NUM_ENVS,), 0, env.spec.num_actions)
        out = env.step(k_step, state, obs, action)
        return (out.obs, out.env_state), (obs, action, out.transition, out.done)

    @jax.jit
    def play(key):
        return jax.lax.scan(step, env.reset(key), jax.random.split(key, vector_steps))[1]

    obs, actions, transitions, dones = jax.tree.map(np.asarray, play(jax.random.PRNGKey(seed)))
    index = lambda one_hot: one_hot.reshape(-1, one_hot.shape[-1]).argmax(-1)  # noqa: E731
    return (index(obs), actions.reshape(-1), index(transitions.next_obs), transitions.reward.reshape(-1),
            transitions.terminated.reshape(-1), dones.reshape(-1))


@pytest.mark.parametrize("env_id", ["Taxi-v4", "CliffWalking-v1"])
def test_a_deterministic_table_steps_as_gymnasiums_own_env(env_id):
    """Every transition of a random play equals Gymnasium's own step from the same state."""
    states, actions, next_states, rewards, terminated, _ = _played(f"gymnasium:{env_id}", 400)
    theirs = gymnasium.make(env_id).unwrapped
    theirs.reset(seed=0)
    for s, a, s_next, reward, ends in zip(states, actions, next_states, rewards, terminated):
        theirs.s = int(s)
        expected = theirs.step(int(a))
        assert (s_next, reward, ends) == (expected[0], expected[1], expected[2]), (s, a)
    assert len(set(states.tolist())) > 20  # the play went places


def test_slippery_moves_land_as_often_as_in_gymnasium():
    """FrozenLake's slippery moves: from each (state, action) played often, the compiled
    outcomes' frequencies match Gymnasium's own steps from that state (within 5 standard errors)."""
    states, actions, next_states, rewards, terminated, _ = _played("gymnasium:FrozenLake-v1", 3000)
    theirs = gymnasium.make("FrozenLake-v1").unwrapped
    theirs.reset(seed=1)
    pairs = {}
    for s, a, s_next in zip(states, actions, next_states):
        pairs.setdefault((int(s), int(a)), []).append(int(s_next))
    often = [pair for pair, seen in pairs.items() if len(seen) >= 200]
    assert len(often) >= 4
    for s, a in often:
        ours = np.asarray(pairs[s, a])
        gymnasiums = []
        for _ in range(2000):
            theirs.s = s
            gymnasiums.append(theirs.step(a)[0])
        gymnasiums = np.asarray(gymnasiums)
        outcomes = set(ours.tolist()) | set(gymnasiums.tolist())
        assert len(outcomes) > 1  # a slip, or the check means nothing
        for outcome in outcomes:
            p, q = np.mean(ours == outcome), np.mean(gymnasiums == outcome)
            se = np.sqrt(q * (1 - q) / len(ours) + q * (1 - q) / len(gymnasiums)) + 1e-3
            assert abs(p - q) < 5 * se, ((s, a), outcome, p, q)
    # The goal pays 1 and ends the episode; holes end it unpaid.
    assert set(rewards[terminated].tolist()) <= {0.0, 1.0} and rewards[~terminated].max() == 0


def test_the_time_limit_cuts_as_gymnasiums_and_starts_where_it_resets():
    """FrozenLake's 100-step limit is a cut, not an end, and episodes start where Gymnasium's
    reset puts them (state 0)."""
    assert env_spec("gymnasium:FrozenLake-v1").max_episode_steps == 100
    states, _, _, _, terminated, dones = _played("gymnasium:FrozenLake-v1", 1500)
    per_env = [dones.reshape(-1, NUM_ENVS)[:, i] for i in range(NUM_ENVS)]
    ends = terminated.reshape(-1, NUM_ENVS)
    starts = states.reshape(-1, NUM_ENVS)
    for i, done in enumerate(per_env):
        where = np.flatnonzero(done)
        lengths = np.diff(np.concatenate([[-1], where]))
        assert lengths.max() <= 100
        cut = lengths == 100
        assert not np.any(ends[where[cut], i])  # the limit truncates
        assert np.all(starts[where[where + 1 < len(done)] + 1, i] == 0)  # a new episode starts at state 0


@pytest.mark.parametrize("made, why", [
    (lambda: gymnasium.make("Taxi-v4", fickle_passenger=True), "a change of destination beyond the table"),
    (lambda: gymnasium.wrappers.TransformReward(gymnasium.make("FrozenLake-v1"), lambda r: 2 * r),
     "a wrapper of the user's"),
    (lambda: gymnasium.make("CartPole-v1"), "no table"),
])
def test_what_steps_by_more_than_its_table_stays_on_the_host(made, why):
    from qlax.envs.jax_adapter import register

    env = made()
    name = register(env)
    assert table_of(Source.of_object(name, env)) is None, why
    assert env_spec(name).host


def test_a_named_host_mode_steps_on_the_host_and_an_object_of_a_table_env_compiles():
    from qlax.envs.jax_adapter import register

    assert env_spec("gymnasium:Taxi-v4@sync").host and env_spec("gymnasium:Taxi-v4@async").host
    assert not env_spec("gymnasium:Taxi-v4").host
    obj = gymnasium.make("FrozenLake-v1", map_name="8x8", is_slippery=False)
    name = register(obj)
    spec = env_spec(name)
    assert not spec.host and spec.obs_dim == 64 and spec.max_episode_steps == 100  # its id's limit
    env = make_env(name, 2)
    obs, state = env.reset(jax.random.PRNGKey(0))
    out = env.step(jax.random.PRNGKey(1), state, obs, jnp.array([2, 1]))  # right, down from the start
    np.testing.assert_array_equal(np.asarray(out.obs).argmax(-1), [1, 8])
