"""One trial, outside Ray: train a cell's model for its budget and measure it (`run`), its checkpoints,
the validation split of tuning trials, provenance stamps.
"""
