"""What a person sees while a search runs: a live bar on a terminal, lines in a log, nothing
but the summary with --quiet."""

import os
import shlex
import subprocess
import sys
import uuid

from tests.conftest import REPO

HANG_GUARD_SECONDS = 900  # only stops a test that would otherwise hang for good
RUN = ["search.run", "--space", "test_tiny", "--space-module", "tests.spaces_for_tests",
       "--dataset", "sample", "--epochs", "1", "--trials", "4"]  # fmt: skip


def test_on_a_terminal_a_live_bar_shows_counts_best_and_eta(tmp_path):
    """The search runs in a tmux pane; when it exits, the pane signals a tmux channel, which
    the test waits on (an event, however long a loaded machine takes), then reads the screen."""
    session = f"search-{uuid.uuid4().hex[:8]}"
    done = f"{session}-done"
    command = shlex.join([sys.executable, "-m", *RUN]) + f"; tmux wait-for -S {done}; sleep 600"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(["tmux", "new-session", "-d", "-x", "200", "-y", "50", "-s", session,
                    "-c", str(tmp_path), command], check=True, env=env)  # fmt: skip
    try:
        subprocess.run(["tmux", "wait-for", done], check=True, timeout=HANG_GUARD_SECONDS)
        screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                                capture_output=True, text=True, check=True).stdout  # fmt: skip
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    assert "export:" in screen  # the run ended with its summary
    assert "100%|" in screen and "4/4 [" in screen  # the bar, full
    assert "s/trial" in screen or "trial/s" in screen  # its rate, from which the ETA comes
    assert "0 failed, best " in screen
    assert "[4/4] trial " in screen  # the per-trial lines stay above the bar


def test_in_a_log_each_trial_is_a_line_and_quiet_leaves_only_the_summary(tmp_path, run_here):
    logged = run_here(*RUN, cwd=tmp_path)
    assert logged.returncode == 0, logged.stderr
    assert logged.stdout.count("] trial ") == 4 and "%|" not in logged.stdout + logged.stderr
    quiet = run_here(*RUN[:-1], "6", "--quiet", cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert "] trial " not in quiet.stdout and "%|" not in quiet.stderr
    assert "6 complete" in quiet.stdout


def test_the_printed_export_command_pastes_as_the_same_arguments_whatever_the_name():
    from search.tuning.results import progress

    name, url = "my study; rm -rf ~", "sqlite:////tmp/a folder/s.db"
    line = progress.export_command(name, url, ["-o", "best.yaml"])
    assert shlex.split(line) == ["python", "-m", "search.export", "--study", name,
                                 "--storage", url, "-o", "best.yaml"]  # fmt: skip
