"""The `qlax` command: the README's entry points and every kind of bad input."""

import argparse
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import qlax
from qlax.runs import experiment, rundir
from qlax.settings.config import TrainConfig
from qlax.tools import cli

# A run that compiles and finishes in seconds: 2 chunks of 50 vector steps of 4 envs.
TINY = ["--seeds", "1", "--steps", "400", "--set", "num_envs=4", "--set", "num_centers=8", "--set", "chunk_steps=50",
        "--set", "eval_episodes=2", "--set", "learning_starts=50", "--set", "buffer_size=200"]


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


@pytest.mark.slow
def test_bad_input_from_the_shell_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "qlax.tools.cli", "train", "--set", "gamma=2"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "gamma = 2.0: out of range" in proc.stderr


@pytest.mark.slow
def test_train_then_eval_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()  # an existing empty directory is fine
    argv = ["train", "--seeds", "2", "--steps", "3200", "--set", "learning_starts=320",
            "--set", "eval_episodes=3", "--set", "chunk_steps=50", "--out", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "solved" in printed and "seed   1: mean return" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] == [3200, 3200] and summary["num_seeds"] == 2
    assert len(summary["solved"]) == 2 and len(summary["eval_mean_return"]) == 2
    assert summary["eval_time_limit"] == 500  # CartPole-v1's
    assert all(1 <= m <= 500 for m in summary["eval_mean_length"])
    assert all(0 <= n <= 3 for n in summary["eval_at_time_limit"])
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + 2 * 4  # 200 vector steps / 50

    assert cli.main(["eval", str(out), "--episodes", "4"]) == 0
    assert "over 4 episodes" in capsys.readouterr().out
    evaluation = json.loads((out / "eval.json").read_text())
    assert evaluation["episodes"] == 4 and len(evaluation["mean_return"]) == 2
    for key in ("std_return", "min_return", "max_return", "mean_length", "at_time_limit"):
        assert len(evaluation[key]) == 2
    assert evaluation["time_limit"] == 500
    # CartPole pays 1 per step: each mean return is the mean length
    np.testing.assert_allclose(evaluation["mean_length"], evaluation["mean_return"], rtol=1e-6)


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


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out == f"qlax {qlax.__version__}\n"
    parser = cli.make_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, command in [("qlax", parser), *commands.items()]:
        for action in command._actions:
            assert action.help, f"{name}: {'/'.join(action.option_strings) or action.dest} has no help"


@pytest.mark.slow
def test_presets_piped_into_a_closed_reader_exit_quietly():
    # `qlax presets | head -1`: the reader is gone before qlax writes (it closes at once here).
    proc = subprocess.Popen([sys.executable, "-m", "qlax.tools.cli", "presets"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 0 and stderr == ""


def test_a_mistyped_preset_gets_a_suggestion(capsys):
    assert cli.main(["train", "cartpole-dq"]) == 2
    assert "unknown preset 'cartpole-dq' (did you mean 'cartpole-dqn'?)" in capsys.readouterr().err


def test_the_default_run_directory_names_an_env_the_preset_did_not_choose(monkeypatch, capsys):
    chosen = []
    monkeypatch.setattr(cli, "train", lambda config, **options: chosen.append(options["out"]))
    monkeypatch.setattr(cli, "report", lambda result: 0)
    cli.main(["train", "acrobot-rbf", "--set", "env=MountainCar-v0"])
    cli.main(["train", "acrobot-rbf", "--set", "env=Acrobot-v1"])
    assert re.fullmatch(r"runs/acrobot-rbf-MountainCar-v0-\d{8}-\d{6}", str(chosen[0]))
    assert re.fullmatch(r"runs/acrobot-rbf-\d{8}-\d{6}", str(chosen[1]))


def old_run(out):
    """A run directory as a finished run leaves it (contents made up), and a file of the user's."""
    (out / "checkpoints" / "chunk-000099").mkdir(parents=True)
    (out / "checkpoints" / "chunk-000099" / "manifest.json").write_text("{}")
    for name in ("config.yaml", "grid.yaml", "metrics.csv", "summary.json", "sweep.csv", "eval.json",
                 "learning_curve.png", "episode-seed0.gif", "notes.txt"):
        (out / name).write_text(f"old {name}")


def file_contents(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def place_file(tmp_path):
    (tmp_path / "README.md").write_text("not a directory")
    return tmp_path / "README.md"


def place_checkpoints_file(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoints").write_text("not a directory")
    return tmp_path / "run"


def place_old_run(tmp_path):
    (tmp_path / "run").mkdir()
    old_run(tmp_path / "run")
    return tmp_path / "run"


def place_read_only_parent(tmp_path):
    (tmp_path / "parent").mkdir(mode=0o555)
    return tmp_path / "parent" / "run"


RUN_DIR_REFUSALS = [
    (place_file, "README.md: exists and is not a directory"),
    (lambda tmp_path: "/proc/qlax-run", "/proc/qlax-run: cannot create the run directory (No such file or directory)"),
    (lambda tmp_path: "", "out = '': an empty path"),
    (place_checkpoints_file, "run/checkpoints: exists and is not a directory; qlax saves checkpoints there"),
    (place_old_run, "run: holds a run already (config.yaml, metrics.csv, summary.json, checkpoints); continue it "
                    "with `qlax resume {out}`, or replace it with --overwrite"),
    pytest.param(place_read_only_parent, "run: cannot create the run directory (Permission denied)",
                 marks=pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only directories")),
]


@pytest.mark.parametrize("place,message", RUN_DIR_REFUSALS,
                         ids=["a file", "/proc", "empty", "checkpoints a file", "a run", "read-only parent"])
def test_an_unusable_run_directory_is_refused_before_compiling(place, message, tmp_path, capsys, no_compile):
    out = place(tmp_path)
    before = file_contents(tmp_path)
    for command in (["train", *TINY], ["sweep", "--grid", "lr=1e-3,2e-3", *TINY]):
        assert cli.main(command + ["--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message.format(out=out) in err
        assert err.startswith("qlax: error: ") and err.count("\n") == 1
    assert file_contents(tmp_path) == before  # nothing changed, nothing added


@pytest.mark.slow
def test_overwrite_replaces_the_whole_old_run(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    old_run(out)
    assert cli.main(["train", *TINY, "--out", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints", "config.yaml", "learning_curve.png",
                                                      "metrics.csv", "notes.txt", "summary.json"]
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["chunk-000002"]
    assert json.loads((out / "summary.json").read_text())["env_steps"] == [400]
    assert (out / "notes.txt").read_text() == "old notes.txt"  # not a file of the run


HOLD_THE_LOCK = ("import sys, time; from qlax.runs.rundir import claim\n"
                 "with claim(sys.argv[1]):\n    print('locked', flush=True); time.sleep(600)")


@pytest.mark.slow
def test_one_qlax_process_at_a_time_in_a_run_directory(tmp_path, capsys, no_compile):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        (out / "config.yaml").write_text(json.dumps(TrainConfig(num_envs=4, num_centers=8).to_dict()))
        assert [p.name for p in out.iterdir()] == ["config.yaml"]  # no lock file that deleting would defeat
        for command in (["train", *TINY, "--out", str(out)], ["train", *TINY, "--out", str(out), "--overwrite"],
                        ["resume", str(out)]):
            assert cli.main(command) == 2
            err = capsys.readouterr().err
            assert f"qlax: error: {out}: another qlax process is using this run directory" in err
            assert err.count("\n") == 1
    finally:
        holder.kill()  # SIGKILL: no clean-up runs
        holder.wait()
    with rundir.claim(out, overwrite=True):  # the lock died with its process
        assert not (out / "config.yaml").exists()


@pytest.mark.slow  # a subprocess each
@pytest.mark.parametrize("setting, expected", [("{tmp}", "{tmp}"), ("off", "None"), (None, "{home}/.cache/qlax/jax")])
def test_the_compilation_cache_is_on_by_default_and_follows_its_setting(tmp_path, setting, expected):
    env = {k: v for k, v in os.environ.items() if k not in ("QLAX_COMPILATION_CACHE", "XDG_CACHE_HOME")}
    env["HOME"] = str(tmp_path / "home")
    if setting is not None:
        env["QLAX_COMPILATION_CACHE"] = setting.format(tmp=tmp_path / "cache")
    code = "import qlax, jax; print(jax.config.jax_compilation_cache_dir)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == expected.format(tmp=tmp_path / "cache", home=tmp_path / "home")


@pytest.mark.parametrize("value", ["abc", "", "1.5", "1e3", "0", "-2", "99999"])
def test_a_bad_qlax_cpu_devices_is_one_line_for_every_command(value, monkeypatch, capsys):
    monkeypatch.setenv("QLAX_CPU_DEVICES", value)
    assert cli.main(["presets"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qlax: error: QLAX_CPU_DEVICES = ") and "from 1 to 4096" in err and err.count("\n") == 1


@pytest.mark.parametrize("args, message", [
    (["--coordinator", "host:notaport", "--num-processes", "2", "--process-id", "0"], "expected HOST:PORT"),
    (["--coordinator", "127.0.0.1:99999", "--num-processes", "2", "--process-id", "0"], "a port from 1 to 65535"),
    (["--coordinator", "127.0.0.1:9999", "--num-processes", "2", "--process-id", "2"], "--process-id 2: out of range"),
    (["--coordinator", "127.0.0.1:9999", "--num-processes", "0", "--process-id", "0"], "--num-processes 0: out of"),
])
def test_a_bad_coordinator_is_one_line_before_joining(args, message, tmp_path, capsys):
    assert cli.main(["train", "--out", str(tmp_path / "run"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "run").exists()


def test_members_whose_every_greedy_episode_ran_to_the_time_limit_are_named_unless_they_solved():
    solved = [False, False, True, False]
    assert cli.time_limit_note([20, 19, 20, 0], solved, 20, 4000, "seeds") == (
        "seeds 0: every greedy episode ran to the 4,000-step time limit; unless lasting is the task, the policy may "
        "be going round in circles (qlax render shows one)")
    assert cli.time_limit_note([2, 2], [False, False], 2, 500, "members").startswith("members 0, 1: every greedy")
    assert cli.time_limit_note([19, 0, 20, 3], solved, 20, 4000, "seeds") is None
    assert cli.time_limit_note(None, solved, 20, None, "seeds") is None  # a Gymnasium env without a time limit
