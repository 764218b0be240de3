"""EnvPool inside the compiled loop: its next-step auto-reset mapped onto qlax's episodes,
one pool for a whole population, Atari's learning episodes apart from its games, training
from the CLI, and resume."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qlax
from optional import needs
from processes import interrupt_after
from qlax.envs import EnvError, env_spec, make_env
from qlax.envs.envpool_adapter import EnvState
from qlax.settings.config import TrainConfig
from qlax.tools import cli

pytestmark = needs("envpool")

CARTPOLE = "envpool:CartPole-v1"
RESET_RANGE = 0.05  # CartPole starts every state variable uniformly in [-0.05, 0.05]


def balance(obs):
    """A controller that keeps CartPole up for its whole 500 steps: push towards the fall."""
    return (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(jnp.int32)


def rollout(env_id, num_envs, steps, policy, members=None, reset=True):
    """(the first observations, every EnvStep field over `steps` steps), jitted; leading
    axes [members,] steps, envs. reset=False steps a fresh pool that was never reset, as a
    resumed run in a new process does."""
    env = make_env(env_id, num_envs)

    def run(key):
        if reset:
            obs, state = env.reset(key)
        else:
            obs, state = jnp.zeros((num_envs, env.spec.obs_dim)), EnvState(
                jnp.zeros(8, jnp.uint8), jnp.zeros(num_envs, bool), jnp.zeros(num_envs, jnp.int32))

        def body(carry, k):
            obs, state = carry
            step = env.step(k, state, obs, policy(obs, k))
            return (step.obs, step.env_state), step._replace(env_state=())

        return obs, jax.lax.scan(body, (obs, state), jax.random.split(key, steps))[1]

    keys = jax.random.key(0) if members is None else jax.random.split(jax.random.key(0), members)
    return jax.jit(run if members is None else jax.vmap(run))(keys)


def test_cartpole_spec_matches_gymnax():
    ours, gymnax = env_spec(CARTPOLE), env_spec("CartPole-v1")
    assert (ours.obs_shape, ours.obs_dim, ours.num_actions) == (gymnax.obs_shape, gymnax.obs_dim, gymnax.num_actions)
    assert (ours.max_episode_steps, ours.solve_threshold) == (500, 475.0)
    assert ours.host and not gymnax.host


def test_unknown_and_continuous_envs_are_refused_in_one_line():
    with pytest.raises(EnvError, match=r"^env = 'envpool:CartPole-v2': EnvPool has no environment 'CartPole-v2' "
                                       r"\(did you mean 'envpool:CartPole-v1'\?\)$"):
        env_spec("envpool:CartPole-v2")
    with pytest.raises(EnvError, match=r"^env = 'envpool:Pendulum-v1': its action space is .*; Q-learning needs "
                                       r"a discrete action space$"):
        env_spec("envpool:Pendulum-v1")


def test_cartpole_steps_follow_gymnasiums_dynamics():
    """Each transition's next_obs is what Gymnasium's CartPole computes from obs and action."""
    gym = pytest.importorskip("gymnasium")
    _, steps = rollout(CARTPOLE, 4, 60, lambda obs, k: jax.random.bernoulli(k, shape=(4,)).astype(jnp.int32))
    reference = gym.make("CartPole-v1").unwrapped
    reference.reset(seed=0)
    known = np.asarray(steps.next_obs_known)
    t = steps.transition
    assert known.sum() > 200
    fields = (t.obs, t.action, t.next_obs, t.terminated)
    for obs, action, next_obs, terminated in zip(*(np.asarray(x)[known] for x in fields)):
        reference.state, reference.steps_beyond_terminated = obs.astype(np.float64), None
        expected, _, ended, _, _ = reference.step(int(action))
        np.testing.assert_allclose(next_obs, expected, rtol=1e-5, atol=1e-6)
        assert bool(terminated) == ended


def test_episodes_end_with_their_final_observation_and_the_reset_step_is_no_transition():
    _, steps = rollout(CARTPOLE, 2, 520, lambda obs, k: balance(obs))
    done, known, first = (np.asarray(x) for x in (steps.done, steps.next_obs_known, steps.first))
    t = steps.transition
    # Balanced, each env is cut at its 500th step: truncated, not terminated; its next_obs the final state.
    assert done[499].all() and not done[:499].any() and not np.asarray(t.terminated)[:500].any()
    assert np.asarray(steps.game_over)[499].all() and np.asarray(steps.score)[:500].sum(0).tolist() == [500, 500]
    np.testing.assert_array_equal(np.asarray(t.next_obs)[499], np.asarray(steps.obs)[499])
    assert known[499].all() and not first[499].any()
    # The next step ignores the action and resets: no transition, a first observation, no score, no end.
    assert not known[500].any() and first[500].all() and not done[500].any()
    assert not np.asarray(steps.game_over)[500].any() and (np.asarray(steps.score)[500] == 0).all()
    assert (np.abs(np.asarray(steps.obs)[500]) <= RESET_RANGE).all()
    assert known[501:].all() and not first[501:].any()


def test_a_fall_terminates():
    _, steps = rollout(CARTPOLE, 3, 30, lambda obs, k: jnp.zeros(3, jnp.int32))  # always push left
    done, terminated = np.asarray(steps.done), np.asarray(steps.transition.terminated)
    assert done[:20].any(0).all()
    np.testing.assert_array_equal(done, terminated)  # every end a termination, none a time limit
    assert not np.asarray(steps.next_obs_known)[1:][done[:-1]].any()  # the step after an end resets


def test_a_fresh_pools_first_step_starts_episodes_without_a_transition():
    """A resumed run in a new process steps a pool that was never reset: the saved
    observations lead nowhere, so that step is not learned from."""
    _, steps = rollout(CARTPOLE, 2, 3, lambda obs, k: jnp.zeros(2, jnp.int32), reset=False)
    known, first = np.asarray(steps.next_obs_known), np.asarray(steps.first)
    assert not known[0].any() and first[0].all() and (np.abs(np.asarray(steps.obs)[0]) <= RESET_RANGE).all()
    assert known[1:].all() and not first[1:].any()  # from then on, ordinary transitions


def test_members_share_one_pool_each_with_its_own_envs():
    """Under vmap, M members of n envs step one pool of M * n envs: member m has envs m*n ..
    (m+1)*n - 1, seeded as a pool of M * n envs seeds them."""
    members_obs, members_steps = rollout(CARTPOLE, 3, 5, lambda obs, k: jnp.ones(3, jnp.int32), members=2)
    pool_obs, pool_steps = rollout(CARTPOLE, 6, 5, lambda obs, k: jnp.ones(6, jnp.int32))
    np.testing.assert_array_equal(np.asarray(members_obs).reshape(6, 4), np.asarray(pool_obs))
    np.testing.assert_array_equal(np.moveaxis(np.asarray(members_steps.obs), 0, 1).reshape(5, 6, 4),
                                  np.asarray(pool_steps.obs))
    assert not np.array_equal(members_obs[0], members_obs[1])


@pytest.mark.parametrize("game", ["Breakout-v5", "SpaceInvaders-v5"])
def test_atari_learns_from_lives_and_clipped_rewards_and_reports_whole_games(game):
    spec = env_spec(f"envpool:{game}")
    assert spec.obs_shape == (4, 84, 84) and spec.max_episode_steps == 27_000
    assert (spec.obs_low == 0).all() and (spec.obs_high == 255).all()
    _, steps = rollout(f"envpool:{game}", 2, 600, lambda obs, k: jax.random.randint(k, (2,), 0, spec.num_actions))
    reward, score = np.asarray(steps.transition.reward), np.asarray(steps.score)
    done, game_over, known = np.asarray(steps.done), np.asarray(steps.game_over), np.asarray(steps.next_obs_known)
    assert set(np.unique(reward)) <= {-1.0, 0.0, 1.0}
    np.testing.assert_array_equal(np.sign(score), reward)
    assert (done & ~game_over).any()  # a lost life ends the learning episode, not the game
    assert not (game_over & ~done).any()
    assert not known[1:][done[:-1]].any()  # and the step after it resets, as after a game's end
    if game == "SpaceInvaders-v5":
        assert score.max() > 1  # the game's own points, unclipped
    assert np.asarray(steps.obs).dtype == np.uint8


TINY = ["train", "cartpole-dqn", "--set", f"env={CARTPOLE}", "--seeds", "2", "--steps", "2000",
        "--no-early-stop", "--set", "chunk_steps=125", "--set", "eval_episodes=5",
        "--set", "learning_starts=200", "--set", "buffer_size=2000"]


@pytest.mark.slow
def test_a_short_training_run_from_the_cli(tmp_path):
    assert cli.main(TINY + ["--out", str(tmp_path / "run")]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["env"] == CARTPOLE and summary["env_steps"] == [2000, 2000]
    assert min(summary["train_episodes"]) > 10 and len(summary["eval_mean_return"]) == 2


@pytest.mark.slow
def test_resume_starts_fresh_episodes(tmp_path, monkeypatch):
    config = TrainConfig(env=CARTPOLE, num_envs=4, total_steps=1600, chunk_steps=50, seeds=2, buffer_size=1000,
                         learning_starts=100, eval_episodes=2, early_stop=False)
    interrupt_after(monkeypatch, 2)
    stopped = qlax.train(config, out=tmp_path, progress=False, checkpoint_every=1)
    monkeypatch.undo()
    assert stopped.interrupted
    # What resume does first: every env's next step starts a new episode (a reset step), and
    # the interrupted episodes are dropped from the returns.
    planned = qlax.runs.experiment._plan(stopped.members, None)
    state, _ = qlax.runs.rundir.load_state(tmp_path, planned.trainer, stopped.members, planned.placement)
    restarted = qlax.trainer.population(planned.trainer, planned.placement).restart(state)
    assert np.asarray(restarted.env_state.ended).all()
    assert not np.asarray(restarted.stats.running_return).any()
    np.testing.assert_array_equal(np.asarray(restarted.stats.recent_returns),
                                  np.asarray(stopped.state.stats.recent_returns))

    resumed = qlax.resume(tmp_path, progress=False)
    assert not resumed.interrupted and resumed.summary["env_steps"] == [1600, 1600]
