"""Runs on the host: the experiment loop, run directories, checkpoints, callbacks and
population-based training, reports, tracking, progress, signals, learning curves, and
policies and evaluations read back from a run."""
