"""The memory plan: every part a run holds is counted, and a population that would not fit
is refused before anything compiles, in one line that names the setting to shrink."""

import jax
import numpy as np
import pytest

import qlax
from qlax.program import evaluation, memory
from qlax.program.trainer import make_train
from qlax.runs import rundir
from qlax.settings.config import TrainConfig
from qlax.tools import cli

SMALL = TrainConfig(num_envs=4, total_steps=800, chunk_steps=50, seeds=2, num_centers=16, buffer_size=500,
                    learning_starts=100, eval_episodes=3)


def plan_of(config: TrainConfig, members: int = 2, **options) -> memory.MemoryPlan:
    trainer = make_train(config)
    return memory.plan(trainer, rundir.member_template(trainer), members, "in this process", **options)


def test_memory_plan_counts_buffers_parameters_and_environments():
    plan = plan_of(SMALL)
    row = 2 * 4 + 3  # obs, next_obs (4 each), action, reward, terminated: one float32 each
    assert plan.row_bytes == row * 4 and plan.replay_rows == 500
    assert plan.replay == 500 * row * 4 + 2 * 4  # the rows, the insert position and the size
    weights = 16 * 2 + 16 * 4 + 1 + 2 * 4  # w, centers, sigma, the observation shift and scale
    assert plan.learner == 4 * (weights * 2 + 2 * weights + 1 + 1)  # params, target, Adam's mu and nu, counts
    assert plan.environment > 0 and plan.other > 0 and plan.window == 0 and plan.copy == 0
    assert plan.fixed == memory.RUNTIME and plan.total == memory.RUNTIME + 2 * plan.per_member
    assert plan.per_member == plan.state + max(plan.chunk, plan.evaluation)
    assert plan.update >= SMALL.batch_size * row * 4 + 3 * plan.learner  # a batch, gradients, new state
    assert memory.plan(make_train(SMALL), rundir.member_template(make_train(SMALL)), 2, "per device").fixed == 0


def test_the_plan_grows_with_each_part_it_counts():
    base = plan_of(SMALL)
    assert plan_of(SMALL.replace(eval_episodes=300)).evaluation > 50 * base.evaluation
    window = plan_of(SMALL.replace(n_step=1000))
    # n x envs x (obs and next_obs, action, reward, terminated, done, known), and the count pushed
    assert window.window == 1000 * 4 * (2 * 16 + 4 + 4 + 3) + 4 and window.window_copy == window.window
    assert window.total > base.total + 2 * 2 * window.window
    assert base.greedy == 0  # no greedy checks: early stop on the training average, no keep_best
    greedy = SMALL.replace(stop_on="greedy", stop_eval_episodes=200)
    assert 0 < plan_of(greedy).greedy < plan_of(greedy.replace(stop_eval_episodes=400)).greedy
    assert plan_of(SMALL.replace(keep_best=True)).greedy > 0
    assert plan_of(SMALL.replace(batch_size=256)).update > plan_of(SMALL).update
    assert plan_of(SMALL, copies_state=True).copy == base.state
    assert plan_of(SMALL, members=8).total - plan_of(SMALL, members=4).total == 4 * base.per_member


def test_a_distributional_loss_and_a_convolution_are_counted():
    c51 = plan_of(qlax.presets.load("cartpole-c51"))
    atoms = qlax.presets.load("cartpole-c51").num_atoms
    assert c51.update > c51.row_bytes * 64 + 64 * 4 * atoms ** 2  # every pair of a sample's atoms
    conv = plan_of(qlax.presets.load("breakout-minatar-pqn"))
    assert conv.update > 10 * 10 * 9 * 4 * 4  # the 3x3 patches of a 10x10x4 grid, per sample


@pytest.mark.parametrize("preset", ["cartpole-c51", "cartpole-qrdqn", "cartpole-iqn", "cartpole-dqn", "cartpole-mdqn"])
def test_each_algorithm_declares_the_pairs_its_loss_compares(preset):
    """The plan counts the pairs an algorithm declares: K x K for a distribution of K atoms or
    quantiles, as its network's outputs show (IQN's come with their fractions), none for a
    Q-value."""
    trainer = make_train(qlax.presets.load(preset))
    template = rundir.member_template(trainer)
    params = trainer.algorithm.params(template.agent)
    one = jax.ShapeDtypeStruct((1, *template.obs.shape[1:]), template.obs.dtype)
    outputs = jax.tree.leaves(jax.eval_shape(trainer.q_function.outputs, params, one))[0].shape
    distribution = outputs[-1] if len(outputs) == 3 else 0  # (1, actions[, K])
    assert trainer.algorithm.memory_parts(template.agent).loss_pairs == distribution ** 2


def test_evaluation_memory_stops_growing_past_one_round():
    per_episode = plan_of(SMALL.replace(eval_episodes=2 * evaluation.EVAL_BATCH)).evaluation - \
        plan_of(SMALL.replace(eval_episodes=evaluation.EVAL_BATCH)).evaluation
    assert per_episode == 16 * evaluation.EVAL_BATCH  # only returns and lengths: 8 bytes on the device, 8 on the host


def test_many_episodes_run_in_rounds(monkeypatch):
    monkeypatch.setattr(evaluation, "EVAL_BATCH", 4)
    trainer = make_train(SMALL)
    params = trainer.algorithm.params(jax.jit(trainer.init)(jax.random.key_data(jax.random.key(0)),
                                                            SMALL.hparams()).agent)
    key = jax.random.key_data(jax.random.key(1))
    returns, lengths = evaluation.make_evaluate(SMALL.env, trainer.q_function, 10)(key, params)
    assert returns.shape == lengths.shape == (10,) and np.all((returns >= 1) & (returns <= 500))
    np.testing.assert_array_equal(lengths, returns)  # CartPole pays 1 per step
    first, _ = evaluation.make_evaluate(SMALL.env, trainer.q_function, 4)(jax.random.split(key, 3)[0], params)
    np.testing.assert_array_equal(returns[:4], first)  # 10 episodes: 3 rounds of 4, each from its own key


@pytest.mark.parametrize("sets, setting", [
    (["n_step=1000000"], "% of it is the n-step window"),
])  # eval_episodes and stop_eval_episodes have ranges that bound their cost (tools/test_fuzz.py)
def test_absurd_settings_are_refused_in_one_line_before_compiling(tmp_path, capsys, sets, setting):
    out = tmp_path / "run"
    argv = ["train", "--max-memory", "8GB", "--out", str(out)] + [a for s in sets for a in ("--set", s)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("qlax: error: the population needs ") and "Traceback" not in err
    assert setting in err and f"shrink {sets[-1].split('=')[0]}, or the number of members" in err
    assert not out.exists()


def test_a_population_too_big_for_the_limit_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["sweep", "--grid", "lr=1e-3,1e-2", "--seeds", "64", "--max-memory", "1GB", "--out", str(out)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    plan = plan_of(qlax.presets.load("cartpole-rbf"), members=128)
    assert plan.replay > 100_000 * 44  # 128 members of 4.4 MB: about 570 MB, and the fixed part
    assert (f"the population needs {memory.size_text(plan.total)} in this process, more than the 1.0 GB "
            f"allowed (--max-memory): 128 members x") in err
    assert f"{plan.parts()['replay'][0] / plan.total:.0%} of it is the replay: shrink buffer_size" in err
    assert "Traceback" not in err
    assert not out.exists()
    assert cli.main(["train", "--max-memory", "lots"]) == 2
    assert "--max-memory = 'lots'" in capsys.readouterr().err


def test_a_limit_below_the_fixed_part_says_so(capsys):
    assert cli.main(["train", "--seeds", "1", "--max-memory", "100MB"]) == 2
    assert "The fixed part (JAX, XLA and compiling) alone is 800.0 MB: raise --max-memory" in capsys.readouterr().err


def test_default_memory_limit_is_most_of_the_host_ram():
    allowed, source = memory.limit(None)
    assert source == "80% of host RAM" and allowed == int(0.8 * memory.host_ram())
    assert memory.parse_size("2GiB") == 2**31 and memory.parse_size("1.5GB") == 1_500_000_000
