"""What a run is asked to do: `TrainConfig` and its validation, sweeps' grids, the shipped
presets, and translation from rl-zoo hyperparameters."""
