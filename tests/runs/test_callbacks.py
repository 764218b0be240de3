"""Callbacks steer a run: they see every chunk's numbers, stop the run or single members,
write files, and a run they stopped resumes bit for bit."""

import json

import jax
import numpy as np
import pytest

import qlax
from qlax.settings.config import ConfigError, TrainConfig

pytestmark = pytest.mark.slow  # every test here trains

CONFIG = TrainConfig(num_envs=4, total_steps=2400, chunk_steps=50, seeds=2, num_centers=32, buffer_size=1000,
                     learning_starts=100, eval_episodes=3, early_stop=False)  # 12 chunks of 200 env steps


def steer(stop_run_at: int | None, seen: list):
    """A callback that notes what it sees, stops member 1 after chunk 2, and the run after `stop_run_at`."""
    def callback(report: qlax.ChunkReport):
        seen.append((report.chunk, report.num_chunks, report.env_steps.tolist()))
        assert set(report.metrics) >= {"avg_return_100", "loss", "greedy_return", "stopped"}
        assert all(np.shape(v) == (2,) for v in report.metrics.values())
        if report.chunk == 2:
            report.stop_members([1])
        if report.chunk == stop_run_at:
            report.stop()
    return callback


@pytest.fixture(scope="module")
def steered(tmp_path_factory):
    seen = []
    out = tmp_path_factory.mktemp("steered")
    return qlax.train(CONFIG, out=out, progress=False, checkpoint_every=3, callbacks=[steer(None, seen)]), seen


def test_a_callback_sees_every_chunk_and_stops_members_from_the_next_chunk_not_yet_running(steered):
    result, seen = steered
    assert [chunk for chunk, _, _ in seen] == list(range(1, 13)) and {n for _, n, _ in seen} == {12}
    # chunk 3 was already running when chunk 2's callback asked: member 1 stops after it
    assert [steps for _, _, steps in seen][:4] == [[200, 200], [400, 400], [600, 600], [800, 600]]
    assert result.summary["env_steps"] == [2400, 600] and not result.interrupted
    assert result.summary["early_stopped"] == [False, True]


def test_a_run_a_callback_stopped_is_saved_and_resumes_bit_for_bit(steered, tmp_path):
    one_go, _ = steered
    out = tmp_path / "run"
    stopped = qlax.train(CONFIG, out=out, progress=False, checkpoint_every=3, callbacks=[steer(7, [])])
    assert stopped.interrupted and stopped.summary["stopped_by"] == "callback"
    assert stopped.summary["env_steps"] == [1600, 600]  # the chunk running when it asked was finished
    assert json.loads((out / "summary.json").read_text())["interrupted"] is True
    resumed = qlax.resume(out, progress=False)  # the stop of member 1 is in the checkpoint
    for a, b in zip(jax.tree.leaves(resumed.state), jax.tree.leaves(one_go.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert (out / "metrics.csv").read_bytes() == (one_go.run_dir / "metrics.csv").read_bytes()


def test_a_callback_writes_its_own_files_and_bad_callbacks_are_refused(tmp_path):
    def log_greedy(report: qlax.ChunkReport):
        with open(report.run_dir / "my_log.txt", "a") as file:
            file.write(f"{report.chunk} {report.metrics['avg_return_100'].round(1).tolist()}\n")

    qlax.train(CONFIG.replace(total_steps=800), out=tmp_path / "run", progress=False, callbacks=[log_greedy])
    assert len((tmp_path / "run" / "my_log.txt").read_text().splitlines()) == 4
    with pytest.raises(ConfigError, match="is not callable"):
        qlax.train(CONFIG, progress=False, callbacks=["stop"])
    with pytest.raises(ConfigError, match=r"stop_members\(5\): members run from 0 to 1"):
        qlax.train(CONFIG.replace(total_steps=400), progress=False,
                   callbacks=[lambda report: report.stop_members([5])])
