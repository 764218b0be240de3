"""navix and Jumanji environments: qlax's transitions against the suites' own steps, specs,
refusals, and short training runs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qlax
from optional import needs
from qlax.envs import EnvError, env_spec, jax_adapter, jumanji_adapter, make_env
from qlax.settings.config import TrainConfig
from solving import freeze_the_rest_once

pytestmark = needs("navix", "jumanji")


def qlax_steps(name: str, num_envs: int, actions: np.ndarray, key=jax.random.PRNGKey(0)):
    """(obs, EnvStep) of each vector step of qlax's env `name` acting `actions` (steps, num_envs):
    every step in one compiled scan, step t with key PRNGKey(t + 1)."""
    env = make_env(name, num_envs)

    def run(key, actions):
        def step(carry, t_action):
            obs, state = carry
            t, action = t_action
            out = env.step(jax.random.PRNGKey(t + 1), state, obs, action)
            return (out.obs, out.env_state), (obs, out._replace(env_state=None))

        return jax.lax.scan(step, env.reset(key), (jnp.arange(len(actions)), actions))[1]

    seen = jax.device_get(jax.jit(run)(key, jnp.asarray(actions)))
    for t in range(len(actions)):
        yield jax.tree.map(lambda x: x[t], seen)


# --- navix -------------------------------------------------------------------------------------

def navix_by_hand(env, key, actions):
    """(observation, reward, terminated, truncated) after each action, stepping navix's own
    auto-resetting `step` (after an end it resets on the next call, taking no action)."""
    step = jax.jit(env.step)
    timestep = jax.jit(env.reset)(key)
    for action in actions:
        if timestep.is_done():
            timestep = step(timestep, action)
        timestep = step(timestep, action)
        yield timestep.observation, timestep.reward, timestep.is_termination(), timestep.is_truncation()


def test_navix_spec_shapes_and_symbol_bounds():
    from navix.entities import EntityIds
    from navix.rendering.registry import PALETTE

    spec = env_spec("navix:Navix-DoorKey-5x5-v0")
    assert (spec.obs_shape, spec.obs_dim, spec.num_actions, spec.max_episode_steps) == ((5, 5, 3), 75, 7, 100)
    # Per cell: the largest entity tag, colour and direction navix defines.
    tags = [int(v) for k, v in vars(EntityIds).items() if not k.startswith("_")]
    np.testing.assert_array_equal(spec.obs_high.reshape(5, 5, 3), np.broadcast_to(
        [max(tags), max(int(c) for c in PALETTE.as_array()), 3], (5, 5, 3)))
    np.testing.assert_array_equal(spec.obs_low, 0.0)
    actions = np.asarray(jax.random.randint(jax.random.PRNGKey(3), (300, 8), 0, 7))
    seen = np.stack([np.asarray(out.transition.next_obs)
                     for _, out in qlax_steps("navix:Navix-DoorKey-5x5-v0", 8, actions)])
    assert np.all(seen >= spec.obs_low) and np.all(seen <= spec.obs_high)


def test_navix_episodes_end_as_navix_ends_them_with_the_final_observation():
    # Empty-5x5 starts in the same place every episode: reach the goal in 5 steps (a
    # termination), turn for navix's 100 steps (a truncation), reach it again.
    route = [2, 2, 1, 2, 2]
    actions = np.asarray(route + [0] * 100 + route)[:, None]
    import navix

    env = navix.make("Navix-Empty-5x5-v0", observation_fn=navix.observations.symbolic)
    reference = list(navix_by_hand(env, jax.random.PRNGKey(0), actions[:, 0]))
    steps = list(qlax_steps("navix:Navix-Empty-5x5-v0", 1, actions))
    assert len(reference) == len(steps) == 110
    for (obs, reward, terminated, truncated), (_, out) in zip(reference, steps):
        np.testing.assert_array_equal(out.transition.next_obs[0], np.reshape(obs, -1))
        assert float(out.transition.reward[0]) == float(reward)
        assert bool(out.transition.terminated[0]) == bool(terminated)
        assert bool(out.done[0]) == bool(terminated | truncated) and bool(out.next_obs_known[0])
    ends = [t for t, (_, out) in enumerate(steps) if out.done[0]]
    assert ends == [4, 104, 109] and [bool(steps[t][1].transition.terminated[0]) for t in ends] == [True, False, True]
    first = np.reshape(jax.jit(env.reset)(jax.random.PRNGKey(0)).observation, -1)
    for t in ends:  # after an end, the episode starts again
        assert bool(steps[t][1].first[0])
        np.testing.assert_array_equal(steps[t][1].obs[0], first)


def test_navix_random_dynamics_follow_the_keys_navix_is_given():
    # Dynamic obstacles move at random (navix draws from the key in its state); each copy's
    # first episode, reset with the key qlax hands it, matches navix stepped by hand.
    num_envs, key = 3, jax.random.PRNGKey(7)
    actions = np.asarray(jax.random.randint(jax.random.PRNGKey(8), (60, num_envs), 0, 3))
    import navix

    env = navix.make("Navix-Dynamic-Obstacles-5x5-v0", observation_fn=navix.observations.symbolic)
    steps = list(qlax_steps("navix:Navix-Dynamic-Obstacles-5x5-v0", num_envs, actions, key))
    ended = 0
    for i, reset_key in enumerate(jax.random.split(key, num_envs)):
        for t, (obs, reward, terminated, truncated) in enumerate(navix_by_hand(env, reset_key, actions[:, i])):
            out = steps[t][1]
            np.testing.assert_array_equal(out.transition.next_obs[i], np.reshape(obs, -1))
            assert (float(out.transition.reward[i]), bool(out.transition.terminated[i]), bool(out.done[i])) == \
                (float(reward), bool(terminated), bool(terminated | truncated))
            if terminated | truncated:
                ended += 1
                break
    assert ended == num_envs


# --- Jumanji ---------------------------------------------------------------------------------

def test_jumanji_spec_and_the_fields_of_the_flat_observation():
    spec = env_spec("jumanji:Maze-v0")
    assert (spec.obs_shape, spec.obs_dim, spec.num_actions, spec.max_episode_steps) == ((109,), 109, 4, 100)
    fields = jumanji_adapter.fields("Maze-v0")
    assert list(fields) == ["agent_position.row", "agent_position.col", "target_position.row",
                            "target_position.col", "walls", "action_mask", "step_count"]
    np.testing.assert_array_equal(spec.obs_low[:4], 0)  # the four coordinates, 0..9
    np.testing.assert_array_equal(spec.obs_high[:4], 9)
    np.testing.assert_array_equal(spec.obs_high[fields["walls"]], 1.0)
    assert np.isinf(spec.obs_high[fields["step_count"]]).all()  # no bounds: standardized by statistics


def test_jumanji_episodes_end_as_jumanji_ends_them():
    # Random mazes, random moves: each copy's first episode, reset with the key qlax hands
    # it, against Jumanji stepped by hand; every field of the observation in its slice.
    num_envs, key = 8, jax.random.PRNGKey(2)
    actions = np.asarray(jax.random.randint(jax.random.PRNGKey(102), (100, num_envs), 0, 4))
    import jumanji

    env = jumanji.make("Maze-v0")
    fields = jumanji_adapter.fields("Maze-v0")
    steps = list(qlax_steps("jumanji:Maze-v0", num_envs, actions, key))
    reset, step = jax.jit(env.reset), jax.jit(env.step)
    outcomes = set()
    for i, reset_key in enumerate(jax.random.split(key, num_envs)):
        state, timestep = reset(reset_key)
        np.testing.assert_array_equal(steps[0][0][i, fields["walls"]], np.reshape(timestep.observation.walls, -1))
        for t in range(len(actions)):
            state, timestep = step(state, actions[t, i])
            timestep = jax.device_get(timestep)
            out = steps[t][1]
            for name, where in fields.items():
                value = timestep.observation
                for part in name.split("."):
                    value = getattr(value, part)
                np.testing.assert_array_equal(out.transition.next_obs[i, where], np.reshape(value, -1), err_msg=name)
            last = bool(timestep.last())
            assert float(out.transition.reward[i]) == float(timestep.reward)
            assert bool(out.transition.terminated[i]) == (last and float(timestep.discount) == 0.0)
            assert bool(out.done[i]) == last
            if last:
                outcomes.add("goal" if float(timestep.reward) > 0 else "time limit")
                break
    assert outcomes == {"goal", "time limit"}  # Maze ends both ways with discount 0


def test_a_jumanji_cut_with_discount_is_a_truncation_with_its_final_observation():
    from jumanji_probes import CounterEnv

    env = jumanji_adapter.JumanjiEnv(CounterEnv(), "jumanji:Counter")
    assert env.fields == {"mask": slice(0, 2), "count": slice(2, 3)}
    np.testing.assert_array_equal(env.observation_space.high, [1, 1, 3])
    vec = jax_adapter.vectorize(env, jax_adapter.spec_of(env, env.name), 2)
    obs, state = jax.jit(vec.reset)(jax.random.PRNGKey(0))
    step = jax.jit(vec.step)
    seen = []
    for action in [[0, 0], [0, 1], [0, 0]]:
        out = step(jax.random.PRNGKey(1), state, obs, jnp.asarray(action))
        seen.append((out.transition.next_obs[:, 2].tolist(), out.transition.terminated.tolist(), out.done.tolist()))
        obs, state = out.obs, out.env_state
    assert seen == [([1, 1], [False, False], [False, False]),
                    ([2, 2], [False, True], [False, True]),  # action 1: terminated, count 2 kept
                    ([3, 1], [False, False], [True, False])]  # cut at 3: done, not terminated, count 3 kept


# --- refusals ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name,message", [
    ("navix:Navix-Empty-5x5-v9", "env = 'navix:Navix-Empty-5x5-v9': navix has no such environment "
                                 "(did you mean 'navix:Navix-Empty-5x5-v0'?)"),
    ("jumanji:Maze-v1", "env = 'jumanji:Maze-v1': Jumanji has no such environment (did you mean 'jumanji:Maze-v0'?)"),
    ("jumanji:Cleaner-v0", "env 'jumanji:Cleaner-v0': its actions are several discrete choices at once "
                           "(MultiDiscreteArray [4, 4, 4]); Q-learning here needs one discrete action (a "
                           "DiscreteArray action spec)"),
    ("jumanji:MultiCVRP-v0", "env 'jumanji:MultiCVRP-v0': its actions are several discrete choices at once "
                             "(integers of shape (2,))"),
    ("jumanji:SearchAndRescue-v0", "env 'jumanji:SearchAndRescue-v0': its actions are continuous (of shape (2, 2))"),
], ids=["navix id", "jumanji id", "multi-discrete", "integer array", "continuous"])
def test_an_environment_qlax_cannot_train_on_is_refused_in_one_line(name, message):
    with pytest.raises(EnvError) as refused:
        env_spec(name)
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


# --- training ----------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("env", ["navix:Navix-Empty-5x5-v0", "jumanji:Snake-v1"])
def test_a_suite_environment_trains_a_few_compiled_steps_and_checkpoints(env, tmp_path):
    config = TrainConfig(env=env, q_function="mlp", hidden_sizes=[16], num_envs=4, total_steps=400, chunk_steps=50,
                         seeds=2, buffer_size=200, learning_starts=40, eval_episodes=2, early_stop=False)
    result = qlax.train(config, progress=False, out=tmp_path / "run")  # checkpoints hold the suite's state
    assert result.summary["env_steps"] == [400, 400] and list((tmp_path / "run" / "checkpoints").iterdir())
    assert int(result.state.agent.learner.updates[0]) > 0 and np.all(np.isfinite(result.summary["eval_mean_return"]))


@pytest.mark.slow
@pytest.mark.learning
def test_the_navix_preset_solves_random_empty_rooms():
    result = qlax.train(qlax.presets.load("navix-empty-dqn"), seeds=4, progress=False,
                        callbacks=[freeze_the_rest_once(3)])
    assert sum(result.solved) >= 3, result.eval_mean_return


@pytest.mark.slow
@pytest.mark.learning
def test_the_knapsack_preset_packs_far_more_than_random_play():
    # The preset's program on two of its chunks (131,072 env steps, a 23rd of its budget):
    # uniform random legal play packs 13.6 (docs/results.md), the optimum 20.05; these two
    # seeds packed 16.59 and 16.55 (a quarter of a million steps: 17.48 and 17.59).
    config = qlax.presets.load("knapsack-pqn").replace(total_steps=131_072, early_stop=False, eval_episodes=50)
    result = qlax.train(config, seeds=2, progress=False)
    assert np.all(np.asarray(result.eval_mean_return) > 15.5), result.eval_mean_return
