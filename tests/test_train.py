"""The compiled training program, end to end: learning, truncation, early stop, outputs."""

import csv
import json

import jax
import numpy as np
import pytest

import probe_envs
import qlax
from qlax.program.trainer import make_train
from qlax.settings.config import TrainConfig

pytestmark = pytest.mark.slow  # every test here trains or starts processes


def probe_q_values(truncation: str) -> np.ndarray:
    """Learned Q(obs) on the time-limit probe, (seeds, actions)."""
    config = TrainConfig(
        env=probe_envs.TIME_LIMIT_PROBE, num_envs=4, total_steps=8000, chunk_steps=500, seeds=2,
        num_centers=8, gamma=0.9, lr=0.05, loss="squared", target="periodic", target_period=20,
        learning_starts=64, buffer_size=1000, truncation=truncation, eval_episodes=2)
    result = qlax.train(config, progress=False)
    q_apply = make_train(config).q_function.apply
    obs = np.zeros((1, 1), np.float32)
    return np.asarray(jax.vmap(q_apply, in_axes=(0, None))(result.state.agent.learner.params, obs))[:, 0]


def test_q_bootstraps_through_time_limit_truncation():
    # Reward 1 forever, cut every 5 steps: bootstrapping through the cut gives 1/(1-0.9) = 10.
    np.testing.assert_allclose(probe_q_values("bootstrap"), 10.0, rtol=0.02)


@pytest.mark.parametrize("n_step,stored", [
    (1, 4 * 1600),  # 400 episodes of 5 steps per env: the 5th step of each is left out
    (3, 4 * 1599),  # windows reaching the cut stop before it; one at the cut is left out; the run
])                  # ends before the last episode's 4th-step window is full
def test_without_final_observations_cut_transitions_are_left_out(n_step, stored):
    # The blind probe cannot say where a cut episode ended: nothing bootstraps from there,
    # and the rest still bootstraps to the right value, 1 / (1 - 0.9).
    config = TrainConfig(env=probe_envs.BLIND_TIME_LIMIT_PROBE, num_envs=4, total_steps=8000, chunk_steps=500,
                         seeds=1, num_centers=8, gamma=0.9, lr=0.05, loss="squared", target="periodic",
                         target_period=20, learning_starts=64, buffer_size=8000, n_step=n_step, eval_episodes=2)
    result = qlax.train(config, progress=False)
    assert int(result.state.agent.replay.size[0]) == stored
    q = make_train(config).q_function.apply(jax.tree.map(lambda x: x[0], result.state.agent.learner.params),
                                            np.zeros((1, 1), np.float32))
    np.testing.assert_allclose(q, 10.0, rtol=0.02)


def test_treating_truncation_as_terminal_learns_the_wrong_value():
    # What the seed does: the cut looks terminal, so Q settles near 1/(1-0.9*0.8) = 3.6, not 10.
    q = probe_q_values("terminal")
    assert np.all(q < 5.0), q


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return qlax.train(qlax.presets.load("cartpole-rbf"), seeds=4, out=out, preset="cartpole-rbf",
                      progress=False)


@pytest.mark.learning
def test_cartpole_rbf_solves_every_seed(cartpole_run):
    summary = cartpole_run.summary
    assert summary["solved"] == [True] * 4, summary["eval_mean_return"]
    assert min(summary["eval_mean_return"]) >= 475.0
    assert summary["solved_fraction"] == 1.0


def test_early_stopped_seeds_freeze_at_their_own_step(cartpole_run):
    summary = cartpole_run.summary
    assert all(summary["early_stopped"])
    assert all(avg >= 475.0 for avg in summary["train_avg_return_100"])
    steps = np.asarray(summary["env_steps"])
    assert np.all(steps < 160_000) and np.all(steps % 16 == 0)
    assert len(set(steps.tolist())) > 1  # each seed stops at its own step, not at a chunk border
    np.testing.assert_array_equal(np.asarray(cartpole_run.state.vector_steps) * 16, steps)


def test_run_directory_holds_the_contracted_files(cartpole_run):
    run_dir = cartpole_run.run_dir
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("preset", "env", "num_seeds", "env_steps", "wall_s", "compile_s", "env_steps_per_s",
                "eval_mean_return", "solved", "solved_fraction"):
        assert key in summary, key
    assert summary["preset"] == "cartpole-rbf" and summary["num_seeds"] == 4
    assert summary["env_steps_per_s"] > 0 and summary["wall_s"] >= summary["compile_s"] > 0
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("seed,env_steps,epsilon,avg_return_100,episodes,loss,stopped")
    last_rows = [dict(zip(rows[0].split(","), r.split(","))) for r in rows[-4:]]
    assert sorted(int(r["seed"]) for r in last_rows) == [0, 1, 2, 3]
    assert all(r["stopped"] == "1" and r["diverged"] == "0" for r in last_rows)
    assert qlax.runs.rundir.load_run_config(run_dir) == qlax.presets.load("cartpole-rbf").replace(seeds=4)


def test_evaluate_run_reloads_saved_parameters(cartpole_run):
    result = qlax.evaluate_run(cartpole_run.run_dir, episodes=100)
    # Same params, same evaluation keys: the same returns as at the end of training.
    np.testing.assert_allclose(result["mean_return"], cartpole_run.summary["eval_mean_return"], atol=1e-3)
    assert json.loads((cartpole_run.run_dir / "eval.json").read_text())["backend"] == "gymnax"


def test_a_run_result_prints_as_one_short_line(cartpole_run):
    text = repr(cartpole_run)
    assert "\n" not in text and len(text) < 200 and text.startswith("RunResult(env='CartPole-v1', members=")


def test_budget_ends_a_run_and_seeds_are_independent():
    config = TrainConfig(num_envs=4, total_steps=1000, chunk_steps=100, seeds=3, num_centers=16,
                         buffer_size=500, learning_starts=100, eval_episodes=2)
    result = qlax.train(config, progress=False)
    assert result.summary["env_steps"] == [1000] * 3  # 250 vector steps of 4, over 3 chunks of 100
    w = np.asarray(result.state.agent.learner.params["w"])
    assert not np.allclose(w[0], w[1])  # each seed has its own key, centers and weights
    again = qlax.train(config, progress=False)
    np.testing.assert_array_equal(np.asarray(again.state.agent.learner.params["w"]), w)  # deterministic


GREEDY = TrainConfig(num_envs=4, total_steps=1200, chunk_steps=50, seeds=2, num_centers=16, buffer_size=500,
                     learning_starts=100, eval_episodes=5, stop_on="greedy", stop_eval_episodes=4)


def test_greedy_stop_freezes_a_member_at_the_chunk_its_check_passes():
    # Any policy keeps CartPole up for 5 steps: both members stop after their first chunk.
    easy = qlax.train(GREEDY.replace(solve_threshold=5.0), progress=False)
    assert easy.summary["env_steps"] == [200, 200] and all(easy.summary["early_stopped"])
    assert easy.summary["solved"] == [True, True]  # the final 100-episode check agrees at this threshold
    # A check that passes in the chunk that spends the budget stops nothing early.
    spent = qlax.train(GREEDY.replace(solve_threshold=5.0, total_steps=200), progress=False)
    assert spent.summary["env_steps"] == [200, 200] and spent.summary["early_stopped"] == [False, False]
    # An unreachable threshold: every chunk is checked, nobody stops, the checks are real returns.
    run = qlax.runs.experiment.start(GREEDY.replace(solve_threshold=1000.0))
    state, metrics = run.population.run_chunk(run.state)
    checks = np.asarray(metrics.greedy_return)
    assert not np.any(np.asarray(metrics.stopped)) and np.all((checks >= 8) & (checks <= 500))
    assert checks[0] != checks[1]  # each member's own policy and episodes


def test_greedy_stop_writes_its_checks_to_metrics(tmp_path):
    result = qlax.train(GREEDY.replace(solve_threshold=1000.0, total_steps=400), out=tmp_path, progress=False)
    with (tmp_path / "metrics.csv").open() as file:
        checks = [float(row["greedy_return"]) for row in csv.DictReader(file)]
    assert checks and all(np.isfinite(checks))
    assert not any(result.summary["early_stopped"])
