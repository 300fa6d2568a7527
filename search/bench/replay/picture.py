"""The replay's picture: normalized regret against epochs spent, one line a strategy (its mean
over the runs, tasks x seeds) with a band of one standard error, as a PNG (matplotlib: the
lcbench extra) and as a self-contained HTML page (plotly.js inline, as the study report is)."""

import math
import statistics
import textwrap
from pathlib import Path

from registry import files
from search.bench.replay import figures

POINTS = 101  # where along the budget each line is drawn


def regret_lines(
    runs: list[figures.Run], scales: dict[str, figures.Reference], budget: int
) -> dict[str, tuple[list[int], list[float], list[float]]]:
    """Per strategy: epochs spent, the mean regret of its runs then, and its standard error.
    A run's regret at an epoch is that of the best trial it had completed by then."""
    at = sorted({round(budget * k / (POINTS - 1)) for k in range(POINTS)})
    lines: dict[str, tuple[list[int], list[float], list[float]]] = {}
    for name in dict.fromkeys(run.strategy for run in runs):
        own = [run for run in runs if run.strategy == name]
        regrets = [[regret_by(run, scales[run.task], epochs) for run in own] for epochs in at]
        means = [statistics.fmean(values) for values in regrets]
        errors = [figures.standard_error(values) for values in regrets]
        lines[name] = (at, means, [0.0 if math.isnan(e) else e for e in errors])
    return lines


def regret_by(run: figures.Run, scale: figures.Reference, epochs: int) -> float:
    found = [value for spent, value in run.improvements if spent <= epochs]
    return scale.regret(max(found) if found else None)


TITLE_Y = "normalized regret (0: the task's best random configuration, 1: their median)"


def write_png(path: Path, lines, title: str) -> None:
    """The picture as a PNG, by matplotlib (its Agg backend: no screen)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(8, 5), dpi=120)
    for name, (epochs, means, errors) in lines.items():
        axes.plot(epochs, means, label=name)
        axes.fill_between(epochs, [m - e for m, e in zip(means, errors, strict=True)],
                          [m + e for m, e in zip(means, errors, strict=True)], alpha=0.2)  # fmt: skip
    axes.set(xlabel="epochs spent", ylabel="normalized regret")
    axes.set_title(textwrap.fill(title, 80), fontsize=9)
    axes.legend()
    axes.grid(alpha=0.3)
    with files.atomic_path(path) as partial:
        figure.savefig(partial, format="png")
    pyplot.close(figure)


def write_html(path: Path, lines, title: str) -> None:
    """The picture as one HTML page that opens with no network (plotly.js inline)."""
    import plotly.colors
    import plotly.graph_objects as go

    palette = plotly.colors.qualitative.Plotly
    figure = go.Figure()
    for index, (name, (epochs, means, errors)) in enumerate(lines.items()):
        color = palette[index % len(palette)]
        upper = [m + e for m, e in zip(means, errors, strict=True)]
        lower = [m - e for m, e in zip(means, errors, strict=True)]
        figure.add_trace(go.Scatter(
            x=epochs + epochs[::-1], y=upper + lower[::-1], fill="toself", line={"width": 0},
            fillcolor=color, opacity=0.2, hoverinfo="skip", showlegend=False, legendgroup=name,
        ))  # fmt: skip
        figure.add_trace(go.Scatter(x=epochs, y=means, name=name, line={"color": color},
                                    legendgroup=name))  # fmt: skip
    figure.update_layout(title=title, xaxis_title="epochs spent", yaxis_title=TITLE_Y)
    files.write_text(path, figure.to_html(full_html=True, include_plotlyjs=True))


def write(stem: Path, lines, title: str) -> list[Path]:
    """STEM.html always; STEM.png where matplotlib is installed. The paths written."""
    written = [stem.with_suffix(".html")]
    write_html(written[0], lines, title)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return written
    written.append(stem.with_suffix(".png"))
    write_png(written[1], lines, title)
    return written
