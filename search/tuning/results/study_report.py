"""A study as one self-contained HTML page: Optuna's plotly figures with plotly.js inline (it
opens with no network), and the top trials with their configs."""

import datetime
import html
from collections.abc import Callable

import optuna
import optuna.visualization as vis
import plotly.colors
import plotly.graph_objects as go
import yaml
from optuna.trial import FrozenTrial, TrialState

from search.tuning.records import clock, config_attrs, keys, ledger
from search.tuning.results import seed_selection
from search.tuning.strategies import continuation, pbt

TOP_TRIALS = 10
# A space has up to 50 parameters; bars and axes beyond about ten are unreadable, so the
# importance chart and the parallel coordinates show the most important ones only.
SHOWN_PARAMETERS = 10
SLICE_PARAMETERS = 4
RANK_PARAMETERS = 3
HIGHLIGHTED = 5  # the top trials whose learning curves are drawn in colour
STATE_COLOURS = {
    TrialState.COMPLETE: "#2a7ab0", TrialState.PRUNED: "#e0a030", TrialState.FAIL: "#c0392b",
    TrialState.RUNNING: "#7dbb5b", TrialState.WAITING: "#aaaaaa",
}  # fmt: skip


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


Builder = Callable[[optuna.Study, list[str] | None], go.Figure]


def complete_trials(found: optuna.Study) -> list[FrozenTrial]:
    return found.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def learning_curves(found: optuna.Study, ranked: list[str] | None) -> go.Figure:
    """Every trial's validation accuracy per epoch in grey, the top ones in colour; a paused
    trial that was continued is drawn once, as its continuation (its whole curve)."""
    top = {trial.number for trial in ranked_trials(found)[:HIGHLIGHTED]}
    figure = go.Figure()
    everything = found.get_trials(deepcopy=False)
    taken = ledger.continued(everything)
    trials = [t for t in everything if t.intermediate_values and t.number not in taken]
    if not trials:
        raise ValueError("no trial has reported an epoch yet")
    for trial in sorted(trials, key=lambda t: t.number in top):  # the top ones drawn last
        epochs = sorted(trial.intermediate_values)
        highlighted = trial.number in top
        figure.add_trace(go.Scatter(
            x=epochs, y=[trial.intermediate_values[e] for e in epochs], mode="lines",
            name=f"trial {trial.number} ({trial.state.name.lower()}){continuation.described(trial)}",
            showlegend=highlighted,
            line={"width": 3 if highlighted else 1,
                  **({} if highlighted else {"color": "rgba(120, 120, 120, 0.35)"})},
        ))  # fmt: skip
    figure.update_layout(xaxis_title="epoch", yaxis_title="validation accuracy")
    return figure


def lineage(found: optuna.Study, ranked: list[str] | None) -> go.Figure:
    """A population's (--scheduler pbt) members: each segment's own epochs, one colour a
    member, and a dotted line from where an exploit copied a donor (its parent's last epoch)
    to the exploiter's first epoch of its own; the best member's last segment wider."""
    rows = pbt.lineage_rows(found.get_trials(deepcopy=False))
    if not rows:
        raise ValueError("no member has finished an interval yet")
    by_trial = {row["trial"]: row for row in rows}
    best = getattr(ledger.best(found), "number", None)
    figure = go.Figure()
    palette = plotly.colors.qualitative.Plotly
    members = sorted({row["member"] for row in rows})
    for row in rows:
        colour = palette[members.index(row["member"]) % len(palette)]
        parent = by_trial.get(row["parent"])
        start = max(parent["curve"]) if parent else 0  # its own epochs begin after its parent's
        own = {epoch: value for epoch, value in row["curve"].items() if epoch > start}
        if parent and start:  # the step it took from where it went on
            own = {start: parent["curve"][start], **own}
        figure.add_trace(go.Scatter(
            x=list(own), y=list(own.values()), mode="lines+markers",
            name=f"member {row['member']}", legendgroup=str(row["member"]),
            showlegend=row["generation"] == 0,
            line={"color": colour, "width": 4 if row["trial"] == best else 2,
                  "dash": "dot" if row["donor"] is not None else "solid"},
            hovertext=f"trial {row['trial']}, generation {row['generation']}"
            + (f", copied member {row['donor']}" if row["donor"] is not None else ""),
        ))  # fmt: skip
    figure.update_layout(xaxis_title="epoch", yaxis_title="validation accuracy")
    return figure


def against(found: optuna.Study, attribute: str, title: str) -> go.Figure:
    """The objective of each complete trial against `attribute` of it (log scale)."""
    trials = complete_trials(found)
    points = [(x, t) for t in trials if (x := attribute_of(t, attribute)) is not None]
    if not points:
        raise ValueError(f"no complete trial records its {title}")
    figure = go.Figure(go.Scatter(
        x=[x for x, _ in points], y=[t.values[0] for _, t in points], mode="markers",
        text=[f"trial {t.number}" for _, t in points],
    ))  # fmt: skip
    name = ledger.metric_names(found)[0]
    figure.update_layout(xaxis_title=title, xaxis_type="log", yaxis_title=name)
    return figure


def attribute_of(trial: FrozenTrial, attribute: str) -> float | None:
    if attribute == "seconds":
        return clock.seconds(trial)
    return trial.user_attrs.get(attribute)


def timeline(found: optuna.Study, ranked: list[str] | None) -> go.Figure:
    """Each trial as a bar from its start to its end, one row per worker, coloured by state."""
    trials = [t for t in found.get_trials(deepcopy=False) if t.datetime_start]
    if not trials:
        raise ValueError("no trial has started yet")
    now = datetime.datetime.now()
    figure = go.Figure()
    for state in TrialState:
        chosen = [t for t in trials if t.state == state]
        if not chosen:
            continue
        figure.add_trace(go.Bar(
            orientation="h", name=state.name.lower(), marker_color=STATE_COLOURS[state],
            base=[t.datetime_start.isoformat() for t in chosen],
            x=[clock.elapsed(t.datetime_start, t.datetime_complete or now).total_seconds() * 1000
               for t in chosen],
            y=[t.user_attrs.get(keys.WORKER, "?") for t in chosen],
            text=[f"trial {t.number}" for t in chosen], hoverinfo="text+name",
        ))  # fmt: skip
    figure.update_layout(barmode="overlay", xaxis_type="date", yaxis_title="worker")
    return figure


def final_selection(found: optuna.Study, ranked: list[str] | None) -> go.Figure:
    """search.final's table as error bars: each retrained trial's mean validation accuracy
    over its seeds, ± one standard deviation."""
    rows = seed_selection.recorded(found)
    if not rows:
        raise ValueError("no final selection yet (python -m search.final picks one)")
    return go.Figure(go.Scatter(
        x=[f"trial {row['trial']}" for row in rows], y=[row["val_mean"] for row in rows],
        error_y={"type": "data", "array": [row["val_std"] for row in rows]}, mode="markers",
    )).update_layout(yaxis_title="validation accuracy, mean ± std over seeds")  # fmt: skip


def hypervolume(found: optuna.Study, ranked: list[str] | None) -> go.Figure:
    """Optuna's hypervolume history, from the worst value of each objective seen."""
    trials = complete_trials(found)
    if not trials:
        raise ValueError("no complete trial yet")
    worst = [
        min(t.values[i] for t in trials) if direction.name == "MAXIMIZE"
        else max(t.values[i] for t in trials) * 1.1
        for i, direction in enumerate(found.directions)
    ]  # fmt: skip
    return vis.plot_hypervolume_history(found, reference_point=worst)


def per_objective(plot, index: int) -> Builder:
    def build(found: optuna.Study, ranked: list[str] | None) -> go.Figure:
        name = ledger.metric_names(found)[index]
        return plot(found, target=lambda t: t.values[index], target_name=name)

    return build


# Section title -> figure builder, given the study and its ranked parameters; a builder that
# raises is reported as "not available".
FIGURES: dict[str, Builder] = {
    "Optimisation history": lambda s, ranked: vis.plot_optimization_history(s),
    f"Parameter importances (the {SHOWN_PARAMETERS} most important)": lambda s, ranked: (
        vis.plot_param_importances(s, params=most_important(ranked, SHOWN_PARAMETERS))
    ),
    f"Parallel coordinates (the {SHOWN_PARAMETERS} most important parameters)": lambda s, r: (
        vis.plot_parallel_coordinate(s, params=most_important(r, SHOWN_PARAMETERS))
    ),
    "Contour of the two most important parameters": lambda s, ranked: vis.plot_contour(
        s, params=most_important(ranked, 2)
    ),
    "Slices of the most important parameters": lambda s, ranked: vis.plot_slice(
        s, params=most_important(ranked, SLICE_PARAMETERS)
    ),
    "Rank of the most important parameters": lambda s, ranked: vis.plot_rank(
        s, params=most_important(ranked, RANK_PARAMETERS)
    ),
    "Empirical distribution of the objective (EDF)": lambda s, ranked: vis.plot_edf(s),
    f"Learning curves (validation accuracy per epoch; the top {HIGHLIGHTED} in colour)": (
        learning_curves
    ),
    "Accuracy against parameter count": lambda s, r: against(s, "param_count", "parameters"),
    "Accuracy against seconds per trial": lambda s, r: against(s, "seconds", "seconds"),
    "Timeline (one row per worker)": timeline,
    "Final selection (mean ± std over seeds)": final_selection,
}
# A population's (--scheduler pbt) besides, after the learning curves.
POPULATION_FIGURES: dict[str, Builder] = {
    "Population lineage (a dotted segment copied a donor; the best member's last is wider)": (
        lineage
    ),
}
MULTI_OBJECTIVE_FIGURES: dict[str, Builder] = {
    "Pareto front": lambda s, ranked: vis.plot_pareto_front(s),
    "Hypervolume history": hypervolume,
    **{f"Optimisation history of objective {i + 1}": per_objective(
        vis.plot_optimization_history, i) for i in range(2)},
    **{f"Parameter importances for objective {i + 1}": per_objective(
        vis.plot_param_importances, i) for i in range(2)},
    "Timeline (one row per worker)": timeline,
}  # fmt: skip
# Below this many complete trials the importances say little: the page says so beside them.
IMPORTANCE_MIN_TRIALS = 20

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
    if found.user_attrs.get("scheduler") == "pbt":
        builders = {**builders, **POPULATION_FIGURES}
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
            if "importances" in title.lower():
                body += caveat(found)
        sections.append(f"<h2>{html.escape(title)}</h2>\n{body}")
    return sections


def caveat(found: optuna.Study) -> str:
    complete = len(complete_trials(found))
    if complete >= IMPORTANCE_MIN_TRIALS:
        return ""
    return (
        f'<p class="caveat">From {complete} complete trials only: importances this early are '
        f"mostly noise (trust them from about {IMPORTANCE_MIN_TRIALS}).</p>"
    )


def ranked_trials(found: optuna.Study) -> list[FrozenTrial]:
    """Complete trials, best first: by the first objective, or for several objectives the
    Pareto front first (by the first objective), then the rest."""
    by_first = ledger.best_first(found.get_trials(deepcopy=False), found.directions[0])
    if len(found.directions) == 1:
        return by_first
    front = {trial.number for trial in found.best_trials}
    return [t for t in by_first if t.number in front] + [
        t for t in by_first if t.number not in front
    ]


def top_trials_table(found: optuna.Study) -> str:
    ranked = ranked_trials(found)
    several = len(found.directions) > 1
    front = {trial.number for trial in found.best_trials} if several else set()
    rows = [
        "<tr><td>{}</td>{}<td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>".format(
            f"{trial.number}{html.escape(continuation.described(trial))}",
            f"<td>{'yes' if trial.number in front else ''}</td>" if several else "",
            ", ".join(f"{v:.4f}" for v in trial.values),
            html.escape(str(trial.user_attrs.get("param_count", ""))),
            html.escape(
                yaml.safe_dump(config_attrs.stored(trial) or trial.params, sort_keys=False)
            ),
        )
        for trial in ranked[:TOP_TRIALS]
    ]
    header = (
        "<tr><th>trial</th>" + ("<th>on the Pareto front</th>" if several else "")
        + "<th>value</th><th>parameters (count)</th><th>config</th></tr>"
    )  # fmt: skip
    title = f"Top {TOP_TRIALS} trials" + (", the Pareto front first" if several else "")
    return f"<h2>{title}</h2>\n<table>{header}{''.join(rows)}</table>"


def render(found: optuna.Study) -> str:
    counts = ledger.count_by_state(found.get_trials(deepcopy=False))
    best = ledger.best(found) if len(found.directions) == 1 else None
    summary = (
        f"{counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} pruned, "
        f"{counts[TrialState.FAIL]} failed trials"
        + (f"; best {best.value:.4f} (trial {best.number})" if best else "")
        + f"; space {found.user_attrs.get('space', '?')}, dataset "
        f"{found.user_attrs.get('dataset', '?')}; written {datetime.datetime.now():%Y-%m-%d %H:%M}"
    )
    sections = figure_sections(found) + [top_trials_table(found)]
    selected = "\n".join(seed_selection.shown(found))
    if selected:
        sections.append(f"<pre>{html.escape(selected)}</pre>")
    return PAGE.format(
        title=html.escape(f"Study {found.study_name}"),
        summary=html.escape(summary),
        sections="\n".join(sections),
    )
