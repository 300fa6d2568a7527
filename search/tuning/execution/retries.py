"""Re-running failed trials. Optuna re-queues a trial whose worker died (its heartbeat went
stale) with RetryHeartbeatStaleTrialCallback; a worker re-queues, the same way, the trial it
was running when it was told to stop (SIGTERM from Slurm or Kubernetes, Ctrl-C) or lost the
storage. Either way the re-run takes the same parameters and seed, and resumes from the last
epoch its predecessors checkpointed (checkpoints.py)."""

import copy

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

import spaces
from search.tuning.records import keys

# Re-runs of one trial at most: a preempted trial is re-run from its checkpoint, cheaply, so
# more than once; a trial that kills its worker every time (a crash in the driver) gives up.
MAX_RETRIES = 3
# What a re-run carries of the failed trial's user attributes, besides its retry history: the
# paused trials it continues, and its place in a population (strategies/pbt.py).
CARRIED = (keys.CONTINUES, keys.PBT)


def retry(running: optuna.Study, trial: FrozenTrial) -> bool:
    """Queue a re-run of `trial` (WAITING, the same parameters), as Optuna's own retry callback
    does, so that its retried_trial_number and retry_history work. The re-run carries none of
    the failed trial's user attributes (its worker, its failure) but RETRY_HISTORY (and
    CARRIED's), which the space reads for the seed and the objective for the checkpoint to
    resume. False when it has been re-run MAX_RETRIES times already."""
    history = [*RetryHeartbeatStaleTrialCallback.retry_history(trial), trial.number]
    attributes = copy.copy(trial)
    attributes.user_attrs = {keys.RETRY_HISTORY: history}
    for carried in CARRIED:  # a continuation, or a population's segment, goes on as one
        if carried in trial.user_attrs:
            attributes.user_attrs[carried] = trial.user_attrs[carried]
    RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)(running, attributes)
    return len(history) <= MAX_RETRIES


def retry_cut_off(running: optuna.Study, number: int) -> bool:
    """The trial this worker was running when a signal or a storage outage stopped it: once
    Optuna has recorded it as failed, re-run it (whether it was re-queued: one still RUNNING,
    its end not recorded, is left to the heartbeats, which fail and re-run it)."""
    trials = running.get_trials(deepcopy=False)
    trial = trials[number]
    if trial.state != TrialState.FAIL:  # nothing else re-runs a trial that Optuna failed
        return False
    if any(spaces.lineage(other)[-1:] == [number] for other in trials[number + 1 :]):
        return False  # the heartbeats failed it first, and queued its re-run with it
    return retry(running, trial)
