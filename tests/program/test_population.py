"""Populations: dynamic settings without recompiles, sweeps, devices, processes."""

import csv
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import qlax
from qlax.program.placement import place
from qlax.runs import checkpoint, experiment
from qlax.settings.config import DYNAMIC_SETTINGS, TrainConfig
from qlax.tools import cli

pytestmark = pytest.mark.slow  # every test here trains or starts processes

SMALL = TrainConfig(num_envs=4, total_steps=800, chunk_steps=50, seeds=2, num_centers=16, buffer_size=500,
                    learning_starts=100, eval_episodes=3)
SMALL_SETS = ["--steps", "800", "--set", "num_envs=4", "--set", "chunk_steps=50", "--set", "num_centers=16",
              "--set", "buffer_size=500", "--set", "learning_starts=100", "--set", "eval_episodes=3"]


def compile_counter() -> list:
    """A list that grows by one for every XLA compilation from now on."""
    compiled = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, secs, **kw: compiled.append(event) if event == "/jax/core/compile/backend_compile_duration"
        else None)
    return compiled


def test_changing_dynamic_settings_compiles_nothing():
    first = qlax.train(SMALL, progress=False)
    compiled = compile_counter()
    changed = SMALL.replace(lr=2e-2, gamma=0.9, sigma=0.3, eps_start=0.8, eps_end=0.05, eps_decay=0.99,
                            target_period=7, huber_delta=2.0, max_grad_norm=1.0, init_scale=0.5,
                            learning_starts=60)
    second = qlax.train(changed, progress=False)
    assert compiled == []  # the same program, the same evaluation: nothing compiled again
    hp = second.state.hparams
    assert np.allclose(hp.lr, 2e-2) and np.allclose(hp.sigma, 0.3) and np.all(hp.target_period == 7)
    assert np.allclose(second.state.agent.learner.params["sigma"], 0.3)  # and it took effect
    assert not np.allclose(first.state.agent.learner.params["w"], second.state.agent.learner.params["w"])


@pytest.fixture(scope="module")
def lr_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    return qlax.sweep(SMALL, {"lr": [5e-3, 2e-2], "gamma": [0.95, 0.99]}, out=out, progress=False)


def assert_same_training(ours, theirs):
    """Integer and boolean state (steps, actions taken, episode counts, buffer rows written) equal;
    floats equal up to rounding: XLA may order a sum differently for another number of
    members per device, which moves the last bit."""
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        a, b = np.asarray(a), np.asarray(b)
        if np.issubdtype(a.dtype, np.floating):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(a, b)


def test_a_sweep_member_trains_as_a_run_of_its_setting(lr_sweep):
    alone = qlax.train(SMALL.replace(lr=2e-2, gamma=0.95), progress=False)
    members = lr_sweep.members
    rows = [members.member(2, seed) for seed in range(2)]  # setting 2: lr 0.02, gamma 0.95
    assert members.settings[2] == {"lr": 2e-2, "gamma": 0.95}
    assert_same_training(jax.tree.map(lambda leaf: np.asarray(leaf)[rows], lr_sweep.state), alone.state)
    np.testing.assert_allclose(lr_sweep.eval_mean_return[rows[0]:rows[-1] + 1], alone.eval_mean_return, atol=1e-3)


def test_members_due_different_updates_train_as_runs_of_their_setting():
    """A round every 2 vector steps, so an update runs only where some member is due it
    (`algorithms.any_member`): the member still warming up computes the other's and drops
    them, and each trains as it does alone, where its own cadence is all that runs."""
    config = SMALL.replace(train_freq=8, gradient_steps=2, total_steps=400)
    swept = qlax.sweep(config, {"learning_starts": [100, 300]}, progress=False)
    updates = []
    for setting, learning_starts in enumerate((100, 300)):
        alone = qlax.train(config.replace(learning_starts=learning_starts), progress=False)
        rows = [swept.members.member(setting, seed) for seed in range(2)]
        assert_same_training(jax.tree.map(lambda leaf: np.asarray(leaf)[rows], swept.state), alone.state)
        updates.append(np.asarray(alone.state.agent.learner.updates).tolist())
    # 100 vector steps of 4 envs, a round of 2 every 8 env steps once the buffer holds learning_starts
    assert updates == [[2 * (50 - 12)] * 2, [2 * (50 - 37)] * 2]


def test_a_sweep_writes_members_settings_and_a_table(lr_sweep):
    run_dir = lr_sweep.run_dir
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["num_members"] == 8 and summary["num_settings"] == 4 and summary["num_seeds"] == 2
    assert [m["member"] for m in summary["members"]] == list(range(8))
    assert [(m["lr"], m["gamma"], m["seed"]) for m in summary["members"][:3]] == [
        (5e-3, 0.95, 0), (5e-3, 0.95, 1), (5e-3, 0.99, 0)]
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:4] == ["member", "seed", "lr", "gamma"]
    assert len(rows) == 8 * 4  # 4 chunks of 50 vector steps of 4 envs
    assert {(r["member"], r["lr"], r["gamma"]) for r in rows[-8:]} == {
        (str(m["member"]), str(m["lr"]), str(m["gamma"])) for m in summary["members"]}
    with (run_dir / "sweep.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [(float(r["lr"]), float(r["gamma"])) for r in table] == [(5e-3, 0.95), (5e-3, 0.99), (2e-2, 0.95),
                                                                    (2e-2, 0.99)]
    for s, row in enumerate(table):  # recomputed from the members' own numbers
        means = [m["eval_mean_return"] for m in summary["members"] if m["setting"] == s]
        assert float(row["mean_return"]) == pytest.approx(np.mean(means), abs=1e-3)
        assert float(row["stderr_return"]) == pytest.approx(np.std(means, ddof=1) / math.sqrt(2), abs=1e-3)
        solved = [m["solved"] for m in summary["members"] if m["setting"] == s]
        assert float(row["solved_fraction"]) == pytest.approx(np.mean(solved))


def test_sweep_command_shows_the_best_setting(tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["sweep", "--grid", "lr=1e-3,1e-2", "--seeds", "2", *SMALL_SETS, "--out", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "best lr=" in printed  # on every progress line
    assert "lr=0.001" in printed and "lr=0.01" in printed and "solved" in printed
    assert (out / "grid.yaml").is_file() and (out / "sweep.csv").is_file()
    assert cli.main(["eval", str(out), "--episodes", "2"]) == 0  # a sweep reloads like any run
    assert len(json.loads((out / "eval.json").read_text())["mean_return"]) == 4


@pytest.mark.parametrize("grid,expected", [
    ("num_envs=4,8", "--grid num_envs: a static setting"),
    ("hidden_sizes=8", "--grid hidden_sizes: a static setting"),
    ("lrr=0.1", "unknown setting 'lrr' (did you mean 'lr'?)"),
    ("gamma=0.9,1.5", "gamma = 1.5: out of range, allowed [0, 1]"),
    ("lr", "--grid 'lr': expected key=value,value"),
])
def test_bad_grids_are_refused_before_anything_runs(tmp_path, capsys, grid, expected):
    out = tmp_path / "run"
    assert cli.main(["sweep", "--grid", grid, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    if "static" in expected:
        assert "settings that can be swept: " + ", ".join(DYNAMIC_SETTINGS) in err
    assert not out.exists()


# Runs in separate processes: the number of JAX devices is fixed when JAX starts.

def with_devices(devices: int) -> str:
    """XLA_FLAGS for a child process with `devices` CPU devices, keeping the suite's own flags."""
    return f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()


def run_qlax(args: list[str], devices: int, extra_env: dict | None = None, **popen) -> subprocess.Popen:
    env = {**os.environ, "XLA_FLAGS": with_devices(devices), **(extra_env or {})}
    return subprocess.Popen([sys.executable, "-m", "qlax.tools.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def finished(proc: subprocess.Popen) -> str:
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    return stdout


def results(run_dir: Path) -> tuple[str, dict]:
    """(metrics.csv, summary.json without timings and layout): what must not depend on devices."""
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("wall_s", "compile_s", "train_s", "env_steps_per_s", "devices", "processes"):
        summary.pop(key)
    return (run_dir / "metrics.csv").read_text(), summary


SWEEP = ["sweep", "--grid", "lr=5e-3,2e-2", "--grid", "gamma=0.9,0.95,0.99", *SMALL_SETS]


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
    """6 members (6 settings x 1 seed) on one device: the reference."""
    out = tmp_path_factory.mktemp("one-device")
    finished(run_qlax([*SWEEP, "--seeds", "1", "--out", str(out)], devices=1))
    return out


def test_four_devices_spread_the_members_and_give_the_same_results(one_device, tmp_path):
    out = tmp_path / "four"
    stdout = finished(run_qlax([*SWEEP, "--seeds", "1", "--out", str(out)], devices=4))
    assert "6 members do not divide among 4 devices: padded with 2 copies of the last member" in stdout
    assert results(out) == results(one_device)
    assert json.loads((out / "summary.json").read_text())["devices"] == 4
    manifest = json.loads((checkpoint.latest(out) / checkpoint.MANIFEST_FILE).read_text())
    assert manifest["layout"] == {"platform": "cpu", "device_kind": "cpu", "devices": 4, "processes": 1, "padded": 8}


def test_each_device_holds_its_share_of_the_members():
    """The member axis is split over the devices, not copied to each (this process has 2)."""
    assert jax.device_count() == 2
    run = experiment.start(TrainConfig(num_envs=4, total_steps=800, seeds=8, num_centers=16, buffer_size=500,
                                       learning_starts=100))
    w = run.state.agent.learner.params["w"]
    assert len(w.sharding.device_set) == 2 and sorted(s.data.shape[0] for s in w.addressable_shards) == [4, 4]


def test_resuming_on_another_device_layout_says_it_will_not_be_bit_exact():
    here = place(3)
    assert here.layout_change(here.layout) is None and here.layout_change(None) is None  # none recorded: silent
    saved = {**here.layout, "devices": here.devices + 1, "padded": here.padded + 5}
    assert here.layout_change(saved) == (
        f"note: this run was saved on another device layout (devices {here.devices + 1} -> {here.devices}, padded "
        f"{here.padded + 5} -> {here.padded}); it goes on correctly, but not bit for bit as it would have on its own "
        f"layout")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_one_population_and_process_0_writes_it(one_device, tmp_path):
    out = tmp_path / "two-hosts"
    coordinator = ["--coordinator", f"127.0.0.1:{free_port()}", "--num-processes", "2"]
    procs = [run_qlax([*SWEEP, "--seeds", "1", "--out", str(out), *coordinator, "--process-id", str(i)],
                      devices=2) for i in range(2)]
    outputs = [finished(p) for p in procs]
    assert re.search(r"solved \d/6 members", outputs[0])
    assert "memory:" not in outputs[1] and "solved" not in outputs[1]  # process 0 reports, process 1 is quiet
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["devices"] == 4
    assert sorted(m["member"] for m in summary["members"]) == list(range(6))  # every member exactly once
    assert results(out) == results(one_device)
    latest = sorted((out / "checkpoints").iterdir())[-1]
    assert sorted(p.name for p in latest.iterdir()) == ["manifest.json", "state.0-of-2.msgpack",
                                                        "state.1-of-2.msgpack"]
    # Each process reloads its own slice: the finished run resumes to the same results.
    coordinator = ["--coordinator", f"127.0.0.1:{free_port()}", "--num-processes", "2"]
    for proc in [run_qlax(["resume", str(out), *coordinator, "--process-id", str(i)], devices=2) for i in range(2)]:
        finished(proc)
    assert results(out) == results(one_device)


def test_an_interrupted_sweep_resumes_to_the_run_done_in_one_go(lr_sweep, tmp_path, monkeypatch):
    out = tmp_path / "sweep"
    shown = []

    def update(self, *args):  # a real SIGINT once two chunks have been shown
        shown.append(1)
        if len(shown) == 2:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(experiment.ProgressDisplay, "update", update)
    stopped = qlax.sweep(SMALL, {"lr": [5e-3, 2e-2], "gamma": [0.95, 0.99]}, out=out, progress=False,
                         checkpoint_every=1)
    monkeypatch.undo()
    assert stopped.interrupted and stopped.summary["settings"] is None
    resumed = qlax.resume(out, progress=False)
    for ours, theirs in zip(jax.tree.leaves(resumed.state), jax.tree.leaves(lr_sweep.state)):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    assert (out / "metrics.csv").read_text() == (lr_sweep.run_dir / "metrics.csv").read_text()
    assert (out / "sweep.csv").read_text() == (lr_sweep.run_dir / "sweep.csv").read_text()
