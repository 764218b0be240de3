"""Experiment tracking: TensorBoard events read back with TensorBoard's own reader, and the
W&B offline run's history read back from its log, against metrics.csv."""

import csv
import json
import struct

import numpy as np
import pytest

import qlax
from qlax.settings.config import TrainConfig
from qlax.tools import cli

CONFIG = TrainConfig(num_envs=4, total_steps=600, chunk_steps=50, seeds=2, num_centers=8, buffer_size=200,
                     learning_starts=50, eval_episodes=2, early_stop=False)


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    out = tmp_path_factory.mktemp("tracked")
    qlax.train(CONFIG, out=out, progress=False, log=("tensorboard", "wandb"))
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    return out, rows


@pytest.mark.slow  # trains
def test_tensorboard_events_hold_every_chunk_and_the_config(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, rows = tracked
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    for seed in ("0", "1"):
        logged = [(e.step, e.value) for e in events.Scalars(f"avg_return_100/seed_{seed}")]
        own = [r for r in rows if r["seed"] == seed and r["avg_return_100"] != "nan"]
        assert [s for s, _ in logged] == [int(r["env_steps"]) for r in own]
        assert [v for _, v in logged] == pytest.approx([float(r["avg_return_100"]) for r in own], rel=1e-5)
    assert "epsilon/seed_1" in scalars and "population/env_steps_per_s" in scalars
    assert len(events.Scalars("population/env_steps_per_s")) == 3  # 150 vector steps: 3 chunks
    for tag, column in (("train/n_updates", "updates"), ("rollout/ep_len_mean", "episode_length"),
                        ("train/learning_rate", "learning_rate")):  # SB3's names: the seeds' mean
        logged = [e.value for e in events.Scalars(tag)]
        expected = [np.mean([float(r[column]) for r in rows if r["env_steps"] == steps])
                    for steps in sorted({r["env_steps"] for r in rows}, key=int)]
        assert logged == pytest.approx(expected, rel=1e-5) and len(logged) == 3
    assert [e.value for e in events.Scalars("updates/seed_1")] == \
        [float(r["updates"]) for r in rows if r["seed"] == "1"]
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")


def wandb_records(path):
    """The records of a W&B run log: a ':W&B' header, then LevelDB-style log blocks of 32 KiB
    whose records (checksum, length, kind) may be split across blocks."""
    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    position, pending = 7, b""
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's zero-filled tail
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        body, position = data[position + 7:position + 7 + length], position + 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            yield pending + body
            pending = b""
        elif kind in (2, 3):  # the first or a middle piece
            pending += body


@pytest.mark.slow  # trains
def test_wandb_offline_history_holds_every_chunk(tracked):
    from wandb.proto import wandb_internal_pb2

    out, rows = tracked
    [log] = list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    history, config = [], {}
    for data in wandb_records(log):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "history":
            history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                            for item in record.history.item})
        elif record.WhichOneof("record_type") in ("run", "config"):
            updates = record.run.config.update if record.HasField("run") else record.config.update
            config.update({item.key: json.loads(item.value_json) for item in updates})
    steps = [h["_step"] for h in history]
    assert steps == sorted({int(r["env_steps"]) for r in rows})
    assert [h["epsilon/seed_0"] for h in history] == pytest.approx(
        [float(r["epsilon"]) for r in rows if r["seed"] == "0"], rel=1e-5)
    assert config["num_centers"] == 8 and config["lr"] == CONFIG.lr


def test_trackers_are_checked_before_anything_runs(tmp_path, capsys):
    assert cli.main(["train", "--log", "mlflow", "--out", str(tmp_path / "run")]) == 2
    assert "--log mlflow: must be one of tensorboard, wandb" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    with pytest.raises(qlax.ConfigError, match="give an output directory"):
        qlax.train(CONFIG, progress=False, log=("tensorboard",))


def test_a_chunk_logs_the_populations_mean_median_and_iqr_and_sb3s_names():
    from types import SimpleNamespace

    from qlax.runs import tracking
    from qlax.settings.sweep import Members

    rng = np.random.default_rng(0)
    returns = rng.normal(100, 30, size=32)
    returns[3] = np.nan  # a member without a finished episode yet is left out
    lengths = np.where(np.isfinite(returns), rng.integers(10, 500, size=32), np.nan)
    metrics = SimpleNamespace(avg_return_100=returns, greedy_return=np.full(32, np.nan), loss=rng.random(32),
                              epsilon=np.full(32, 0.1), episodes=np.arange(32.0), stopped=np.zeros(32, bool),
                              episode_length=lengths, updates=np.arange(32) * 100, learning_rate=np.full(32, 5e-4))
    scalars = tracking.chunk_scalars(metrics, Members(TrainConfig(seeds=32)), 1234.0)
    finite = returns[np.isfinite(returns)]
    assert scalars["population/avg_return_100/mean"] == pytest.approx(finite.mean())
    assert scalars["population/avg_return_100/median"] == pytest.approx(np.median(finite))
    assert scalars["population/avg_return_100/iqr"] == pytest.approx(np.subtract(*np.percentile(finite, [75, 25])))
    assert scalars["rollout/ep_rew_mean"] == scalars["population/avg_return_100/mean"]
    assert scalars["rollout/exploration_rate"] == pytest.approx(0.1) and scalars["time/fps"] == 1234.0
    assert scalars["train/loss"] == pytest.approx(metrics.loss.mean())
    assert scalars["rollout/ep_len_mean"] == pytest.approx(np.nanmean(lengths))
    assert scalars["train/n_updates"] == pytest.approx(1550.0) and scalars["population/updates/median"] == 1550.0
    assert scalars["train/learning_rate"] == pytest.approx(5e-4) and scalars["population/learning_rate/iqr"] == 0.0
    assert scalars["updates/seed_31"] == 3100.0 and "episode_length/seed_3" not in scalars
    assert not any(tag.startswith("population/greedy_return") for tag in scalars)  # no check made yet
    assert scalars["avg_return_100/seed_0"] == pytest.approx(returns[0])  # the per-seed tags stay
