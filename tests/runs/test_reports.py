"""What a run writes for people and other tools: strict JSON, and metrics.csv in its own columns."""

import json
from types import SimpleNamespace

import numpy as np

from qlax.runs import reports
from qlax.settings.config import TrainConfig
from qlax.settings.sweep import Members


def test_numbers_that_are_not_finite_are_written_as_null_in_strict_json():
    summary = {"threshold": float("nan"), "eval_mean_return": [np.float32(np.inf), 1.5, -np.inf],
               "members": [{"best_greedy_return": np.float64("nan"), "solved": True, "env_steps": 10}]}
    text = reports.json_text(summary)
    strict = json.loads(text, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
    assert strict == {"threshold": None, "eval_mean_return": [None, 1.5, None],
                      "members": [{"best_greedy_return": None, "solved": True, "env_steps": 10}]}


def test_metrics_rows_take_the_columns_of_their_files_header(tmp_path):
    members = Members.of(TrainConfig(seeds=1))
    chunk = SimpleNamespace(env_steps=[400], epsilon=[0.25], avg_return_100=[21.5], episodes=[17], loss=[0.125],
                            stopped=[False], diverged=[False], greedy_return=[np.nan], episode_length=[23.5],
                            updates=[350], learning_rate=[np.float32(5e-3)])
    metrics = reports.MetricsFile(tmp_path / "metrics.csv", members)
    metrics.start()
    with metrics:
        metrics.write(chunk)
    assert (tmp_path / "metrics.csv").read_text() == (
        "seed,env_steps,epsilon,avg_return_100,episodes,loss,stopped,diverged,greedy_return,episode_length,updates,"
        "learning_rate\n0,400,0.25,21.5,17,0.125,0,0,nan,23.5,350,0.005\n")
    # A run an earlier qlax started goes on in the 8 columns its header names.
    old = "seed,env_steps,epsilon,avg_return_100,episodes,loss,stopped,diverged,greedy_return"
    (tmp_path / "metrics.csv").write_text(old + "\n")
    assert reports.metric_columns(old.split(","), members) == 8
    with reports.MetricsFile(tmp_path / "metrics.csv", members) as metrics:
        metrics.write(chunk)
    assert (tmp_path / "metrics.csv").read_text() == old + "\n0,400,0.25,21.5,17,0.125,0,0,nan\n"
    assert reports.metric_columns(old.split(",")[:-1], members) is None
