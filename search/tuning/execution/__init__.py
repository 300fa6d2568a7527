"""Running a study's trials: the trial loop and its claims (exactly N), recovery (re-runs,
outages, orphans), the objective that trains, the worker, launching workers, checkpoint
retention, the proxy's stale-trial watch and the live progress lines. The trainer is reached
from here (objective, worker_loop); the loop itself imports no torch."""
