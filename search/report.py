"""`python -m search.report --study NAME -o report.html`: one self-contained HTML page of a
study (Optuna's plotly figures with plotly.js inline, so it opens with no network)."""

import datetime
import html
from collections.abc import Callable, Sequence
from pathlib import Path

import optuna
import optuna.visualization as vis
import plotly.graph_objects as go
import yaml
from optuna.trial import TrialState

from search import cli, progress, storage, study

TOP_TRIALS = 10
SLICE_PARAMETERS = 4


def top_parameters(found: optuna.Study) -> list[str]:
    """The most important parameters, for the slice plots."""
    return list(optuna.importance.get_param_importances(found))[:SLICE_PARAMETERS]


# Section title -> figure builder; a builder that raises is reported as "not available".
FIGURES: dict[str, Callable[[optuna.Study], go.Figure]] = {
    "Optimisation history": vis.plot_optimization_history,
    "Parameter importances": vis.plot_param_importances,
    "Parallel coordinates": vis.plot_parallel_coordinate,
    "Slices of the most important parameters": lambda s: vis.plot_slice(
        s, params=top_parameters(s)
    ),
    "Learning curves (validation accuracy per epoch)": vis.plot_intermediate_values,
}
MULTI_OBJECTIVE_FIGURES: dict[str, Callable[[optuna.Study], go.Figure]] = {
    "Pareto front": vis.plot_pareto_front,
}

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; }}
pre {{ margin: 0; font-size: 0.85em; }}
.unavailable {{ color: #777; }}
</style></head><body>
<h1>{title}</h1>
<p>{summary}</p>
{sections}
</body></html>
"""


def figure_sections(found: optuna.Study) -> list[str]:
    builders = dict(FIGURES) if len(found.directions) == 1 else dict(MULTI_OBJECTIVE_FIGURES)
    sections, plotly_included = [], False
    for title, build in builders.items():
        try:
            figure = build(found)
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            body = f'<p class="unavailable">not available: {html.escape(str(error))}</p>'
        else:
            figure.update_layout(title=None)
            body = figure.to_html(full_html=False, include_plotlyjs=not plotly_included)
            plotly_included = True
        sections.append(f"<h2>{html.escape(title)}</h2>\n{body}")
    return sections


def top_trials_table(found: optuna.Study) -> str:
    complete = found.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ranked = sorted(
        complete, key=lambda t: t.values[0], reverse=found.directions[0].name == "MAXIMIZE"
    )
    rows = [
        "<tr><td>{}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>".format(
            trial.number,
            ", ".join(f"{v:.4f}" for v in trial.values),
            html.escape(str(trial.user_attrs.get("param_count", ""))),
            html.escape(
                yaml.safe_dump(trial.user_attrs.get("config", trial.params), sort_keys=False)
            ),
        )
        for trial in ranked[:TOP_TRIALS]
    ]
    header = "<tr><th>trial</th><th>value</th><th>parameters (count)</th><th>config</th></tr>"
    return f"<h2>Top {TOP_TRIALS} trials</h2>\n<table>{header}{''.join(rows)}</table>"


def render(found: optuna.Study) -> str:
    counts = progress.count_by_state(found)
    best = progress.best_trial(found) if len(found.directions) == 1 else None
    summary = (
        f"{counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} pruned, "
        f"{counts[TrialState.FAIL]} failed trials"
        + (f"; best {best.value:.4f} (trial {best.number})" if best else "")
        + f"; space {found.user_attrs.get('space', '?')}, dataset "
        f"{found.user_attrs.get('dataset', '?')}; written {datetime.datetime.now():%Y-%m-%d %H:%M}"
    )
    sections = figure_sections(found) + [top_trials_table(found)]
    return PAGE.format(
        title=html.escape(f"Study {found.study_name}"),
        summary=html.escape(summary),
        sections="\n".join(sections),
    )


def get_args_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m search.report", description="Write a study as one self-contained HTML page."
    )
    cli.add_study_arguments(parser)
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("report.html"), help="file (default report.html)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    found = study.load(storage.open_storage(args.storage), args.study)
    args.output.write_text(render(found))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    cli.run_main(main, "search.report")
