"""A callback for learning tests that ask k of N seeds to solve: once k members have passed
their greedy check (the early stop, a one-sided test against the env's threshold), the rest
are frozen too, so the run ends there instead of training a seed the test does not need to
the end of its budget. Every member still gets the run's final evaluation, which decides
`solved`. A test can then fail where it would have passed: if one of the k fails the final
evaluation, a frozen member cannot make up for it (unlikely at `stop_eval_z: 2`)."""

import numpy as np

from qlax.core.errors import ConfigError


def freeze_the_rest_once(enough: int):
    """The callback: freeze every member still training once `enough` of them have stopped."""

    def callback(report):
        stopped = np.asarray(report.metrics["stopped"], bool)
        if stopped.sum() >= enough and not stopped.all():
            report.stop_members(np.flatnonzero(~stopped))

    def check(config):
        """A stop means a passed greedy check only with `early_stop` on and `stop_on: greedy`."""
        if not (config.early_stop and config.stop_on == "greedy"):
            raise ConfigError("freeze_the_rest_once needs early_stop: true and stop_on: greedy")

    callback.check = check
    return callback
