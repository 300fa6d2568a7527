"""The training room: TrialConfig, data on the device, augmentation, optimizers and schedules,
test-time augmentation, evaluation, checkpoints and the trainer. It imports neither Optuna nor
the search side (tests/test_layout.py keeps that rule): a config trains the same with or
without a study around it."""
