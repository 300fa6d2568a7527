"""The transfer section: a search warm-started from an earlier study (--warm-start-from)
against the same search started cold, at an equal budget, as the strategies section compares
strategies: the same space, data, workers and epochs trained, repeated over seeds, the
spread shown.

The transfer is one the reports made: a network tuned on some classes, then tuned on others
(report 004 searched STL-10's car, deer, horse, monkey and truck after CIFAR). One earlier
study searches the source classes with TPE + Hyperband (the default when this section was
measured) for its own budget, once; then, at each seed, the target classes are searched cold
and warm-started from it, both with that strategy. `--transfer-strategies` names the rows: the
first searched cold (the reference), each other warm-started (by default the measurement of
2026-12-05: tpe-hyperband, then tpe-hyperband-warm; default, default-box, default-prior compare
the two ways a warm start guides the search). The earlier study is not charged to the warm
searches (it stands for one the user already had; the strategies section charges it). The
winners are not retrained here: the strategies section measures what retraining adds."""

import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path

from registry import UsageError
from search.bench import strategies
from search.bench.rows import Row


def chosen(names: str) -> list[str]:
    """--transfer-strategies: one started cold, then one or more warm starts, by name."""
    picked = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in picked if name not in strategies.STRATEGIES]
    if unknown:
        raise UsageError(f"--transfer-strategies: unknown strategy {', '.join(unknown)}; "
                         f"choose of {', '.join(strategies.STRATEGIES)}")  # fmt: skip
    warm = [strategies.warm_started(name) for name in picked]
    if len(picked) < 2 or warm[0] or not all(warm[1:]):
        raise UsageError("--transfer-strategies names a strategy started cold, then one or more "
                         "that warm-start from the earlier study (tpe-hyperband-warm, "
                         "default-box, default-prior)")  # fmt: skip
    return picked


def transfer_rows(bench) -> Iterator[Row]:
    """The cold row, then each warm-started one, at --strategy-repeats seeds each."""
    args = bench.args
    names = chosen(args.transfer_strategies)
    searches: dict[str, list[strategies.Search]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        source = strategies.run_source(bench, folder)
        for name in names:
            flags = strategies.flags_of(name, args, source)
            for seed in range(args.strategy_repeats):
                seconds, found = strategies.run_study(
                    bench, f"transfer-{name}", seed, folder, flags,
                    classes=args.transfer_target_classes,
                )  # fmt: skip
                searches[name].append(
                    strategies.read_search(name, seed, seconds, found, args.strategy_budget)
                )
    finals = [s.best[1.0] for s in searches[names[0]] if s.best[1.0] is not None]
    reference = statistics.mean(finals) if finals else None
    for name in names:
        shown = strategies.flags_of(name, args, strategies.source_text(args, charged=False))
        yield strategies.row_of(
            f"transfer: {name}", searches[name], reference, args,
            f"{' '.join(shown)} --classes {args.transfer_target_classes}",
            reference_name="cold's",
        )  # fmt: skip
