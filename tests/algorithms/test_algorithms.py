"""The algorithms beyond DQN, end to end: PQN's episode ends, prioritized replay inside the
trainer, noisy and convolutional networks, the best policy kept, and every run feature
(evaluation, policies, render, Gymnasium, checkpoints, resume, sweeps) on a new algorithm."""

import json
import signal

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import probe_envs
import qlax
from qlax.algorithms import Rollout
from qlax.components import networks
from qlax.components.replay import prioritized
from qlax.core.types import Transition
from qlax.envs import make_env
from qlax.program.trainer import make_train
from qlax.runs import experiment
from qlax.runs.gymnasium_backend import evaluate_gymnasium
from qlax.runs.policy import load_policy
from qlax.settings.config import TrainConfig
from qlax.tools import cli
from qlax.tools.render import render_episode
from solving import freeze_the_rest_once

PROBE_PQN = TrainConfig(algorithm="pqn", env=probe_envs.TIME_LIMIT_PROBE, num_envs=4, total_steps=8000,
                        chunk_steps=64, seeds=2, num_centers=8, gamma=0.9, lr=0.05, loss="squared",
                        num_steps=8, num_epochs=2, num_minibatches=2, td_lambda=0.65,
                        eps_schedule="constant", eps_start=0.1, eval_episodes=2)


def probe_q(config: TrainConfig) -> np.ndarray:
    """Learned Q(0) of each seed on a probe env, (seeds, actions)."""
    result = qlax.train(config, progress=False)
    q_apply = make_train(config).q_function.apply
    params = result.state.agent.learner.params
    return np.asarray(jax.vmap(q_apply, in_axes=(0, None))(params, np.zeros((1, 1), np.float32)))[:, 0]


@pytest.mark.parametrize("env", [probe_envs.TIME_LIMIT_PROBE, probe_envs.BLIND_TIME_LIMIT_PROBE])
@pytest.mark.slow
def test_pqn_bootstraps_through_time_limits(env):
    # Reward 1 forever, cut every 5 steps: the value is 1 / (1 - 0.9) = 10, with final
    # observations (bootstrapped from) and without them (the cut step left out).
    np.testing.assert_allclose(probe_q(PROBE_PQN.replace(env=env)), 10.0, rtol=0.03)


@pytest.mark.slow
def test_pqn_treating_time_limits_as_terminal_learns_the_wrong_value():
    # purejaxql's and rejax's rule: a cut ends the return; Q settles far below 10.
    assert np.all(probe_q(PROBE_PQN.replace(truncation="terminal")) < 5.0)


def test_prioritized_replay_weights_the_loss_and_writes_priorities_back():
    """One DQN learn step on a buffer with uneven priorities, against numpy: the loss is the
    importance-weighted mean, and the sampled rows get (|TD error| + eps)^alpha (alpha 0.5)."""
    config = TrainConfig(env=probe_envs.TIME_LIMIT_PROBE, num_envs=4, total_steps=1000, num_centers=8,
                         buffer_size=64, batch_size=16, learning_starts=1, replay="prioritized", per_alpha=0.5,
                         per_beta=0.4, loss="squared", target="periodic", gamma=0.9, init_scale=1.0)
    algorithm, hp = make_train(config).algorithm, config.hparams()
    rng = np.random.default_rng(0)
    obs0 = jnp.zeros((4, 1))
    agent = jax.jit(algorithm.init)(jax.random.PRNGKey(0), hp, obs0)

    def transitions(n):
        return Transition(obs=jnp.asarray(rng.uniform(0, 1, (n, 1)), jnp.float32),
                          action=jnp.asarray(rng.integers(0, 2, n), jnp.int32),
                          reward=jnp.asarray(rng.normal(size=n), jnp.float32),
                          next_obs=jnp.asarray(rng.uniform(0, 1, (n, 1)), jnp.float32),
                          terminated=jnp.asarray(rng.random(n) < 0.3))

    add = jax.jit(prioritized.add)  # each component one program, not one per operation
    buffer = add(agent.replay, transitions(40))
    buffer = jax.jit(prioritized.update_priorities)(buffer, jnp.arange(40), jnp.asarray(rng.uniform(0.01, 5, 40)),
                                                    1.0)
    agent = agent.replace(replay=buffer)
    step = transitions(4)
    rollout = jax.tree.map(lambda x: x[None], Rollout(step, jnp.zeros(4, bool), jnp.ones(4, bool), step.next_obs))
    key, vector_steps = jax.random.PRNGKey(7), jnp.int32(10)
    learned_agent, learned = jax.jit(algorithm.learn)(agent, rollout, key, hp, vector_steps, jnp.bool_(True))

    # What the learn step saw: the buffer with the new step added, and the batch it drew.
    added = add(buffer, step)
    beta = 0.4 + 0.6 * 10 / config.vector_steps
    batch, rows, _ = jax.jit(prioritized.sample, static_argnums=2)(added, jax.random.split(key, 1)[0], 16, beta)
    leaves = np.asarray(added.levels[-1][:44], np.float64)
    probs = leaves[np.asarray(rows)] / leaves.sum()
    weights = (44 * probs) ** -beta
    weights /= weights.max()
    apply = jax.jit(algorithm.q_function.apply)
    q = apply(agent.learner.params, batch.obs)
    next_q = apply(agent.learner.target_params, batch.next_obs)
    q_taken = np.take_along_axis(np.asarray(q), np.asarray(batch.action)[:, None], 1)[:, 0]
    target = np.asarray(batch.reward) + 0.9 * (1 - np.asarray(batch.terminated)) * np.asarray(next_q).max(1)
    td = q_taken - target
    assert int(learned.updates) == 1
    np.testing.assert_allclose(float(learned.loss_sum), np.mean(weights * 0.5 * td**2), rtol=1e-5)
    assert not np.allclose(weights, 1.0)  # the weights matter here
    written = np.asarray(learned_agent.replay.levels[-1])[np.asarray(rows)]
    np.testing.assert_allclose(written, (np.abs(td) + prioritized.PRIORITY_EPS) ** 0.5, rtol=1e-5)


def test_noisy_layers_use_their_mean_without_a_key_and_fresh_noise_with_one():
    config = TrainConfig(q_function="mlp", hidden_sizes=[8], exploration="noisy", dueling=True)
    spec = make_env("CartPole-v1", 1).spec
    q = networks.build(config, spec)
    params = jax.jit(q.init)(jax.random.PRNGKey(0), config.hparams())
    obs = jax.random.normal(jax.random.PRNGKey(1), (3, 4))
    mean_only = jax.jit(q.apply)(params, obs)
    layers = params["net"]["params"]
    assert set(layers["NoisyDense_0"]) == {"mu_w", "mu_b", "sigma_w", "sigma_b"}
    h = jax.nn.relu(q.features(params, obs) @ layers["NoisyDense_0"]["mu_w"] + layers["NoisyDense_0"]["mu_b"])
    value = h @ layers["NoisyDense_1"]["mu_w"] + layers["NoisyDense_1"]["mu_b"]
    advantage = h @ layers["NoisyDense_2"]["mu_w"] + layers["NoisyDense_2"]["mu_b"]
    np.testing.assert_allclose(mean_only, value + advantage - advantage.mean(-1, keepdims=True), rtol=1e-5, atol=1e-6)
    outputs = jax.jit(q.outputs)
    noisy_a = outputs(params, obs, jax.random.PRNGKey(2))
    assert not np.allclose(noisy_a, mean_only)
    np.testing.assert_array_equal(noisy_a, outputs(params, obs, jax.random.PRNGKey(2)))
    assert not np.allclose(noisy_a, outputs(params, obs, jax.random.PRNGKey(3)))

    # The same pass by hand, from the noise each layer was given: w = mu + sigma f(e_in) f(e_out)^T.
    given = {}

    def record(call, args, kwargs, context):
        if isinstance(context.module, networks.NoisyDense) and context.method_name == "__call__":
            given[context.module.name] = args[1]
        return call(*args, **kwargs)

    with flax.linen.intercept_methods(record):
        noisy = q.outputs(params, obs, jax.random.PRNGKey(2))

    def noisy_layer(name, x):
        layer, (e_in, e_out) = layers[name], given[name]
        return x @ (layer["mu_w"] + layer["sigma_w"] * jnp.outer(e_in, e_out)) + layer["mu_b"] + layer["sigma_b"] * e_out

    h = jax.nn.relu(noisy_layer("NoisyDense_0", q.features(params, obs)))
    value, advantage = noisy_layer("NoisyDense_1", h), noisy_layer("NoisyDense_2", h)
    np.testing.assert_allclose(noisy, value + advantage - advantage.mean(-1, keepdims=True), rtol=1e-5, atol=1e-6)
    entries = np.concatenate([np.concatenate(given[name]) for name in sorted(given)])
    assert entries.size == (4 + 8) + (8 + 1) + (8 + 2) and len(np.unique(entries)) == entries.size  # none shared


def test_layer_noise_is_factorised_standard_normals_from_one_key():
    shapes = [(4, 8), (8, 1), (8, 2)]
    noise = networks.layer_noise(jax.random.PRNGKey(0), shapes)
    assert [(e_in.shape[0], e_out.shape[0]) for e_in, e_out in noise] == shapes
    draws = np.concatenate([np.concatenate([np.concatenate(pair) for pair in networks.layer_noise(key, shapes)])
                            for key in jax.random.split(jax.random.PRNGKey(1), 300)])
    # f(e) = sign(e) sqrt|e| of a standard normal e: f(e)^2 = |e|, whose mean is sqrt(2 / pi)
    # (standard error here 0.006), and f(e) is symmetric about 0
    assert abs(np.mean(draws ** 2) - np.sqrt(2 / np.pi)) < 0.025 and abs(np.mean(draws > 0) - 0.5) < 0.02


def test_conv_torso_reads_minatar_grids():
    config = TrainConfig(env="Breakout-MinAtar", q_function="conv", conv_channels=[4], hidden_sizes=[16],
                         obs_scaling="none", algorithm="qrdqn", num_quantiles=5)
    trainer = make_train(config)
    params = jax.jit(trainer.q_function.init)(jax.random.PRNGKey(0), config.hparams())
    conv = params["net"]["params"]["Conv3x3_0"]
    assert conv["kernel"].shape == (3, 3, 4, 4)  # 3x3, 4 channels in and out
    obs, _ = jax.eval_shape(trainer.env.reset, jax.random.PRNGKey(1))
    assert jax.eval_shape(trainer.q_function.outputs, params, obs).shape == (config.num_envs, 3, 5)
    with pytest.raises(qlax.ConfigError, match="q_function = 'conv': env 'CartPole-v1' has observations of shape"):
        make_train(TrainConfig(q_function="conv"))


@pytest.mark.parametrize("stride, height, width", [(1, 10, 10), (2, 10, 10), (2, 5, 5), (2, 7, 6)])
def test_a_3x3_convolution_is_flax_conv_with_same_padding(stride, height, width):
    """Conv3x3 at conv_stride 1 or 2 gives flax's SAME convolution (at stride 2 its uneven
    padding on even sizes included), and the network's dense layer reads its outputs: at
    stride 2 a quarter of them."""
    grid = jax.random.normal(jax.random.PRNGKey(2), (3, height, width, 4))
    flax_conv = flax.linen.Conv(8, (3, 3), (stride, stride), padding="SAME")
    params = jax.jit(flax_conv.init)(jax.random.PRNGKey(0), grid)
    expected = jax.jit(flax_conv.apply)(params, grid)
    assert expected.shape == (3, -(-height // stride), -(-width // stride), 8)
    np.testing.assert_allclose(jax.jit(networks.Conv3x3(8, stride=stride).apply)(params, grid), expected, atol=1e-5)
    config = TrainConfig(env="Breakout-MinAtar", q_function="conv", conv_channels=[4], conv_stride=stride,
                         hidden_sizes=[16])
    init = make_train(config).q_function.init
    layers = jax.eval_shape(init, jax.random.PRNGKey(0), config.hparams())["net"]["params"]
    assert layers["Dense_0"]["kernel"].shape == ((10 // stride) ** 2 * 4, 16)  # Breakout's 10x10 grid


GREEDY_PQN = TrainConfig(algorithm="pqn", num_envs=8, total_steps=8192, chunk_steps=32, seeds=2, q_function="mlp",
                         hidden_sizes=[32], layer_norm=True, num_steps=16, num_minibatches=4, lr=3e-3,
                         eps_schedule="linear", eps_decay_steps=400, loss="squared",
                         early_stop=False, keep_best=True, stop_eval_episodes=4, eval_episodes=5,
                         obs_low=[-2.4, -3.0, -0.2, -3.0], obs_high=[2.4, 3.0, 0.2, 3.0])


@pytest.fixture(scope="module")
def pqn_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pqn")
    return qlax.train(GREEDY_PQN, out=out, progress=False, checkpoint_every=2)


@pytest.mark.slow
def test_the_best_greedy_check_is_kept_and_loadable(pqn_run):
    summary, out = pqn_run.summary, pqn_run.run_dir
    rows = [line.split(",") for line in (out / "metrics.csv").read_text().splitlines()]
    header, rows = rows[0], rows[1:]
    for seed in range(2):
        own = [dict(zip(header, r)) for r in rows if r[0] == str(seed)]
        checks = [float(r["greedy_return"]) for r in own]
        best = int(np.argmax(checks))  # the first chunk with the highest check
        assert summary["best_greedy_return"][seed] == pytest.approx(checks[best], abs=1e-3)
        assert summary["best_env_steps"][seed] == int(own[best]["env_steps"])
    _, best_params = load_policy(out, seed=1, best=True)
    for a, b in zip(jax.tree.leaves(best_params), jax.tree.leaves(pqn_run.state.best.params)):
        np.testing.assert_array_equal(a, np.asarray(b[1]))
    assert cli.main(["eval", str(out), "--best", "--episodes", "3"]) == 0
    assert json.loads((out / "eval.json").read_text())["best"] is True
    # The best policy evaluated afresh at the end of training (its own eval_episodes, not the checks that chose it).
    assert cli.main(["eval", str(out), "--best"]) == 0
    assert json.loads((out / "eval.json").read_text())["mean_return"] == summary["best_eval_mean_return"]


@pytest.mark.slow
def test_pqn_runs_evaluate_render_and_play_gymnasium(pqn_run, tmp_path):
    out = pqn_run.run_dir
    result = qlax.evaluate_run(out)
    np.testing.assert_allclose(result["mean_return"], pqn_run.summary["eval_mean_return"], atol=1e-3)
    path, frames = render_episode(out, seed=0, out=tmp_path / "episode.gif")
    assert Image.open(path).n_frames == frames >= 8
    returns, lengths, limit = evaluate_gymnasium(out, episodes=2)
    assert returns.shape == (2, 2) and np.all(returns >= 8)
    np.testing.assert_array_equal(lengths, returns)  # Gymnasium's CartPole pays 1 per step
    assert limit == 500


@pytest.mark.slow
def test_an_interrupted_pqn_run_resumes_to_the_run_done_in_one_go(pqn_run, tmp_path, monkeypatch):
    shown = []
    original = experiment.ProgressDisplay.update

    def update(self, *args):
        original(self, *args)
        shown.append(1)
        if len(shown) == 3:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(experiment.ProgressDisplay, "update", update)
    out = tmp_path / "run"
    assert qlax.train(GREEDY_PQN, out=out, progress=False, checkpoint_every=2).interrupted
    monkeypatch.undo()
    resumed = qlax.resume(out, progress=False)
    for a, b in zip(jax.tree.leaves(resumed.state), jax.tree.leaves(pqn_run.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert (out / "metrics.csv").read_text() == (pqn_run.run_dir / "metrics.csv").read_text()


@pytest.mark.slow
def test_a_pqn_sweep_over_lambda_is_one_program():
    grid = qlax.sweep(GREEDY_PQN.replace(total_steps=1024, keep_best=False), {"td_lambda": [0.0, 0.9]}, seeds=2,
                      progress=False)
    assert grid.summary["num_members"] == 4 and len(grid.summary["settings"]) == 2
    lambdas = np.asarray(grid.state.hparams.td_lambda)
    np.testing.assert_allclose(lambdas, [0.0, 0.0, 0.9, 0.9])


@pytest.mark.parametrize("preset", ["cartpole-pqn", "cartpole-c51", "cartpole-qrdqn", "cartpole-iqn", "cartpole-mdqn",
                                    "cartpole-rainbow"])
@pytest.mark.slow
@pytest.mark.learning
def test_each_algorithm_solves_cartpole(preset):
    config = qlax.presets.load(preset)
    result = qlax.train(config, seeds=4, progress=False, callbacks=[freeze_the_rest_once(3)])
    assert sum(result.solved) >= 3, result.eval_mean_return
    assert max(result.summary["env_steps"]) <= make_train(config).env_steps_budget
