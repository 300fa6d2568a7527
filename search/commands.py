"""`cifar-search COMMAND ...`: the installed command (pyproject's [project.scripts]), one
subcommand per `python -m search.COMMAND`, which keep working as they are.

An installed script runs with its own folder first on the path, not the working directory:
a user's search.py, models.py or spaces.py there is never imported in place of ours (with
`python -m search.run`, a search.py there is imported by Python itself before any of our code
runs, which nothing of ours can prevent). The working directory goes last on the path, so
--space-module still imports the user's own modules from it."""

import importlib
import os
import sys
from collections.abc import Sequence

from search import cli

COMMANDS = {  # subcommand: what it does, for the list that --help prints
    "run": "create or resume a study and run trials until it has --trials finished",
    "worker": "join an existing study, from this host or another, and run its trials",
    "status": "how far a study has got, and who is running what",
    "export": "a study's best trial (or --trial N, --top K, --pareto) as a config file",
    "train": "retrain an exported config on train+val and measure it on the test set",
    "final": "retrain the top trials with several seeds each and pick the winner",
    "report": "a study as one self-contained HTML page",
    "dashboard": "optuna-dashboard on the study storage, with its artifacts",
    "proxy": "serve a study storage to hundreds of workers (--storage grpc://HOST:PORT)",
    "predict": "classify image files with a checkpoint of search.train",
    "spaces": "the search spaces, their parameters, ranges and warm starts",
    "bench": "how fast trials train, measured side by side on this machine",
}
PROG = "cifar-search"


def usage() -> str:
    width = max(map(len, COMMANDS))
    listed = "\n".join(f"  {name:<{width}}  {what}" for name, what in COMMANDS.items())
    return (
        f"usage: {PROG} COMMAND [FLAGS]   (or: python -m search.COMMAND [FLAGS])\n\n"
        f"commands:\n{listed}\n\n{PROG} COMMAND --help shows a command's flags."
    )


def main(argv: Sequence[str] | None = None) -> None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if arguments else cli.EXIT_USAGE)
    name, *flags = arguments
    if name not in COMMANDS:
        print(f"{PROG}: error: unknown command '{name}'; choose one of: {', '.join(COMMANDS)}",
              file=sys.stderr)  # fmt: skip
        sys.exit(cli.EXIT_USAGE)
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # last: the user's --space-module, never our packages
    cli.PROG_PREFIX = f"{PROG} "
    sys.argv = [f"{PROG} {name}", *flags]
    command = importlib.import_module(f"search.{name}")
    cli.run_main(command.main, f"{PROG} {name}", getattr(command, "INTERRUPTED", cli.RESUMES))
