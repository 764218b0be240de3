"""A callback for learning tests that ask k of N seeds to solve: once k members have passed
their greedy check (the early stop, a one-sided test against the env's threshold), the rest
are frozen too, so the run ends there instead of training a seed the test does not need to
the end of its budget. Every member still gets the run's final evaluation, which decides
`solved`."""

import numpy as np


def freeze_the_rest_once(solving: int):
    """The callback: freeze every member still training once `solving` of them have stopped."""

    def callback(report):
        stopped = np.asarray(report.metrics["stopped"], bool)
        if stopped.sum() >= solving and not stopped.all():
            report.stop_members(np.flatnonzero(~stopped))

    return callback
