"""What a run writes for people and other tools: strict JSON."""

import json

import numpy as np

from qlax import reports


def test_numbers_that_are_not_finite_are_written_as_null_in_strict_json():
    summary = {"threshold": float("nan"), "eval_mean_return": [np.float32(np.inf), 1.5, -np.inf],
               "members": [{"best_greedy_return": np.float64("nan"), "solved": True, "env_steps": 10}]}
    text = reports.json_text(summary)
    strict = json.loads(text, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
    assert strict == {"threshold": None, "eval_mean_return": [None, 1.5, None],
                      "members": [{"best_greedy_return": None, "solved": True, "env_steps": 10}]}
