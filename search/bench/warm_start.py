"""The transfer section: a search warm-started from an earlier study (--warm-start-from)
against the same search started cold, at an equal budget, as the strategies section compares
strategies: the same space, data, workers and epochs trained, repeated over seeds, the
spread shown.

The transfer is one the reports made: a network tuned on some classes, then tuned on others
(report 004 searched STL-10's car, deer, horse, monkey and truck after CIFAR). One earlier
study searches the source classes with the default strategy (TPE + Hyperband) for its own
budget, once; then, at each seed, the target classes are searched cold and warm-started from
it, both with the default strategy. The winners are not retrained here: the strategies
section measures what retraining adds."""

import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path

from search.bench import strategies
from search.bench.rows import Row

SOURCE_SEED = 100  # not one of the targets' seeds: its first configs are not theirs
KINDS = ("cold", "warm")


def transfer_rows(bench) -> Iterator[Row]:
    """The cold row, then the warm-started one, at --strategy-repeats seeds each."""
    args = bench.args
    default = ["--sampler", "tpe", "--pruner", "hyperband"]
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        strategies.run_study(
            bench, "source", SOURCE_SEED, folder, default, classes=args.transfer_source_classes,
            budget=args.transfer_source_budget,
        )  # fmt: skip
        source = f"source-{SOURCE_SEED}"
        top = ["--warm-start-from", source, "--warm-start-top", str(args.transfer_top)]
        searches: dict[str, list[strategies.Search]] = {kind: [] for kind in KINDS}
        for kind in KINDS:
            flags = default + (top if kind == "warm" else [])
            for seed in range(args.strategy_repeats):
                seconds, found = strategies.run_study(
                    bench, f"transfer-{kind}", seed, folder, flags,
                    classes=args.transfer_target_classes,
                )  # fmt: skip
                searches[kind].append(
                    strategies.read_search(kind, seed, seconds, found, args.strategy_budget)
                )
    finals = [s.best[1.0] for s in searches["cold"] if s.best[1.0] is not None]
    reference = statistics.mean(finals) if finals else None
    where = f"--classes {args.transfer_target_classes}"
    yield strategies.row_of(
        "transfer: cold", searches["cold"], reference, args, f"{' '.join(default)} {where}",
        reference_name="cold's",
    )  # fmt: skip
    warm = (
        f"{' '.join(default)} {where} {' '.join(top[:1])} (a study of --classes "
        f"{args.transfer_source_classes}, budget {args.transfer_source_budget} epochs) "
        f"{' '.join(top[2:])}"
    )
    yield strategies.row_of(
        "transfer: warm", searches["warm"], reference, args, warm, reference_name="cold's"
    )
