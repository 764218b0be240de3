"""Gymnasium environments stepped on the host (`gymnasium:ID`): every autoreset mode gives
the transitions qlax learns from, seeds make runs repeat, resume restarts only the episodes.

The probes (`gym_probes.Counter`) carry their step count and an episode tag in the
observation, so every stored transition can be checked from its own numbers.
"""

import json
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium")

import gym_probes  # noqa: E402
import qlax  # noqa: E402
from qlax.components import nstep  # noqa: E402
from qlax.components.replay import uniform  # noqa: E402
from qlax.core.types import Transition  # noqa: E402
from qlax.envs import EnvError, env_spec, make_env, recipe, register  # noqa: E402
from qlax.runs.experiment import start  # noqa: E402
from qlax.runs.run_evaluation import evaluate_run  # noqa: E402
from qlax.settings.config import TrainConfig  # noqa: E402

PROBES = {  # name -> whether the env resets on the step after an end (NEXT_STEP)
    "gymnasium:gym_probes:counter": False,  # qlax builds the vector env (SAME_STEP)
    "gymnasium:gym_probes:counter_same_step": False,
    "gymnasium:gym_probes:counter_disabled": False,  # qlax resets ended copies itself
    "gymnasium:gym_probes:counter_next_step": True,
}
MEMBERS, NUM_ENVS, STEPS = 2, 3, 24


def keys(seed: int, n: int) -> jax.Array:
    return jax.random.key_data(jax.random.split(jax.random.key(seed), n))


def rollout(name: str, actions: np.ndarray, seed: int = 0):
    """(acting observations, EnvSteps) of `actions` (steps, members, num_envs), vmapped over members."""
    env = make_env(name, NUM_ENVS)
    obs, state = jax.jit(jax.vmap(env.reset))(keys(seed, MEMBERS))
    step = jax.jit(jax.vmap(env.step))
    seen, steps = [], []
    for t, action in enumerate(actions):
        out = step(keys(seed * 1000 + t, MEMBERS), state, obs, jnp.asarray(action))
        seen.append(np.asarray(obs))
        steps.append(jax.tree.map(np.asarray, out))
        obs, state = out.obs, out.env_state
    return seen, steps


def check_transitions(t: Transition, stored: np.ndarray):
    """Every stored transition is one the probe can make, n steps or one (`discount` set or None)."""
    count, tag = t.obs[..., 0][stored], t.obs[..., 1][stored]
    next_count, next_tag = t.next_obs[..., 0][stored], t.next_obs[..., 1][stored]
    np.testing.assert_array_equal(next_tag, tag)  # never across two episodes
    steps = next_count - count
    assert np.all((steps >= 1) & (next_count <= gym_probes.LIMIT))
    terminal = (tag % 2 == 0) & (next_count == gym_probes.TERMINAL_STEP)
    np.testing.assert_array_equal(t.terminated[stored], terminal)
    if t.discount is None:
        assert np.all(steps == 1)
        np.testing.assert_array_equal(t.reward[stored], next_count)
    else:
        k = np.rint(np.log(t.discount[stored]) / np.log(GAMMA))
        np.testing.assert_array_equal(k, steps)
        expected = sum(np.where(j < steps, GAMMA ** j * (count + 1 + j), 0.0) for j in range(3))
        np.testing.assert_allclose(t.reward[stored], expected, rtol=1e-5)
    return next_count, terminal


@pytest.fixture(scope="module")
def actions():
    return np.random.default_rng(0).integers(0, 2, (STEPS, MEMBERS, NUM_ENVS)).astype(np.int32)


@pytest.mark.parametrize("name", PROBES)
def test_every_autoreset_mode_gives_true_transitions_and_marks_its_reset_steps(name, actions):
    seen, steps = rollout(name, actions)
    next_step = PROBES[name]
    ends = {"terminated": 0, "truncated": 0}
    previous_done = np.zeros((MEMBERS, NUM_ENVS), bool)
    for obs, s in zip(seen, steps):
        t, known = s.transition, s.next_obs_known
        np.testing.assert_array_equal(t.obs, obs)
        if next_step:  # the step after an end only resets: no transition, a first observation, no score
            np.testing.assert_array_equal(~known, previous_done)
            assert not s.done[~known].any() and not s.score[~known].any() and s.first[~known].all()
            assert np.all(s.obs[..., 0][~known] == 0)
        else:
            assert known.all()
        next_count, terminal = check_transitions(t, known)
        np.testing.assert_array_equal(s.done[known], terminal | (next_count == gym_probes.LIMIT))
        np.testing.assert_array_equal(s.score[known], t.reward[known])
        np.testing.assert_array_equal(s.game_over, s.done)
        ended = s.done & known
        ends["terminated"] += int(t.terminated[ended].sum())
        ends["truncated"] += int((~t.terminated[ended]).sum())
        if next_step:  # the final observation is acted on once more (its action ignored)
            np.testing.assert_array_equal(s.obs[ended], t.next_obs[ended])
            assert not s.first[ended].any()
        else:  # already the next episode's first
            assert np.all(s.obs[..., 0][ended] == 0) and s.first[ended].all()
        going = ~s.done & known
        np.testing.assert_array_equal(s.obs[going], t.next_obs[going])
        assert not s.first[going].any()
        previous_done = s.done
    assert ends["terminated"] > 0 and ends["truncated"] > 0  # both kinds of end were met


def test_qlax_same_step_and_disabled_vector_envs_step_alike(actions):
    """Seeded from the same keys, the three give the very same steps, so each is right."""
    reference = rollout("gymnasium:gym_probes:counter", actions)[1]
    for name in ("gymnasium:gym_probes:counter_same_step", "gymnasium:gym_probes:counter_disabled"):
        for a, b in zip(reference, rollout(name, actions)[1]):
            jax.tree.map(np.testing.assert_array_equal, a, b)


def test_members_are_seeded_from_their_keys(actions):
    first, _ = rollout("gymnasium:gym_probes:counter", actions[:1], seed=0)
    again, _ = rollout("gymnasium:gym_probes:counter", actions[:1], seed=0)
    other, _ = rollout("gymnasium:gym_probes:counter", actions[:1], seed=1)
    np.testing.assert_array_equal(first[0], again[0])
    tags = first[0][..., 1]
    assert len(np.unique(tags)) > NUM_ENVS  # copies and members differ
    assert not np.array_equal(tags, other[0][..., 1])


def test_callbacks_are_neither_merged_nor_dropped():
    env = make_env("gymnasium:gym_probes:counter", NUM_ENVS)
    key = keys(0, 1)[0]
    resets = gym_probes.Counter.resets
    jax.block_until_ready(jax.jit(lambda k: (env.reset(k), env.reset(k)))(key))  # identical calls, kept apart
    assert gym_probes.Counter.resets - resets == 2 * NUM_ENVS

    def five_steps(k):
        obs, state = env.reset(k)

        def body(carry, k_step):
            obs, state = carry
            out = env.step(k_step, state, obs, jnp.zeros(NUM_ENVS, jnp.int32))
            return (out.obs, out.env_state), None

        return jax.lax.scan(body, (obs, state), jax.random.split(k, 5))[0][0]  # only the last obs is used

    steps = gym_probes.Counter.steps
    jax.block_until_ready(jax.jit(five_steps)(key))
    assert gym_probes.Counter.steps - steps == 5 * NUM_ENVS


def test_a_restarted_member_gets_a_reset_step_and_a_frozen_one_steps_on():
    env = make_env("gymnasium:gym_probes:counter", NUM_ENVS)
    obs, state = jax.jit(jax.vmap(env.reset))(keys(3, MEMBERS))
    step = jax.jit(jax.vmap(env.step))
    zeros = jnp.zeros((MEMBERS, NUM_ENVS), jnp.int32)
    out = step(keys(4, MEMBERS), state, obs, zeros)
    restarted = jnp.where(jnp.arange(MEMBERS) == 0, env.restart(out.env_state), out.env_state)
    resets = gym_probes.Counter.resets
    after = step(keys(5, MEMBERS), restarted, out.obs, zeros)
    assert gym_probes.Counter.resets - resets == NUM_ENVS  # member 0's copies only
    assert not np.asarray(after.next_obs_known[0]).any() and np.asarray(after.first[0]).all()
    np.testing.assert_array_equal(np.asarray(after.obs[0, :, 0]), 0)
    np.testing.assert_array_equal(np.asarray(after.transition.next_obs[1, :, 0]), 2)  # member 1 steps on
    # Member 0 frozen (a stopped member keeps its state: the restarted one), member 1 on: no reset.
    frozen = jnp.stack([restarted[0], after.env_state[1]])
    again = step(keys(6, MEMBERS), frozen, jnp.stack([out.obs[0], after.obs[1]]), zeros)
    assert np.asarray(again.next_obs_known).all()  # a true step for both, no reset step
    np.testing.assert_array_equal(np.asarray(again.transition.next_obs[0, :, 0]), 1)
    # A new process resuming a checkpoint has no host copies yet: its first step resets them all.
    fresh = make_env("gymnasium:gym_probes:counter", NUM_ENVS)
    first = jax.jit(jax.vmap(fresh.step))(keys(7, MEMBERS), again.env_state, again.obs, zeros)
    assert not np.asarray(first.next_obs_known).any() and np.asarray(first.first).all()
    np.testing.assert_array_equal(np.asarray(first.obs[..., 0]), 0)


def test_async_workers_step_like_the_synchronous_vector_env(actions):
    sync = rollout("gymnasium:gym_probes:counter", actions[:12])[1]
    parallel = rollout("gymnasium:gym_probes:counter@async", actions[:12])[1]
    for a, b in zip(sync, parallel):
        jax.tree.map(np.testing.assert_array_equal, a, b)


def test_a_worker_that_dies_is_an_error_not_a_hang():
    from qlax.envs.gymnasium_adapter.host import Host
    from qlax.envs.gymnasium_adapter.pool import Pool
    from qlax.envs.gymnasium_adapter.source import Source

    source = Source.parse("gym_probes:counter@async")
    host = Host(source, 2)
    pool = Pool(source, 4, 2, host.parts, host.dtype)
    pool.reset(np.arange(4, dtype=np.uint32))
    pool.processes[1].kill()
    with pytest.raises(EnvError, match=r"a worker process failed: the worker process died \(exit code -9\)"):
        pool.step(np.zeros(4, np.int64))
    pool.close()


def test_dict_observations_are_flattened_in_sorted_key_order():
    spec = env_spec("gymnasium:gym_probes:dict_obs")
    assert spec.obs_dim == 5 and spec.host and spec.max_episode_steps is None
    obs, _ = make_env("gymnasium:gym_probes:dict_obs", 1).reset(keys(0, 1)[0])
    np.testing.assert_array_equal(np.asarray(obs), [[0.5, -0.5, 0.0, 0.0, 1.0]])  # position, room one-hot


def test_gymnasium_spec_reads_the_time_limit_and_threshold():
    spec = env_spec("gymnasium:CartPole-v1")
    assert (spec.obs_dim, spec.num_actions, spec.max_episode_steps, spec.solve_threshold) == (4, 2, 500, 475.0)
    assert env_spec("gymnasium:gym_probes:counter").max_episode_steps == gym_probes.LIMIT


@pytest.mark.parametrize("name, message", [
    ("gymnasium:Pendulum-v1", "env 'gymnasium:Pendulum-v1': action_space is Box"),
    ("gymnasium:gym_probes:continuous", "Q-learning needs a discrete action space"),
    ("gymnasium:NoSuchEnv-v0", "env = 'gymnasium:NoSuchEnv-v0': Gymnasium cannot make 'NoSuchEnv-v0'"),
    ("gymnasium:CartPole-v1@fast", "write gymnasium:ID, gymnasium:ID@sync or gymnasium:ID@async"),
    ("gymnasium:gym_probes:not_an_env", "the factory returned 'CartPole', not a gymnasium.Env"),
    ("gymnasium:no_such_module:make", "cannot import module 'no_such_module'"),
    ("gymnasium:gym_probes:counter_next_step@async", "builds its own vector env (it takes num_envs)"),
])
def test_what_qlax_cannot_train_on_is_refused_in_one_line(name, message):
    with pytest.raises(EnvError, match=None) as caught:
        env_spec(name)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_an_nstep_window_never_spans_a_reset_step():
    """A reset step (next observation unknown, no end) cuts the windows around it."""
    step = lambda t: Transition(obs=jnp.full((1, 1), t), action=jnp.array([t]), reward=jnp.array([1.0]),  # noqa: E731
                                next_obs=jnp.full((1, 1), t + 1.0), terminated=jnp.array([False]))
    window = nstep.init(step(0), 3)
    flags = [(False, True), (False, True), (False, False), (False, True), (False, True)]  # t = 2 only resets
    emitted, push, emit = [], jax.jit(nstep.push), jax.jit(nstep.emit)
    for t, (done, known) in enumerate(flags):
        window = push(window, step(t), jnp.array([done]), jnp.array([known]))
        out, storable = emit(window, 0.5)
        emitted.append((bool(storable[0]), float(out.obs[0, 0]), float(out.next_obs[0, 0])))
    # windows start at t = 0, 1, 2: stop before the reset step, and none starts at it
    assert emitted[2:] == [(True, 0.0, 2.0), (True, 1.0, 2.0), (False, 2.0, 3.0)]


GAMMA = 0.9
TRAIN = TrainConfig(num_envs=NUM_ENVS, total_steps=NUM_ENVS * 40, chunk_steps=20, seeds=MEMBERS, q_function="mlp",
                    hidden_sizes=[8], buffer_size=1000, batch_size=8, learning_starts=30, gamma=GAMMA,
                    eval_episodes=2, early_stop=False)


def stored(state):
    """(transitions as numpy with leading axes (members, rows), which rows are filled)."""
    buffer = state.agent.replay
    rows = np.arange(buffer.storage.shape[1])
    return jax.tree.map(np.asarray, uniform.contents(buffer)), rows[None, :] < np.asarray(buffer.size)[:, None]


@pytest.mark.parametrize("name, n_step, truncation", [
    ("gymnasium:gym_probes:counter", 3, "bootstrap"),
    ("gymnasium:gym_probes:counter_next_step", 3, "bootstrap"),
    ("gymnasium:gym_probes:counter_next_step", 1, "terminal"),
])
def test_training_stores_only_true_transitions_and_reports_whole_episodes(name, n_step, truncation):
    config = TRAIN.replace(env=name, n_step=n_step, truncation=truncation)
    run = start(config)
    state = run.state
    for _ in range(run.trainer.num_chunks):
        state, metrics = run.population.run_chunk(state)
    transitions, filled = stored(state)
    if truncation == "terminal":  # a cut is stored as an end: terminated = done, still no reset step
        cut = transitions.next_obs[..., 0] == gym_probes.LIMIT
        assert np.all(transitions.terminated[filled & cut])
        transitions = transitions.replace(terminated=transitions.terminated & ~cut)
    next_count, _ = check_transitions(transitions, filled)
    assert np.any(next_count == gym_probes.LIMIT)  # cuts are stored, bootstrapped from the final obs
    vector_steps = config.vector_steps
    per_member = np.asarray(state.agent.replay.size)
    if PROBES[name]:
        assert np.all(per_member < (vector_steps - n_step + 1) * NUM_ENVS)  # reset steps are no transitions
    else:
        np.testing.assert_array_equal(per_member, (vector_steps - n_step + 1) * NUM_ENVS)
    stats = state.stats
    for member in range(MEMBERS):
        episodes = int(stats.episodes[member])
        returns = np.asarray(stats.recent_returns[member])[:min(episodes, 100)]
        assert episodes > 10 and set(returns.tolist()) == {6.0, 15.0}  # 1+2+3 terminated, 1+...+5 cut
    np.testing.assert_allclose(np.asarray(metrics.avg_return_100),
                               [np.mean(np.asarray(stats.recent_returns[m])[:min(int(stats.episodes[m]), 100)])
                                for m in range(MEMBERS)])


def test_two_runs_of_one_config_and_seed_are_the_same_run():
    config = TRAIN.replace(env="gymnasium:CartPole-v1", learning_starts=12)

    def run(seed):
        started = start(config.replace(seed=seed))
        state = started.state
        for _ in range(2):
            state, _ = started.population.run_chunk(state)
        return jax.tree.map(np.asarray, state)

    first, second, other = run(0), run(0), run(1)
    jax.tree.map(np.testing.assert_array_equal, first, second)
    assert not np.array_equal(first.agent.replay.storage, other.agent.replay.storage)


def test_resume_continues_all_but_the_episodes_exactly(tmp_path):
    """A run resumed from its first checkpoint against the same run done in one go: the same
    keys and counters, the same buffer rows up to the checkpoint, then fresh episodes (its
    first step a reset step: one transition fewer per copy), no transition across the resume."""
    config = TRAIN.replace(env="gymnasium:gym_probes:counter", n_step=3)
    whole = qlax.train(config, out=tmp_path / "whole", progress=False, checkpoint_every=1, keep=5)
    resumed_dir = tmp_path / "resumed"
    qlax.train(config, out=resumed_dir, progress=False, checkpoint_every=1, keep=5)
    for later in sorted((resumed_dir / "checkpoints").iterdir())[1:]:
        shutil.rmtree(later)
    (resumed_dir / "summary.json").unlink()
    from qlax.runs.experiment import _plan
    from qlax.runs.rundir import load_state, load_members  # what resume loads: the checkpoint bit for bit

    members = load_members(resumed_dir)
    planned = _plan(members, None)
    at_checkpoint = jax.tree.map(np.asarray, load_state(resumed_dir, planned.trainer, members, planned.placement)[0])
    resumed = qlax.resume(resumed_dir, progress=False)
    a, b = jax.tree.map(np.asarray, whole.state), jax.tree.map(np.asarray, resumed.state)
    assert whole.summary["devices"] == 1  # host environments: one device for all members
    np.testing.assert_array_equal(a.key, b.key)
    np.testing.assert_array_equal(a.vector_steps, b.vector_steps)
    written = int(at_checkpoint.agent.replay.size[0])
    np.testing.assert_array_equal(a.agent.replay.storage[:, :written], b.agent.replay.storage[:, :written])
    np.testing.assert_array_equal(b.agent.replay.size, a.agent.replay.size - NUM_ENVS)
    transitions, filled = stored(resumed.state)
    check_transitions(transitions, filled)
    assert np.all(b.stats.episodes > at_checkpoint.stats.episodes)
    assert resumed.summary["interrupted"] is False and len(resumed.summary["eval_mean_return"]) == MEMBERS
    evaluation = evaluate_run(resumed_dir)  # qlax eval: greedy episodes on the host environments
    assert all(r in (6.0, 15.0) for r in evaluation["min_return"] + evaluation["max_return"])


def test_the_same_task_from_gymnasium_keeps_a_presets_bounds():
    preset = qlax.presets.load("cartpole-dqn")
    for name in ("gymnasium:CartPole-v1", "gymnasium:CartPole-v1@async"):
        assert preset.replace(env=name).obs_low == preset.obs_low  # CartPole's bounds, whoever steps it
    assert preset.replace(env="gymnasium:Acrobot-v1").obs_low is None  # another task: its own


def test_a_gymnasium_env_object_trains_resumes_and_evaluates(tmp_path):
    """`qlax.train(config, env=obj)`: copies of the object step exactly as the same env named by
    its factory (the same run, bit for bit); the object itself is never stepped; resume,
    evaluation and policies take a fresh object again, as a new process would."""
    config = TRAIN.replace(n_step=3)
    named = qlax.train(config.replace(env="gymnasium:gym_probes:counter"), progress=False)
    env = gym_probes.counter()
    out = tmp_path / "object"
    by_object = qlax.train(config, env=env, out=out, progress=False, checkpoint_every=1, keep=5)
    assert by_object.summary["env"] == "object:Counter"  # the env's own class, not its TimeLimit wrapper
    assert not hasattr(env.unwrapped, "t")  # never reset
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, named.state),
                 jax.tree.map(np.asarray, by_object.state))
    for later in sorted((out / "checkpoints").iterdir())[1:]:
        shutil.rmtree(later)
    (out / "summary.json").unlink()
    resumed = qlax.resume(out, progress=False, env=gym_probes.counter())
    transitions, filled = stored(resumed.state)
    check_transitions(transitions, filled)
    np.testing.assert_array_equal(resumed.state.agent.replay.size, by_object.state.agent.replay.size - NUM_ENVS)
    evaluation = evaluate_run(out, env=gym_probes.counter())
    assert all(r in (6.0, 15.0) for r in evaluation["min_return"] + evaluation["max_return"])
    policy, _ = qlax.load_policy(out, seed=1, env=gym_probes.counter())
    assert int(policy(np.array([0.0, 2.0], np.float32))) in (0, 1)


@pytest.mark.slow  # a subprocess
def test_the_command_line_re_makes_a_gymnasium_env_object_from_the_spec_its_run_saved(tmp_path):
    """The command line has no object to pass: a Gymnasium env object with a spec is saved
    with its run (env_spec.json) and re-made from it, as gymnasium.make builds it, in a new
    process; an object without one is named there in one line that says what to do."""
    def evaluate_in_a_new_process(run_dir):
        return subprocess.run([sys.executable, "-m", "qlax.tools.cli", "eval", str(run_dir)], capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})

    out = tmp_path / "object"
    config = TRAIN.replace(total_steps=NUM_ENVS * 20, eval_episodes=3)
    trained = qlax.train(config, env=gymnasium.make("CartPole-v1", max_episode_steps=40), out=out, progress=False)
    assert trained.summary["env"].startswith("object:CartPole-v1")  # -2, ... where this process holds another
    assert json.loads((out / "env_spec.json").read_text())["max_episode_steps"] == 40
    by_python = evaluate_run(out, env=gymnasium.make("CartPole-v1", max_episode_steps=40))
    assert evaluate_in_a_new_process(out).returncode == 0
    from_cli = json.loads((out / "eval.json").read_text())
    assert from_cli["min_return"] == by_python["min_return"] and from_cli["max_return"] == by_python["max_return"]
    assert max(from_cli["max_return"]) <= 40  # its time limit, from the saved spec

    unrecorded = gymnasium.Wrapper(gymnasium.make("CartPole-v1"))  # records no arguments: not re-makeable
    assert recipe(unrecorded) is None and recipe(gymnasium.make("CartPole-v1")) is not None
    no_spec = tmp_path / "no-spec"
    qlax.train(config, env=gym_probes.counter(), out=no_spec, progress=False)
    assert not (no_spec / "env_spec.json").exists()
    failed = evaluate_in_a_new_process(no_spec)
    assert failed.returncode == 2 and "pass it again, e.g. qlax.resume(run_dir, env=my_env)" in failed.stderr


@pytest.mark.slow
@pytest.mark.parametrize("algorithm, settings", [
    ("c51", {"num_atoms": 11, "v_min": 0.0, "v_max": 20.0}),
    ("qrdqn", {"num_quantiles": 5}),
    ("pqn", {"num_steps": 8, "num_minibatches": 2}),
])
def test_every_algorithm_trains_on_a_gymnasium_env_object(algorithm, settings):
    config = TRAIN.replace(algorithm=algorithm, **settings).owned()  # pqn: no replay settings
    result = qlax.train(config, env=gym_probes.counter(), progress=False)
    assert result.eval_returns.shape == (MEMBERS, 2) and set(result.eval_returns.ravel()) <= {6.0, 15.0}
    assert np.all(np.asarray(result.state.stats.episodes) > 10)


def test_an_env_object_without_a_deep_copy_is_re_made_from_its_spec():
    env = gym_probes.Locked(gymnasium.make("CartPole-v1"))
    name = register(env)
    assert env_spec(name).max_episode_steps == 500 and env_spec(name).solve_threshold == 475.0
    obs, _ = make_env(name, NUM_ENVS).reset(keys(0, 1)[0])
    assert obs.shape == (NUM_ENVS, 4) and len(np.unique(np.asarray(obs)[:, 0])) == NUM_ENVS  # seeded apart


def test_an_env_object_of_a_known_id_keeps_the_presets_bounds_as_its_name_does():
    preset = qlax.presets.load("cartpole-dqn")
    by_name = preset.replace(env="gymnasium:CartPole-v1")
    by_object = preset.replace(env=register(gymnasium.make("CartPole-v1")))
    assert by_object.obs_low == by_name.obs_low == preset.obs_low is not None
    assert by_object.obs_high == by_name.obs_high == preset.obs_high
    # Wrapped beyond its id (another observation), or another task: the preset's bounds do not hold
    wrapped = gymnasium.wrappers.TimeAwareObservation(gymnasium.make("CartPole-v1"))
    for other in (wrapped, gymnasium.make("Acrobot-v1")):
        assert preset.replace(env=register(other)).obs_low is None


@pytest.mark.parametrize("env, message", [
    (gym_probes.Uncopyable(), "qlax cannot copy this Gymnasium environment: deepcopy failed (TypeError: cannot pickle "
                              "'_thread.lock' object) and it has no spec to re-make it from; pass a factory instead"),
    (gym_probes.counter_same_step(2), "a gymnasium.vector.VectorEnv has a fixed number of copies (2)"),
])
def test_an_env_object_qlax_cannot_copy_is_refused_in_one_line(env, message):
    with pytest.raises(EnvError) as caught:
        qlax.train(TRAIN, env=env, progress=False)
    assert message in str(caught.value) and "\n" not in str(caught.value)
