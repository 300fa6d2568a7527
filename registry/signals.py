"""SIGTERM as Ctrl-C, for every process of ours."""

import signal


def interrupt_on_sigterm() -> None:
    """SIGTERM (what Slurm, Kubernetes and `timeout` send before they kill) ends a process as
    Ctrl-C does: a command with its one line and exit code 130 (Python's default is to die at
    once, silently, with 143); a worker's trial checkpointed, failed and re-queued at once,
    where Optuna, which fails the running trial cleanly on KeyboardInterrupt, would leave it
    RUNNING for the heartbeats to catch a grace period later."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
