"""The `qlax` command: the README's entry points and every kind of bad input."""

import json
import subprocess
import sys

import pytest

from qlax import cli, experiment


@pytest.fixture
def no_compile(monkeypatch):
    """Fail the test if a run gets as far as building the compiled program."""
    def refuse(trainer):
        raise AssertionError("bad input reached compilation")
    monkeypatch.setattr(experiment, "population", refuse)


BAD_INPUTS = [
    (["train", "no-such-preset"], "unknown preset 'no-such-preset'"),
    (["train", "--set", "gama=0.9"], "unknown setting 'gama' (did you mean 'gamma'?)"),
    (["train", "--set", "env=CartPole-v2"], "env = 'CartPole-v2': unknown environment id (did you mean 'CartPole-v1'?)"),
    (["train", "--set", "env=Pendulum-v1"], "continuous"),
    (["train", "--set", "env=" + "x" * 5000], "env = 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...xxxxxxxxxxxxx"),
    (["train", "--set", "lr=fast"], "lr = 'fast': expected a number"),
    (["train", "--set", "num_envs=2.5"], "num_envs = 2.5: expected an integer"),
    (["train", "--set", "early_stop=maybe"], "early_stop = 'maybe': expected true or false"),
    (["train", "--set", "num_envs=0"], "num_envs = 0: out of range, allowed >= 1"),
    (["train", "--set", "gamma=1.5"], "gamma = 1.5: out of range, allowed [0, 1]"),
    (["train", "--set", "gamma=-0.1"], "gamma = -0.1: out of range, allowed [0, 1]"),
    (["train", "--set", "eps_start=2"], "eps_start = 2.0: out of range, allowed [0, 1]"),
    (["train", "--set", "eps_end=-1"], "eps_end = -1.0: out of range, allowed [0, 1]"),
    (["train", "--set", "lr=0"], "lr = 0.0: out of range, allowed > 0"),
    (["train", "--set", "loss=l1"], "loss = 'l1': must be one of squared, huber"),
    (["train", "--set", "batch_size=256", "--set", "buffer_size=100"], "batch_size (256) exceeds buffer_size (100)"),
    (["train", "--steps", "500"], "learning_starts (1000) exceeds total_steps (500)"),
    (["train", "--seeds", "0"], "seeds = 0: out of range, allowed >= 1"),
    (["train", "--set", "lr"], "--set 'lr': expected key=value"),
    (["train", "--set", "gradient=residual"], "needs target 'online'"),
    (["train", "--set", "stop_on=never"], "stop_on = 'never': must be one of train_average, greedy"),
    (["train", "--set", "obs_low=[1, 2]", "--set", "obs_high=[3, 4]"],
     "obs_low = [1.0, 2.0]: env 'CartPole-v1' needs 4 numbers"),
    (["train", "--set", "obs_scaling=none"], "obs_low/obs_high are set but obs_scaling = 'none' ignores bounds"),
    (["train", "--set", "exploration=ez_greedy", "--set", "ez_mu=1"], "ez_mu = 1.0: out of range, allowed > 1"),
    (["train", "--max-memory", "12 parsecs"], "--max-memory = '12 parsecs': expected a size such as 8GB"),
    (["train", "--coordinator", "127.0.0.1:1"], "--coordinator, --num-processes and --process-id go together"),
    (["train", "--distributed", "--process-id", "0"], "--distributed detects the cluster itself"),
    (["sweep", "--grid", "batch_size=16,32"], "--grid batch_size: a static setting"),
]


@pytest.mark.parametrize("argv,message", BAD_INPUTS, ids=[" ".join(a[1:])[:60] for a, _ in BAD_INPUTS])
def test_bad_input_exits_2_with_one_clear_line(argv, message, capsys, no_compile, tmp_path):
    out = tmp_path / "run"
    assert cli.main(argv + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("qlax: error: ") and err.count("\n") == 1 and len(err.encode()) < 500
    assert not out.exists()  # nothing written


def test_bad_input_from_the_shell_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "qlax.cli", "train", "--set", "gamma=2"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "gamma = 2.0: out of range" in proc.stderr


def test_train_then_eval_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--seeds", "2", "--steps", "3200", "--set", "learning_starts=320",
            "--set", "eval_episodes=3", "--set", "chunk_steps=50", "--out", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "solved" in printed and "seed   1: mean return" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] == [3200, 3200] and summary["num_seeds"] == 2
    assert len(summary["solved"]) == 2 and len(summary["eval_mean_return"]) == 2
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + 2 * 4  # 200 vector steps / 50

    assert cli.main(["eval", str(out), "--episodes", "4"]) == 0
    assert "over 4 episodes" in capsys.readouterr().out
    evaluation = json.loads((out / "eval.json").read_text())
    assert evaluation["episodes"] == 4 and len(evaluation["mean_return"]) == 2
    for key in ("std_return", "min_return", "max_return"):
        assert len(evaluation[key]) == 2


def test_eval_of_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert cli.main(["eval", str(tmp_path)]) == 2
    assert "not a qlax run directory" in capsys.readouterr().err


def test_presets_list_and_show(capsys):
    assert cli.main(["presets"]) == 0
    listing = capsys.readouterr().out
    assert "cartpole-rbf (default)" in listing and "seed" in listing
    assert cli.main(["presets", "--show", "seed"]) == 0
    shown = capsys.readouterr().out
    for line in ("gradient:          residual", "target:            online", "eps_decay:         0.999 ",
                 "total_steps:       160000", "loss:              squared", "truncation:        terminal"):
        assert line in shown, line


def test_envs_lists_supported_ids_with_their_presets(capsys):
    assert cli.main(["envs"]) == 0
    listing = capsys.readouterr().out
    cartpole = next(line for line in listing.splitlines() if line.startswith("CartPole-v1"))
    assert "475" in cartpole and "cartpole-rbf" in cartpole and "seed" in cartpole
    assert "Pendulum-v1                not supported: its action space is continuous" in listing
    assert "10x10x4" in listing  # a MinAtar image, as gymnax emits it
