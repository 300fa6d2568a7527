"""The transfer section: a search warm-started from an earlier study (--warm-start-from)
against the same search started cold, at an equal budget, as the strategies section compares
strategies: the same space, data, workers and epochs trained, repeated over seeds, the
spread shown.

The transfer is one the reports made: a network tuned on some classes, then tuned on others
(report 004 searched STL-10's car, deer, horse, monkey and truck after CIFAR). One earlier
study searches the source classes with TPE + Hyperband (the default when this section was
measured) for its own budget, once; then, at each seed, the target classes are searched cold
and warm-started from it, both with that strategy. The winners are not retrained here: the strategies
section measures what retraining adds."""

import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path

from search.bench import strategies
from search.bench.rows import Row

KINDS = ("cold", "warm")
STRATEGY = {"cold": "tpe-hyperband", "warm": "tpe-hyperband-warm"}  # strategies.STRATEGIES


def transfer_rows(bench) -> Iterator[Row]:
    """The cold row, then the warm-started one, at --strategy-repeats seeds each."""
    args = bench.args
    searches: dict[str, list[strategies.Search]] = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        source = strategies.run_source(bench, folder)
        for kind in KINDS:
            flags = strategies.flags_of(STRATEGY[kind], args, source)
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
    for kind in KINDS:
        shown = strategies.flags_of(STRATEGY[kind], args, strategies.source_text(args))
        yield strategies.row_of(
            f"transfer: {kind}", searches[kind], reference, args,
            f"{' '.join(shown)} --classes {args.transfer_target_classes}",
            reference_name="cold's",
        )  # fmt: skip
