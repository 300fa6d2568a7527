"""How a trial ends other than by training to its end, and whose fault it is: cut off (a
signal, the storage, a full disk: re-run from its checkpoint), taken away (someone else ended
it), failed (it could not train), or not needed (a surplus trial, failed untrained)."""

import optuna
import sqlalchemy
from optuna.exceptions import UpdateFinishedTrialError

from registry import files
from search.tuning.records import keys
from search.tuning.store import faults

# Not the trial's fault: Ctrl-C or SIGTERM (interrupt_on_sigterm), the storage failed, or the
# disk its checkpoints go to is full.
CUT_OFF = (
    KeyboardInterrupt, sqlalchemy.exc.SQLAlchemyError, *faults.PROXY_ERRORS, files.OutOfSpace,
)  # fmt: skip
# Nor this: someone else recorded the trial's end while it ran (the proxy's stale watch, an
# operator, a clock hiccup), and the storage refuses what the worker then writes.
TAKEN_AWAY = (UpdateFinishedTrialError,)


class TrialFailed(Exception):
    """The trial could not train (out of memory, or a bug); it ends FAILED, the worker goes on."""


def not_needed(trial: optuna.Trial, reason: str) -> None:
    """End a surplus trial, untrained, with `reason`: another does its work (or the study has
    enough). It fails, marked so that nothing counts it as a failure to train."""
    trial.set_user_attr(keys.FAIL_REASON, reason)
    trial.set_user_attr(keys.NOT_NEEDED, True)
    raise TrialFailed(reason)
