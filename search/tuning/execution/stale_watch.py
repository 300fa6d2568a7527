"""In the proxy process (`python -m search.proxy`): the liveness watch of the workers behind
it. Their storage (store/proxy_client.py's BeatingProxy) bumps a running trial's HEARTBEAT
attribute every heartbeat interval; a RUNNING trial whose beat has not changed for its study's
grace period, by the proxy's own clock (so no two hosts' clocks are compared), is failed and
re-run (retries.retry), as fail_stale_trials does with a worker on the database itself."""

import logging
import threading
import time

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from registry import UsageError
from search.tuning import study
from search.tuning.execution import retries
from search.tuning.records import ledger
from search.tuning.store.proxy_client import HEARTBEAT

log = logging.getLogger("search.proxy")

WATCH_SECONDS = 5  # how often the proxy looks at the beats, at most


class StaleTrialWatch:
    """In the proxy process: fail and re-run the RUNNING trials whose beat stopped."""

    def __init__(self, storage: BaseStorage):
        self.storage = storage
        self.seen: dict[int, tuple[object, float]] = {}  # trial id -> (beat, when it changed)

    def check(self) -> float:
        """One look at every study; returns how long to wait until the next."""
        now = time.monotonic()
        wait = WATCH_SECONDS
        for summary in self.storage.get_all_studies():
            found = optuna.load_study(study_name=summary.study_name, storage=self.storage)
            try:
                settings = study.settings_of(found)
            except UsageError:
                continue  # not a study search.run can run: none of its trials beat
            wait = min(wait, settings.heartbeat_interval)
            for trial in found.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                beat = trial.system_attrs.get(HEARTBEAT)
                if beat is None:
                    continue  # a worker on the database itself: its own heartbeats watch it
                last = self.seen.get(trial._trial_id)
                if last is None or last[0] != beat:
                    self.seen[trial._trial_id] = (beat, now)
                elif now - last[1] > settings.grace_period:
                    self.fail(found, trial, settings.grace_period)
        return wait

    def fail(self, study: optuna.Study, trial, grace_period: float) -> None:
        reason = (
            f"no beat for {grace_period:g} s by the proxy's clock (its worker died or lost "
            "the proxy)"
        )
        if not ledger.fail_with_reason(self.storage, trial._trial_id, reason):
            return  # it ended meanwhile
        self.seen.pop(trial._trial_id, None)
        requeued = retries.retry(study, trial)
        log.warning("study %s: trial %d stopped beating; failed%s", study.study_name,
                    trial.number, " and re-queued" if requeued else "")  # fmt: skip

    def run(self, stop: threading.Event) -> None:
        while True:
            try:
                wait = self.check()
            except Exception as error:  # noqa: BLE001  the watch outlives a database blip
                log.warning("stale-trial check failed: %s", error)
                wait = WATCH_SECONDS
            if stop.wait(wait):
                return
