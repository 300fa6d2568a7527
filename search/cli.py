"""What every command shares at the process boundary: the argument definitions they have in
common, one-line errors and exit codes.

Commands build their parsers from light modules only and import the rooms (search.training,
search.tuning) in main(), after parsing: `--help` and a mistyped flag answer without loading
torch (tests/test_layout.py checks it)."""

import argparse
import atexit
import gc
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from registry import UsageError, options
from registry.signals import interrupt_on_sigterm
from search.training import COMPILE_MODES
from search.tuning import DEFAULT_STORAGE

# Exit codes: UsageError's 2 (what was asked cannot be done), RunFailure's 1 (it was fine, but
# running it failed: a locked database, say), and an interrupt's.
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM, as a shell reports a SIGINT
# The --dataset help names them without importing the data registry (and with it torch); a test
# keeps it equal to search.training.data.DATASETS.
DATASET_NAMES = ("cifar10", "cifar100", "imagefolder", "sample", "stl10")


# How a command is named in its usage and errors: `python -m search.run`, or `cifar-search run`
# under the installed command (search.commands sets this).
PROG_PREFIX = "python -m search."


VERBOSE_FLAGS = {"-v": 1, "--verbose": 1, "-vv": 2}
# Set by the first command from its flags; worker processes it starts inherit it.
VERBOSE_VARIABLE = "CIFAR_SEARCH_VERBOSE"


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr (no usage block), exit code 2; every
    command has -v/--verbose."""

    def __init__(self, *args, prog: str | None = None, **kwargs):
        if prog is not None and prog.startswith("python -m search."):
            prog = PROG_PREFIX + prog.removeprefix("python -m search.")
        super().__init__(*args, prog=prog, **kwargs)
        self.add_argument(
            "-v",
            "--verbose",
            action="count",
            default=0,
            help="say more: our debug lines and Optuna's own log (-vv: Optuna's debug too)",
        )

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def add_storage_argument(parser: argparse.ArgumentParser, purpose: str = "") -> None:
    """--storage, the same in every command; `purpose` says when it is used, if not always."""
    parser.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        help=f"{purpose}study storage URL: sqlite:///FILE.db, postgresql://USER@HOST:PORT/DB or "
        "grpc://HOST:PORT (python -m search.proxy) "
        f"(default {DEFAULT_STORAGE})",
    )


def add_study_arguments(parser: argparse.ArgumentParser, study_help: str | None = None) -> None:
    """--study and --storage; --study is required unless `study_help` says what its default is."""
    parser.add_argument("--study", required=study_help is None, help=study_help or "study name")
    add_storage_argument(parser)


def add_dataset_arguments(parser: argparse.ArgumentParser, dataset: bool = True) -> None:
    """--data-dir, and --dataset where the command chooses one (a study records its own)."""
    if dataset:
        parser.add_argument(
            "--dataset",
            default="cifar10",
            help=f"{', '.join(DATASET_NAMES)} (default cifar10; 'sample' ships with the "
            "package; 'imagefolder' reads --data-dir/train/<class>/* and test/<class>/*)",
        )
    parser.add_argument(
        "--data-dir", type=Path, default=Path("data"), help="dataset folder (default ./data)"
    )


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    """--device, --gpus and --workers-per-gpu: where a search's worker processes run."""
    add_device_argument(parser)
    parser.add_argument(
        "--gpus",
        help="comma-separated GPU indices to run workers on (default: every visible GPU)",
    )
    parser.add_argument(
        "--workers-per-gpu",
        type=int,
        default=1,
        help="worker processes per GPU, or on the CPU where there is none (default 1); "
        "small networks leave a GPU idle, several trials at once fill it",
    )


def add_compile_argument(parser: argparse.ArgumentParser, scope: str = "") -> None:
    parser.add_argument(
        "--compile",
        nargs="?",
        const="default",
        default="",
        choices=COMPILE_MODES,
        metavar="MODE",
        help="train through torch.compile: faster steps after a one-off compile (tens of "
        f"seconds), reported apart from the epochs' seconds{scope}; MODE is torch.compile's "
        "(default 'default'; 'reduce-overhead' replays each step's network as a CUDA graph "
        "where shapes are static)",
    )


def class_names(text: str) -> list[str]:
    """--classes a,b,c as ['a', 'b', 'c']; an empty value names none (every class)."""
    return [name.strip() for name in text.split(",")] if text.strip() else []


def add_classes_argument(parser: argparse.ArgumentParser, purpose: str) -> None:
    parser.add_argument(
        "--classes",
        type=class_names,
        default=[],
        help=f"{purpose}: comma-separated class names of the dataset, labelled in this order",
    )


def check_positive(args: argparse.Namespace, *flags: str) -> None:
    """Refuse a zero or negative value for any of `flags` (dest names); None means unset."""
    options.check_positive(vars(args), *flags)


def verbosity(argv: Sequence[str]) -> int:
    """How verbose the command line (or the command that started this worker) asks to be."""
    asked = sum(VERBOSE_FLAGS.get(arg, 0) for arg in argv)
    return max(asked, int(os.environ.get(VERBOSE_VARIABLE, "0") or 0))


class StderrHandler(logging.StreamHandler):
    """Writes to sys.stderr as it is at each message, as logging's last-resort handler does:
    a command run again in one process (the API, the tests) speaks on the sys.stderr of now,
    not on the one of its first run, since replaced and perhaps closed."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _):  # StreamHandler.__init__ sets it; sys.stderr is looked up instead
        pass


def configure_logging(verbose: int) -> None:
    """Our messages (loggers under "search") on stderr as `search.worker: ...`, INFO and up,
    DEBUG with --verbose. Our own progress lines replace Optuna's per-trial logs, which include
    a traceback for every failed trial (kept in the trial's user attributes): Optuna says only
    errors unless --verbose."""
    import optuna  # about 0.2 s, and no torch: every command sets it before it speaks

    os.environ[VERBOSE_VARIABLE] = str(verbose)
    ours = logging.getLogger("search")
    if not ours.handlers:
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        ours.addHandler(handler)
        ours.propagate = False
    ours.setLevel(logging.DEBUG if verbose else logging.INFO)
    levels = {0: optuna.logging.ERROR, 1: optuna.logging.INFO}
    optuna.logging.set_verbosity(levels.get(verbose, optuna.logging.DEBUG))
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    logging.getLogger("sqlalchemy").setLevel(logging.ERROR)


# What an interrupted command says, unless it says otherwise (its module's INTERRUPTED).
RESUMES = "interrupted; run the same command again to resume"


def run_main(
    main: Callable[[Sequence[str] | None], int], prog: str, interrupted: str = RESUMES
) -> None:
    """Run a command's main() and turn user errors, Ctrl-C and SIGTERM into one line and an
    exit code (`interrupted`: what an interrupt means for this command)."""
    # At exit, the interpreter's last garbage collection walks every object torch has loaded
    # (its optimizers import torch._dynamo): about a second per process on 2 cores, paid by
    # each of a search's workers. Freezing them first skips that walk. Exit handlers
    # registered later run earlier: storage.close_at_exit's still close the databases.
    atexit.register(gc.freeze)
    interrupt_on_sigterm()
    configure_logging(verbosity(sys.argv[1:]))
    try:
        code = main(None)
    except UsageError as error:  # RunFailure too, with its own exit code
        print(f"{prog}: error: {error}", file=sys.stderr)
        code = error.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except Exception as error:  # a storage that failed under Optuna: one line; bugs: traceback
        fault = storage_fault(error)
        if fault is None:
            raise
        print(f"{prog}: error: {fault}", file=sys.stderr)
        code = fault.exit_code
    sys.exit(code)


def storage_fault(error: Exception) -> UsageError | None:
    """The storage's fault behind `error`, if a storage was opened (only then is sqlalchemy
    loaded, and only then can one be behind it)."""
    if "sqlalchemy" not in sys.modules:
        return None
    from search.tuning.store import faults

    return faults.describe_fault(error)


def serve_until_interrupted(serve: Callable[[], object], close: Callable[[], object]) -> int:
    """Run a server (the dashboard, the proxy) until Ctrl-C, which is how it ends, not an
    error: exit code 0, `close` called either way."""
    try:
        serve()
    except KeyboardInterrupt:
        pass
    finally:
        close()
    return 0
