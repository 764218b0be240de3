"""Runs people keep: checkpoints, exact resume, interruption, divergence, plots, GIFs, policies."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

import qlax
from processes import interrupt_after, signal_when
from qlax.runs import checkpoint, experiment, plotting, rundir
from qlax.runs.policy import load_policy
from qlax.settings.config import ConfigError, TrainConfig
from qlax.tools import cli
from qlax.tools.render import render_episode

pytestmark = pytest.mark.slow  # every test here trains or starts processes

# Small, but long enough that seeds learn something and differ: 12 chunks of 50 vector steps.
CONFIG = TrainConfig(num_envs=4, total_steps=2400, chunk_steps=50, seeds=2, num_centers=32,
                     buffer_size=1000, learning_starts=100, eval_episodes=3, early_stop=False)


@pytest.fixture(scope="module")
def one_go(tmp_path_factory):
    out = tmp_path_factory.mktemp("one-go")
    return qlax.train(CONFIG, out=out, progress=False, checkpoint_every=3, keep=2)


@pytest.mark.parametrize("stop_after", [4, 9])
def test_interrupted_and_resumed_run_equals_one_go(one_go, tmp_path, monkeypatch, stop_after):
    out = tmp_path / "run"
    interrupt_after(monkeypatch, stop_after)
    stopped = qlax.train(CONFIG, out=out, progress=False, checkpoint_every=3, keep=2)
    monkeypatch.undo()
    assert stopped.interrupted and stopped.summary["solved"] is None
    assert json.loads((out / "summary.json").read_text())["interrupted"] is True
    # The chunk already in flight when the signal came is finished too, and its rows written.
    assert checkpoint.latest(out).name == f"chunk-{stop_after + 1:06d}"
    assert _rows(out / "metrics.csv") == (stop_after + 1) * CONFIG.seeds

    resumed = qlax.resume(out, progress=False)
    assert not resumed.interrupted
    for a, b in zip(jax.tree.leaves(resumed.state), jax.tree.leaves(one_go.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert (out / "metrics.csv").read_bytes() == (one_go.run_dir / "metrics.csv").read_bytes()
    timings = {"wall_s", "compile_s", "train_s", "env_steps_per_s"}
    ours = {k: v for k, v in json.loads((out / "summary.json").read_text()).items() if k not in timings}
    theirs = {k: v for k, v in json.loads((one_go.run_dir / "summary.json").read_text()).items() if k not in timings}
    assert ours == theirs


def test_a_finished_run_given_more_steps_equals_the_run_given_that_budget_at_once(one_go, tmp_path, capsys):
    out = tmp_path / "half"
    half = qlax.train(CONFIG.replace(total_steps=CONFIG.total_steps // 2), out=out, progress=False,
                      checkpoint_every=3, keep=2)
    assert not half.interrupted and qlax.resume(out, progress=False).already_finished
    assert cli.main(["resume", str(out), "--steps", str(CONFIG.total_steps // 4)]) == 2
    assert "a run's budget can grow, not shrink" in capsys.readouterr().err
    continued = qlax.resume(out, steps=CONFIG.total_steps, progress=False)
    for a, b in zip(jax.tree.leaves(continued.state), jax.tree.leaves(one_go.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for name in ("metrics.csv", "config.yaml"):
        assert (out / name).read_bytes() == (one_go.run_dir / name).read_bytes()
    assert [p.name for p in checkpoint.complete(out)] == ["chunk-000009", "chunk-000012"]
    timings = {"wall_s", "compile_s", "train_s", "env_steps_per_s"}
    assert {k: v for k, v in continued.summary.items() if k not in timings} == \
        {k: v for k, v in one_go.summary.items() if k not in timings}


def test_settings_by_observation_train_and_save_what_plain_settings_do(one_go, tmp_path):
    """A preset's `by_observation` settings for the env's kind (CartPole's: vector) are resolved
    when the run starts: it trains what the plain settings train and saves them plainly, so
    its run directory reads (and resumes) as any other."""
    out = tmp_path / "by-kind"
    by_kind = CONFIG.replace(num_centers=16, by_observation={"vector": {"num_centers": 32},
                                                              "grid": {"num_centers": 64}})
    result = qlax.train(by_kind, out=out, progress=False, checkpoint_every=3, keep=2)
    for a, b in zip(jax.tree.leaves(result.state), jax.tree.leaves(one_go.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert (out / "config.yaml").read_bytes() == (one_go.run_dir / "config.yaml").read_bytes()
    assert "by_observation: null" in (out / "config.yaml").read_text()


def test_a_run_whose_last_chunk_was_short_reaches_its_new_budget(tmp_path):
    out = tmp_path / "short"
    qlax.train(CONFIG.replace(total_steps=1100), out=out, progress=False)  # 5 chunks and a short sixth
    continued = qlax.resume(out, steps=CONFIG.total_steps, progress=False)
    assert continued.summary["env_steps"] == [CONFIG.total_steps] * 2


def test_where_a_run_stands_comes_from_its_checkpoint_not_its_summary(one_go, tmp_path, monkeypatch):
    out = tmp_path / "run"
    interrupt_after(monkeypatch, 4)
    qlax.train(CONFIG, out=out, progress=False, checkpoint_every=3, keep=2)
    monkeypatch.undo()
    summary = json.loads((out / "summary.json").read_text())
    (out / "summary.json").write_text(json.dumps({**summary, "interrupted": False}))  # a hand edit
    resumed = qlax.resume(out, progress=False)
    assert not resumed.already_finished and resumed.summary["env_steps"] == one_go.summary["env_steps"]
    assert (out / "metrics.csv").read_bytes() == (one_go.run_dir / "metrics.csv").read_bytes()


def test_a_new_run_starts_from_a_saved_runs_parameters(one_go, tmp_path, capsys):
    from qlax.runs.experiment import InitFrom, start

    saved = jax.tree.map(np.asarray, one_go.state.agent.learner.params)

    def assert_starts_from(run, rows):
        learner = run.state.agent.learner
        for params in (learner.params, learner.target_params):
            for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(saved)):
                np.testing.assert_array_equal(np.asarray(got)[:len(rows)], want[rows])

    assert_starts_from(start(CONFIG, init_from=one_go.run_dir), [0, 1])  # member for member
    assert_starts_from(start(CONFIG.replace(seeds=3), init_from=InitFrom(one_go.run_dir, member=1)), [1, 1, 1])
    with pytest.raises(ConfigError, match="it has 2 members and this run 3; name the one"):
        start(CONFIG.replace(seeds=3), init_from=one_go.run_dir)
    with pytest.raises(ConfigError, match=r"its Q-function \(linear_rbf on CartPole-v1: 4 observation entries, 2 "
                                          r"actions\) does not fit this run's"):
        start(CONFIG.replace(env="Acrobot-v1"), init_from=one_go.run_dir)
    out = tmp_path / "tuned"
    args = ["train", "--seeds", "2", "--steps", "400", "--set", "num_envs=4", "--set", "chunk_steps=50",
            "--set", "num_centers=32", "--set", "buffer_size=1000", "--set", "learning_starts=100",
            "--set", "eval_episodes=3", "--init-from", str(one_go.run_dir), "--out", str(out)]
    assert cli.main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["init_from"] == {"run_dir": str(one_go.run_dir), "best": False, "member": None}


def test_eval_names_its_checkpoint_and_refuses_one_older_than_the_metrics(one_go, tmp_path, capsys):
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(one_go.run_dir), str(copy)], check=True)
    assert cli.main(["eval", str(copy), "--episodes", "2"]) == 0
    assert "chunk-000012" in capsys.readouterr().out
    assert json.loads((copy / "eval.json").read_text())["checkpoint"] == "chunk-000012"
    subprocess.run(["rm", "-r", str(copy / "checkpoints" / "chunk-000012")], check=True)  # the newest, deleted
    assert cli.main(["eval", str(copy), "--episodes", "2"]) == 2
    err = capsys.readouterr().err
    assert "metrics.csv runs to chunk 12, but the newest checkpoint is chunk-000009" in err and err.count("\n") == 1
    assert cli.main(["eval", str(copy), "--episodes", "2", "--allow-older"]) == 0
    assert json.loads((copy / "eval.json").read_text())["checkpoint"] == "chunk-000009"


@pytest.mark.parametrize("edit, message", [
    (("config.yaml", "seeds: 2", "seeds: 3"), "saved by a run with other settings than this run directory's (seeds"),
    (("config.yaml", "env: CartPole-v1", "env: Acrobot-v1"), "saved by a run with other settings"),
    (("metrics.csv", "avg_return_100", "avg_ret"), "metrics.csv: its columns are"),
])
def test_plot_refuses_a_run_whose_files_do_not_belong_together(one_go, tmp_path, capsys, edit, message):
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(one_go.run_dir), str(copy)], check=True)
    name, old, new = edit
    (copy / name).write_text((copy / name).read_text().replace(old, new, 1))
    assert cli.main(["plot", str(copy), "--out", str(tmp_path / "curve.png")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "curve.png").exists()


def test_checkpoints_keep_the_last_k(one_go):
    names = [p.name for p in checkpoint.complete(one_go.run_dir)]
    assert names == ["chunk-000009", "chunk-000012"]  # every 3 chunks and at the end, 2 kept
    manifest = json.loads((one_go.run_dir / "checkpoints/chunk-000012/manifest.json").read_text())
    assert manifest["chunk"] == 12 and manifest["checkpoint_every"] == 3


def test_resuming_a_finished_run_changes_nothing(one_go, tmp_path, monkeypatch, capsys):
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(one_go.run_dir), str(copy)], check=True)
    saved = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in copy.rglob("*") if p.is_file()}
    monkeypatch.setattr(experiment, "population", lambda *args: pytest.fail("a finished run was compiled again"))
    again = qlax.resume(copy, progress=False)
    assert again.already_finished and again.summary == one_go.summary
    for a, b in zip(jax.tree.leaves(again.state), jax.tree.leaves(one_go.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    solved = sum(one_go.summary["solved"])
    assert cli.main(["resume", str(copy)]) == 0
    assert capsys.readouterr().out == f"{copy}: the run is finished (solved {solved}/2 seeds); nothing to resume\n"
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in copy.rglob("*") if p.is_file()} == saved


def test_train_in_python_refuses_a_directory_that_holds_a_run(one_go, monkeypatch):
    monkeypatch.setattr(experiment, "population", lambda *args: pytest.fail("compiled before refusing"))
    with pytest.raises(rundir.RunDirError, match=r"holds a run already .*\(Python: overwrite=True\)"):
        qlax.train(CONFIG, out=one_go.run_dir, progress=False)


def test_resuming_a_run_stopped_before_its_first_checkpoint_says_so(one_go, tmp_path, capsys):
    out = tmp_path / "run"  # what two Ctrl-C during compilation leave
    out.mkdir()
    (out / "config.yaml").write_bytes((one_go.run_dir / "config.yaml").read_bytes())
    (out / "metrics.csv").write_text((one_go.run_dir / "metrics.csv").read_text().splitlines()[0] + "\n")
    assert cli.main(["resume", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"qlax: error: {out}: the run was stopped before its first checkpoint, so there is nothing to resume or "
        f"evaluate; start it again with `qlax train ... --out {out} --overwrite`\n")


def test_an_unfinished_save_is_never_the_latest(one_go, tmp_path):
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(one_go.run_dir), str(copy)], check=True)
    (copy / "checkpoints" / ".tmp-chunk-000015").mkdir()  # what a kill during a save leaves
    assert checkpoint.latest(copy).name == "chunk-000012"


@pytest.mark.parametrize("damage", ["truncate", "bit flip", "mismatch", "manifest", "old format"])
def test_corrupted_or_mismatched_checkpoints_are_refused_clearly(one_go, tmp_path, damage):
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(one_go.run_dir), str(copy)], check=True)
    latest = checkpoint.latest(copy)
    state_file = latest / checkpoint.STATE_FILE
    if damage == "truncate":
        state_file.write_bytes(state_file.read_bytes()[:1000])
        expected = "state.msgpack: 1,000 bytes, the manifest says"
    elif damage == "bit flip":
        data = bytearray(state_file.read_bytes())
        data[-1] ^= 1
        state_file.write_bytes(bytes(data))
        expected = "its sha256 is not the manifest's: damaged or replaced"
    elif damage == "mismatch":  # the run's config no longer matches what was saved
        config = (copy / "config.yaml").read_text().replace("num_centers: 32", "num_centers: 33")
        (copy / "config.yaml").write_text(config)
        expected = "saved by a run with other settings than this run directory's (num_centers: 32 there, 33 here)"
    elif damage == "manifest":
        (latest / checkpoint.MANIFEST_FILE).write_text('{"format": "something-else"}')
        expected = "not a qlax checkpoint"
    else:  # an earlier qlax's checkpoint: its state has other fields, or it has no checksums
        (latest / checkpoint.MANIFEST_FILE).write_text('{"format": "qlax-checkpoint-v3"}')
        expected = ("written in checkpoint format 'qlax-checkpoint-v3'; this qlax reads 'qlax-checkpoint-v5' and "
                    "'qlax-checkpoint-v4'")
    with pytest.raises(checkpoint.CheckpointError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        qlax.resume(copy, progress=False)
    assert cli.main(["eval", str(copy)]) == 2


def test_a_diverging_seed_freezes_while_the_others_train():
    run = experiment.start(CONFIG)
    run_chunk = run.population.run_chunk
    state, _ = run_chunk(run.state)
    state, _ = run_chunk(state)  # past learning_starts
    w = state.agent.learner.params["w"].at[1].set(np.inf)  # seed 1's weights blow up
    state = state.replace(agent=state.agent.replace(learner=state.agent.learner.replace(
        params={**state.agent.learner.params, "w": w})))
    steps_before = np.asarray(state.vector_steps)
    state, metrics = run_chunk(state)
    assert metrics.diverged.tolist() == [False, True]
    # Seed 1 takes the one step whose update came out non-finite, rejects it, and stops there.
    assert np.asarray(state.vector_steps).tolist() == [steps_before[0] + 50, steps_before[1] + 1]
    assert np.all(np.isfinite(np.asarray(state.agent.learner.params["w"][0])))


def test_when_every_seed_diverges_the_run_stops_and_keeps_finite_checkpoints(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "seed", "--seeds", "2", "--steps", "8000", "--set", "num_envs=4", "--set", "lr=1e20",
            "--set", "learning_starts=100", "--set", "chunk_steps=100", "--set", "eval_episodes=2",
            "--out", str(out)]
    assert cli.main(argv) == 1
    assert "every member diverged" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["diverged"] == [True, True] and max(summary["env_steps"]) < 8000
    config = rundir.load_run_config(out)
    members = rundir.load_members(out)
    state, _ = checkpoint.load(checkpoint.latest(out), rundir.state_template(qlax.trainer.make_train(config), 2),
                               settings=rundir.run_settings(members))
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(state.agent.learner.params))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_finishes_the_chunk_saves_and_exits_128_plus_the_signal(tmp_path, sig):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "qlax.tools.cli", "train", "--seeds", "1", "--steps", "1600000", "--no-early-stop",
           "--set", "chunk_steps=50", "--set", "num_centers=16", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not _rows(out / "metrics.csv") >= 3:
        time.sleep(0.2)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, stderr
    assert "qlax resume" in stdout and "Traceback" not in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["env_steps"][0] < 1_600_000
    saved = checkpoint.latest(out)
    assert int(saved.name.split("-")[1]) == _rows(out / "metrics.csv")  # the checkpoint covers every row


def test_a_second_sigint_exits_at_once(tmp_path):
    out = tmp_path / "run"
    # Chunks of 800,000 env steps take seconds, so both signals land inside the second one.
    cmd = [sys.executable, "-m", "qlax.tools.cli", "train", "--seeds", "1", "--steps", "16000000", "--no-early-stop",
           "--set", "chunk_steps=50000", "--set", "num_centers=16", "--checkpoint-every", "1", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not checkpoint.complete(out):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in stderr and "Exception ignored" not in stderr
    assert f"second interrupt, exiting now; checkpoint chunk-000001 is saved in {out}" in stderr
    assert checkpoint.latest(out).name == "chunk-000001"  # the last good one is kept


def test_a_signal_during_the_final_evaluation_exits_at_once_and_keeps_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    # Two chunks of training, then a greedy evaluation of 100,000 episodes that takes seconds.
    cmd = [sys.executable, "-m", "qlax.tools.cli", "train", "--seeds", "1", "--steps", "400", "--set", "num_envs=4",
           "--set", "num_centers=8", "--set", "chunk_steps=50", "--set", "learning_starts=50",
           "--set", "buffer_size=200", "--set", "eval_episodes=100000", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    signal_when(proc, out / "checkpoints" / "chunk-000002" / checkpoint.MANIFEST_FILE, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in stderr and "Exception ignored" not in stderr
    assert stderr.endswith(f"\nqlax: interrupted by SIGINT; checkpoint chunk-000002 is saved in {out}; "
                           f"continue with: qlax resume {out}\n")
    assert not (out / "summary.json").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_the_command_imports_jax_exits_cleanly(sig):
    proc = subprocess.Popen([sys.executable, "-m", "qlax.tools.cli", "presets"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig and stdout == ""
    assert stderr == f"\nqlax: interrupted by {signal.Signals(sig).name}; nothing was saved\n"


@pytest.mark.slow
def test_a_signal_while_the_command_exits_never_kills_it_without_a_line():
    """Signals sent as the command exits (after its last line) until it has: it exits with its
    own code, or, where one came before it was done, with 128 + the signal and its line."""
    last = qlax.presets.names()[-1]
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGINT):
        proc = subprocess.Popen([sys.executable, "-m", "qlax.tools.cli", "presets"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        while not proc.stdout.readline().startswith(last):
            pass
        while proc.poll() is None:
            proc.send_signal(sig)
            time.sleep(0.001)
        stderr = proc.stderr.read()
        assert proc.returncode in (0, 128 + sig), (proc.returncode, stderr)
        assert stderr == ("" if proc.returncode == 0 else
                          f"\nqlax: interrupted by {signal.Signals(sig).name}; nothing was saved\n")


def _rows(metrics: Path) -> int:
    return max(len(metrics.read_text().splitlines()) - 1, 0) if metrics.is_file() else 0


def test_learning_curve_png(one_go, tmp_path):
    image = Image.open(one_go.run_dir / "learning_curve.png")  # written by train
    assert image.size[0] == 800
    out = tmp_path / "compare.png"
    assert cli.main(["plot", str(one_go.run_dir), str(one_go.run_dir), "--out", str(out)]) == 0
    assert Image.open(out).size[0] == 800
    steps, returns, column = plotting.read_curve(one_go.run_dir)
    assert steps.tolist() == [200 * (i + 1) for i in range(12)] and returns.shape == (12, 2)
    assert column == "avg_return_100"  # no greedy checks in this run
    ax = plotting.figure([one_go.run_dir]).axes[0]
    assert ax.get_ylabel() == "100-episode training average return" and "CartPole-v1" in ax.get_title()
    threshold = [line for line in ax.get_lines() if line.get_label() == "CartPole-v1 solved at 475"]
    assert len(threshold) == 1 and set(threshold[0].get_ydata()) == {475}


def test_render_writes_one_frame_per_step(one_go, tmp_path):
    out = tmp_path / "episode.gif"
    path, frames = render_episode(one_go.run_dir, seed=1, out=out)
    gif = Image.open(path)
    assert gif.n_frames == frames and gif.size == (600, 400)
    # The same episode, stepped by hand on the host with the loaded policy, has that many steps.
    policy, _ = load_policy(one_go.run_dir, seed=1)
    env, params = __import__("gymnax").make("CartPole-v1")
    k_reset, k_steps = jax.random.split(jax.random.PRNGKey(CONFIG.seed + 1))
    obs, state = env.reset(jax.random.split(k_reset, 1)[0], params)
    steps = 0
    for k in jax.random.split(k_steps, 500):
        obs, state, _, terminated, truncated, _ = env.step(jax.random.split(k, 1)[0], state, policy(obs), params)
        steps += 1
        if terminated or truncated:
            break
    assert frames == steps


def test_load_policy_extracts_one_seed(one_go):
    policy, params = load_policy(one_go.run_dir, seed=1)
    assert isinstance(params["w"], np.ndarray) and params["w"].shape == (32, 2)
    np.testing.assert_array_equal(params["w"], np.asarray(one_go.state.agent.learner.params["w"][1]))
    obs = np.zeros((5, 4), np.float32)
    assert policy(obs).shape == (5,) and int(policy(obs[0])) in (0, 1)
    with pytest.raises(qlax.ConfigError, match="seed = 2: out of range"):
        load_policy(one_go.run_dir, seed=2)
