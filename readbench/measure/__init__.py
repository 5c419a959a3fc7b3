"""Measurement: the C read loop, data files, probe, workers, runner, side passes."""
