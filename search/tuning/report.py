"""A study as one self-contained HTML page: Optuna's plotly figures with plotly.js inline (it
opens with no network), and the top trials with their configs."""

import datetime
import html
from collections.abc import Callable

import optuna
import optuna.visualization as vis
import plotly.graph_objects as go
import yaml
from optuna.trial import TrialState

from search.tuning import final, progress, trial_config

TOP_TRIALS = 10
# A space has up to 50 parameters; bars and axes beyond about ten are unreadable, so the
# importance chart and the parallel coordinates show the most important ones only.
SHOWN_PARAMETERS = 10
SLICE_PARAMETERS = 4


def ranked_parameters(found: optuna.Study) -> list[str] | None:
    """Parameter names, most important first (Optuna's default evaluator, PED-ANOVA); None
    when the study cannot rank them yet (too few complete trials)."""
    try:
        return list(optuna.importance.get_param_importances(found))
    except (ValueError, RuntimeError, ZeroDivisionError):
        return None


def most_important(ranked: list[str] | None, count: int) -> list[str]:
    if ranked is None:
        raise ValueError("too few complete trials to rank the parameters")
    return ranked[:count]


# Section title -> figure builder, given the study and its ranked parameters; a builder that
# raises is reported as "not available".
Builder = Callable[[optuna.Study, list[str] | None], go.Figure]
FIGURES: dict[str, Builder] = {
    "Optimisation history": lambda s, ranked: vis.plot_optimization_history(s),
    f"Parameter importances (the {SHOWN_PARAMETERS} most important)": lambda s, ranked: (
        vis.plot_param_importances(s, params=most_important(ranked, SHOWN_PARAMETERS))
    ),
    f"Parallel coordinates (the {SHOWN_PARAMETERS} most important parameters)": lambda s, r: (
        vis.plot_parallel_coordinate(s, params=most_important(r, SHOWN_PARAMETERS))
    ),
    "Slices of the most important parameters": lambda s, ranked: vis.plot_slice(
        s, params=most_important(ranked, SLICE_PARAMETERS)
    ),
    "Learning curves (validation accuracy per epoch)": lambda s, ranked: (
        vis.plot_intermediate_values(s)
    ),
}
MULTI_OBJECTIVE_FIGURES: dict[str, Builder] = {
    "Pareto front": lambda s, ranked: vis.plot_pareto_front(s),
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
    single = len(found.directions) == 1
    builders = FIGURES if single else MULTI_OBJECTIVE_FIGURES
    ranked = ranked_parameters(found) if single else None
    sections, plotly_included = [], False
    for title, build in builders.items():
        try:
            figure = build(found, ranked)
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
                yaml.safe_dump(trial_config.stored(trial) or trial.params, sort_keys=False)
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
    selected = "\n".join(final.shown(found))
    if selected:
        sections.append(f"<pre>{html.escape(selected)}</pre>")
    return PAGE.format(
        title=html.escape(f"Study {found.study_name}"),
        summary=html.escape(summary),
        sections="\n".join(sections),
    )
