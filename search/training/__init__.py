"""The training room: TrialConfig, data on the device, augmentation, optimizers and schedules,
test-time augmentation, evaluation, checkpoints and the trainer. It imports neither Optuna nor
the search side (tests/test_layout.py keeps that rule): a config trains the same with or
without a study around it."""

# torch.compile's modes in torch 2.11 and later, named here without importing torch, for the
# commands' --help and the study's settings (a test checks torch._inductor.list_mode_options()
# has them). "reduce-overhead" and "max-autotune" replay the network's forward and backward as
# CUDA graphs, one launch each instead of hundreds, where shapes are static.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
