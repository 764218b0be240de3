"""Population-based training in one compile: exploit copies whole member states, explore
perturbs dynamic settings within their ranges, the lineage is written, and a resume goes
on bit for bit."""

import csv
import json

import jax
import numpy as np
import pytest

import qlax
from qlax.runs.pbt import PBT
from qlax.settings.config import ConfigError, TrainConfig

pytestmark = pytest.mark.slow  # every test here trains

CONFIG = TrainConfig(num_envs=4, total_steps=2400, chunk_steps=50, seeds=2, num_centers=32, buffer_size=1000,
                     learning_starts=100, eval_episodes=3, early_stop=False, keep_best=True, stop_eval_episodes=4)
GRID = {"lr": [1e-3, 5e-3]}  # 4 members: two settings x two seeds
ROUNDS = PBT(perturb=("lr", "gamma"), every=3)


@pytest.fixture(scope="module")
def one_go(tmp_path_factory):
    out = tmp_path_factory.mktemp("pbt")
    return qlax.sweep(CONFIG, GRID, out=out, progress=False, checkpoint_every=3, pbt=ROUNDS)


def lineage(run_dir):
    with (run_dir / "pbt.csv").open() as file:
        return list(csv.DictReader(file))


def test_the_worst_members_take_over_the_best_and_perturb_within_range(one_go):
    rows = lineage(one_go.run_dir)
    assert sorted({int(r["chunk"]) for r in rows}) == [3, 6, 9]  # none after the last chunk
    for chunk in (3, 6, 9):
        round_ = {int(r["member"]): r for r in rows if int(r["chunk"]) == chunk}
        scores = {m: float(r["score"]) for m, r in round_.items()}
        (loser, row), = [(m, r) for m, r in round_.items() if int(r["copied_from"]) != m]  # a quarter of 4
        source = int(row["copied_from"])
        assert scores[loser] == min(scores.values()) and scores[source] == max(scores.values())
    lr = np.asarray(one_go.state.hparams.lr)
    gamma = np.asarray(one_go.state.hparams.gamma)
    assert np.all((lr > 0) & (gamma >= 0) & (gamma <= 1))
    assert one_go.summary["pbt"]["final_hparams"]["lr"] == pytest.approx(lr.tolist())
    assert (one_go.run_dir / "pbt.png").stat().st_size > 0


def test_exploit_copies_a_members_whole_state_bit_for_bit_but_its_key_and_best_policy():
    from qlax.runs.experiment import _copy_members, start

    run = start(CONFIG.replace(seeds=4))
    state, _ = run.population.run_chunk(run.state)  # a replay with actions stored as float bit patterns
    before = jax.tree.map(np.asarray, state)  # the state is donated to the copy
    copied = _copy_members(state, np.array([1]), np.array([3]), run.population.placement)  # across two CPU devices
    bits = lambda a: np.ascontiguousarray(a).view(np.uint8)  # noqa: E731 (a subnormal float flushed to 0 shows)
    for name in ("agent", "env_state", "obs", "stats", "hparams"):
        for a, b in zip(jax.tree.leaves(getattr(copied, name)), jax.tree.leaves(getattr(before, name))):
            a = np.asarray(a)
            assert np.array_equal(bits(a[1]), bits(b[3])) and np.array_equal(bits(a[[0, 2, 3]]), bits(b[[0, 2, 3]]))
    np.testing.assert_array_equal(np.asarray(copied.key), before.key)


def test_a_pbt_run_stopped_and_resumed_equals_the_run_done_in_one_go(one_go, tmp_path):
    def stop_at_7(report):
        if report.chunk == 7:
            report.stop()

    out = tmp_path / "run"
    stopped = qlax.sweep(CONFIG, GRID, out=out, progress=False, checkpoint_every=3, pbt=ROUNDS, callbacks=[stop_at_7])
    assert stopped.interrupted
    resumed = qlax.resume(out, progress=False)  # the PBT is saved with the run
    for a, b in zip(jax.tree.leaves(resumed.state), jax.tree.leaves(one_go.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for name in ("metrics.csv", "pbt.csv"):
        assert (out / name).read_bytes() == (one_go.run_dir / name).read_bytes()
    assert json.loads((out / "summary.json").read_text())["pbt"] == json.loads(
        (one_go.run_dir / "summary.json").read_text())["pbt"]


@pytest.mark.parametrize("pbt, changes, message", [
    (PBT(perturb=("lr",)), {"early_stop": True}, "pbt: early stop freezes members"),
    (PBT(perturb=("num_envs",)), {}, "'num_envs' is not a dynamic setting"),
    (PBT(perturb=("tau",)), {}, "never reads tau"),
    (PBT(perturb=("lr",), fraction=0.9), {}, "out of range"),
])
def test_a_pbt_that_cannot_work_is_refused_before_anything_compiles(pbt, changes, message):
    with pytest.raises(ConfigError, match=message):
        qlax.train(CONFIG.replace(**changes), progress=False, pbt=pbt)
