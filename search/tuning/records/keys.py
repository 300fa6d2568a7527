"""The user attributes a trial holds, by name: a misspelt key is an AttributeError here, where
a bare string would read the default without a word. The names are a schema (studies written
by earlier versions hold them), so each value stays as it is."""

from spaces import CONTINUES, RETRY_HISTORY  # the space reads these for a trial's seed

__all__ = ["CONTINUES", "RETRY_HISTORY"]

FAIL_REASON = "fail_reason"  # why a trial failed, in one line
PRUNE_REASON = "prune_reason"  # why a trial stopped early (pruned, paused, diverged)
TRACEBACK = "traceback"  # the tail of a failed trial's traceback
NOT_NEEDED = "not_needed"  # a surplus trial, failed untrained on purpose: not a failure
WORKER = "worker"  # HOST:PID [gpu N] of the process that runs it
DEVICE = "device"  # the device it trains on, in words
RESUMED_AFTER_EPOCH = "resumed_after_epoch"  # a re-run's or continuation's first epoch - 1
EPOCHS_RUN = "epochs_run"  # the epochs its curve holds at its end
PAUSED = "paused_after_epoch"  # a trial paused rather than pruned (--pause-pruned)
CONTINUED_FROM = "continued_from"  # a continuation's: the paused trial it carries on
PBT = "pbt"  # a population's segment: generation, member, donor (None: its own), changes
CURVE = "val_accuracy_curve"  # each epoch's accuracy (Optuna records none with 2+ objectives)
WARM_START = "warm_start"  # a queued known-good config: which report it comes from
WARM_START_FROM = "warm_start_from"  # a config queued from an earlier study: which trial
