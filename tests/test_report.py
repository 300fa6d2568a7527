"""The HTML report holds every plot and renders in a real browser (headless Chromium)."""

import io

import numpy as np
import optuna
import pytest
from PIL import Image
from playwright.sync_api import sync_playwright

from search.tuning import report
from tests.conftest import run_command, run_tiny_study

CHROMIUM = "/usr/bin/chromium"  # Debian's package; .ci/run installs it
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    storage = run_tiny_study(folder, "r", epochs=3, trials=8)
    result = run_command("search.report", "--study", "r", "--storage", storage, "-o", "r.html",
                         cwd=folder)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return folder / "r.html", optuna.load_study(study_name="r", storage=storage)


def test_the_report_contains_every_plot_and_the_top_trials(report_file):
    path, study = report_file
    page = path.read_text()
    for title in report.FIGURES:
        assert f"<h2>{title}</h2>" in page
    assert page.count('class="plotly-graph-div"') == len(report.FIGURES)
    assert "<script src=" not in page  # plotly.js is inline: no network needed
    assert f"<td>{study.best_trial.number}</td><td>{study.best_value:.4f}</td>" in page


def test_the_report_renders_in_headless_chromium_without_errors(report_file, tmp_path):
    path, _ = report_file
    errors = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(path.as_uri())
        page.wait_for_function(
            f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= "
            f"{len(report.FIGURES)}",
            timeout=30_000,
        )
        drawn = page.eval_on_selector_all(
            ".js-plotly-plot", "plots => plots.map(p => p.querySelectorAll('path, rect').length)"
        )
        screenshot = page.screenshot(full_page=False)
        (tmp_path / "report.png").write_bytes(screenshot)
        browser.close()
    assert errors == []
    assert len(drawn) == len(report.FIGURES) and all(count > 0 for count in drawn)
    pixels = np.asarray(Image.open(io.BytesIO(screenshot)).convert("L"))
    assert pixels.shape == (900, 1280) and pixels.std() > 10  # something was drawn, not blank


def test_a_multi_objective_report_draws_the_pareto_front(tmp_path):
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["val_accuracy", "param_count"])
    for accuracy, params in ((0.5, 100), (0.6, 200), (0.4, 300)):
        trial = study.ask()
        trial.suggest_float("lr", 1e-3, 1e-1, log=True)
        study.tell(trial, [accuracy, params])
    page = report.render(study)
    assert "<h2>Pareto front</h2>" in page and page.count('class="plotly-graph-div"') == 1
    assert "<td>0.6000, 200.0000</td>" in page  # both objectives in the top-trials table


def test_with_many_parameters_the_charts_show_the_ten_most_important():
    """A 30-parameter study: the importance bars and the parallel-coordinate axes are the ten
    most important parameters (and the objective), not all thirty."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    for _ in range(40):
        trial = study.ask()
        values = [trial.suggest_float(f"p{i:02d}", 0.0, 1.0) for i in range(30)]
        study.tell(trial, values[0] + 0.5 * values[1] + 0.01 * sum(values))
    ranked = report.ranked_parameters(study)
    assert ranked[:2] == ["p00", "p01"]
    figures = dict(zip(report.FIGURES, [
        build(study, ranked) for build in report.FIGURES.values()], strict=True))  # fmt: skip
    importance = next(f for title, f in figures.items() if title.startswith("Parameter imp"))
    assert sorted(importance.data[0].y) == sorted(ranked[: report.SHOWN_PARAMETERS])
    parallel = next(f for title, f in figures.items() if title.startswith("Parallel"))
    labels = parallel.layout.xaxis.ticktext  # Optuna draws the axes as ticks of scatter lines
    assert labels[0] == "Objective Value"
    assert sorted(labels[1:]) == sorted(ranked[: report.SHOWN_PARAMETERS])
