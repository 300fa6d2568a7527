"""Search strategies: what to try (samplers), when to stop or pause a trial (pruners, Pareto
halving), what to run again (promotion of paused trials), populations (PBT) and what to take
from an earlier study (transfer). strategy.py turns a study's settings into its strategy; the
execution room runs it. Above the records, beside the store; imports no torch."""
