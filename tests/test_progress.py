"""What a person sees while a search runs: a live bar on a terminal, lines in a log, nothing
but the summary with --quiet."""

import os
import shlex
import subprocess
import sys
import time
import uuid

from tests.conftest import REPO, run_command

RUN = ["search.run", "--space", "test_tiny", "--space-module", "tests.spaces_for_tests",
       "--dataset", "sample", "--epochs", "1", "--trials", "4"]  # fmt: skip


def test_on_a_terminal_a_live_bar_shows_counts_best_and_eta(tmp_path):
    session = f"search-{uuid.uuid4().hex[:8]}"
    command = shlex.join([sys.executable, "-m", *RUN]) + "; sleep 60"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(["tmux", "new-session", "-d", "-x", "200", "-y", "50", "-s", session,
                    "-c", str(tmp_path), command], check=True, env=env)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        screen = ""
        while "export:" not in screen and time.monotonic() < deadline:
            time.sleep(1)
            screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                                    capture_output=True, text=True).stdout  # fmt: skip
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    assert "100%|" in screen and "4/4 [" in screen  # the bar, full
    assert "s/trial" in screen or "trial/s" in screen  # its rate, from which the ETA comes
    assert "0 failed, best " in screen
    assert "[4/4] trial " in screen  # the per-trial lines stay above the bar


def test_in_a_log_each_trial_is_a_line_and_quiet_leaves_only_the_summary(tmp_path):
    logged = run_command(*RUN, cwd=tmp_path)
    assert logged.returncode == 0, logged.stderr
    assert logged.stdout.count("] trial ") == 4 and "%|" not in logged.stdout + logged.stderr
    quiet = run_command(*RUN[:-1], "6", "--quiet", cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert "] trial " not in quiet.stdout and "%|" not in quiet.stderr
    assert "6 complete" in quiet.stdout
