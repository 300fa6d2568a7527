"""Hyperparameter search for image classifiers: the service (CLI, workers, trainer, data)."""
