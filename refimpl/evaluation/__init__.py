"""Evaluation of update rules: feature diagnostics, baselines, and the readout they share."""
