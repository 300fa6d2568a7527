"""What a retrain leaves beside its checkpoint for a person to look at, as timm and Lightning
leave theirs: history.csv (one row per epoch) and report.html, one self-contained page
(plotly.js inline: it opens with no network) with the learning curves, the confusion matrix
as a heatmap and the accuracy of each class."""

import csv
import html
import io
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from registry import files
from search.training.trainer import EpochResult

HISTORY_COLUMNS = ("epoch", "train_loss", "test_accuracy", "test_loss", "lr", "seconds")


def write_history(path: Path, history: list[EpochResult]) -> None:
    """history.csv: epoch, train loss, test accuracy and loss, learning rate, seconds."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(HISTORY_COLUMNS)
    for epoch in history:
        writer.writerow([epoch.epoch, epoch.train_loss, epoch.test_accuracy, epoch.test_loss,
                         epoch.lr, round(epoch.train_seconds, 3)])  # fmt: skip
    files.write_text(path, text.getvalue())


def figures(history: list[EpochResult], metrics: dict[str, Any]) -> dict[str, go.Figure]:
    """Section title -> figure."""
    epochs = [epoch.epoch for epoch in history]
    curves = make_subplots(rows=1, cols=2, subplot_titles=("loss", "test accuracy"))
    curves.add_trace(go.Scatter(x=epochs, y=[e.train_loss for e in history], name="train loss"),
                     row=1, col=1)  # fmt: skip
    curves.add_trace(go.Scatter(x=epochs, y=[e.test_loss for e in history], name="test loss"),
                     row=1, col=1)  # fmt: skip
    curves.add_trace(go.Scatter(x=epochs, y=[e.test_accuracy for e in history],
                                name="test accuracy"), row=1, col=2)  # fmt: skip
    curves.update_xaxes(title_text="epoch")
    classes = list(metrics["per_class_accuracy"])
    confusion = go.Figure(go.Heatmap(
        z=metrics["confusion_matrix"], x=classes, y=classes, colorscale="Blues",
        hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>",
    ))  # fmt: skip
    confusion.update_layout(xaxis_title="predicted", yaxis_title="true",
                            yaxis_autorange="reversed")  # fmt: skip
    per_class = go.Figure(go.Bar(x=classes, y=list(metrics["per_class_accuracy"].values())))
    per_class.update_layout(yaxis_title="test accuracy", yaxis_range=[0, 1])
    return {
        "Learning curves": curves,
        "Confusion matrix (rows: true class, columns: predicted)": confusion,
        "Accuracy per class": per_class,
    }


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; }}
pre {{ font-size: 0.85em; }}</style></head><body>
<h1>{title}</h1><p>{summary}</p>
{sections}
<h2>Config</h2><pre>{config}</pre>
</body></html>
"""


def write_page(
    path: Path, title: str, history: list[EpochResult], metrics: dict[str, Any], config: str
) -> None:
    sections = []
    for number, (heading, figure) in enumerate(figures(history, metrics).items()):
        body = figure.to_html(full_html=False, include_plotlyjs=number == 0)
        sections.append(f"<h2>{html.escape(heading)}</h2>\n{body}")
    summary = (
        f"test accuracy {metrics['test_accuracy']:.4f} after {metrics['epochs']} epochs; "
        f"{metrics['param_count']:,} parameters; {metrics['seconds_per_epoch']:.1f} s per epoch "
        f"on {metrics['device']}"
    )
    files.write_text(path, PAGE.format(title=html.escape(title), summary=html.escape(summary),
                                       sections="\n".join(sections),
                                       config=html.escape(config)))  # fmt: skip
