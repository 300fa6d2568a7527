"""The HTML report holds every plot and renders in a real browser (headless Chromium)."""

import datetime
import html
import io
import math
import random
import re

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState
from PIL import Image
from playwright.sync_api import sync_playwright

from search.tuning.results import seed_selection, study_report
from tests.conftest import run_command, run_tiny_study

CHROMIUM = "/usr/bin/chromium"  # Debian's package; .ci/run installs it
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def fabricated(directions: list[str]) -> optuna.Study:
    """A study as a real search leaves one, made up without training: 30 trials of three
    parameters on two workers, learning curves, a quarter pruned, one failed; for a single
    objective also a final selection of the top three."""
    rng = random.Random(0)
    study = optuna.create_study(directions=directions)
    study.set_metric_names(["val_accuracy", "param_count"][: len(directions)])
    start = datetime.datetime(2026, 12, 1, 10, 0, 0)
    distributions = {"lr": FloatDistribution(1e-4, 1, log=True),
                     "width": IntDistribution(16, 256),
                     "optimizer": CategoricalDistribution(["sgd", "adam", "lion"])}  # fmt: skip
    for number in range(30):
        lr, width = 10 ** rng.uniform(-4, 0), rng.randint(16, 256)
        quality = 0.9 - abs(math.log10(lr) + 1.5) * 0.15 + width / 2560
        epochs = 3 if number % 4 == 0 else 10
        curve = {e: quality * (1 - math.exp(-e / 3)) for e in range(1, epochs + 1)}
        state = TrialState.PRUNED if epochs == 3 else TrialState.COMPLETE
        state = TrialState.FAIL if number == 7 else state
        values = [curve[epochs], width * width * 20][: len(directions)]
        trial = optuna.trial.create_trial(
            state=state, values=values if state == TrialState.COMPLETE else None,
            params={"lr": lr, "width": width, "optimizer": rng.choice(["sgd", "adam", "lion"])},
            distributions=distributions,
            intermediate_values=curve if len(directions) == 1 else {},
            user_attrs={"param_count": width * width * 20, "worker": f"host:{number % 2}"},
        )  # fmt: skip
        trial.datetime_start = start + datetime.timedelta(seconds=40 * (number // 2))
        trial.datetime_complete = trial.datetime_start + datetime.timedelta(seconds=4 * epochs)
        study.add_trial(trial)
    if len(directions) == 1:
        best = sorted(study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: -t.value)
        rows = [{"trial": t.number, "seeds": [0, 1, 2], "search_val_accuracy": t.value,
                 "val_mean": t.value - 0.01 * i, "val_std": 0.005, "test_mean": t.value - 0.02,
                 "test_std": 0.01} for i, t in enumerate(best[:3])]  # fmt: skip
        study.set_user_attr(seed_selection.RECORD, rows)
        study.set_user_attr(seed_selection.CHOSEN_AMONG, seed_selection.complete_count(study))
    return study


KINDS = {"single": (["maximize"], study_report.FIGURES),
         "multi": (["maximize", "minimize"], study_report.MULTI_OBJECTIVE_FIGURES)}  # fmt: skip


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    """A real study's report, written by the command."""
    folder = tmp_path_factory.mktemp("report")
    storage = run_tiny_study(folder, "r", epochs=3, trials=8)
    result = run_command("search.report", "--study", "r", "--storage", storage, "-o", "r.html",
                         cwd=folder)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # none of the warnings Optuna's plots give on a small study
    return folder / "r.html", optuna.load_study(study_name="r", storage=storage)


def test_a_real_studys_report_has_every_section_and_the_top_trials(report_file):
    path, study = report_file
    page = path.read_text()
    for title in study_report.FIGURES:
        assert f"<h2>{html.escape(title)}</h2>" in page
    drawn = page.count('class="plotly-graph-div"')
    # test_tiny searches one parameter: no contour or rank of two, no final selection yet
    assert drawn == len(study_report.FIGURES) - page.count('class="unavailable"') >= 9
    assert "no final selection yet" in page and "mostly noise" in page  # 8 trials: a caveat
    assert "<script src=" not in page  # plotly.js is inline: no network needed
    assert f"<td>{study.best_trial.number}</td><td>{study.best_value:.4f}</td>" in page


@pytest.mark.parametrize("kind", KINDS)
def test_every_figure_is_drawn_in_headless_chromium(kind, tmp_path):
    directions, figures = KINDS[kind]
    path = tmp_path / f"{kind}.html"
    path.write_text(study_report.render(fabricated(directions)))
    assert 'class="unavailable"' not in path.read_text()
    errors = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(path.as_uri())
        page.wait_for_function(
            f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {len(figures)}",
            timeout=60_000,
        )
        drawn = page.eval_on_selector_all(
            ".js-plotly-plot", "plots => plots.map(p => p.querySelectorAll('path, rect').length)"
        )
        screenshot = page.screenshot(full_page=True)
        (tmp_path / f"{kind}.png").write_bytes(screenshot)
        browser.close()
    assert errors == []
    assert len(drawn) == len(figures) and all(count > 0 for count in drawn)
    pixels = np.asarray(Image.open(io.BytesIO(screenshot)).convert("L"))
    assert pixels.shape[1] == 1280 and pixels.std() > 10  # something was drawn, not blank


def test_a_multi_objective_table_lists_the_front_first():
    study = fabricated(["maximize", "minimize"])
    page = study_report.render(study)
    table = page[page.index("Top 10 trials, the Pareto front first") :]
    front = {trial.number for trial in study.best_trials}
    listed = [int(cell) for cell in re.findall(r"<tr><td>(\d+)</td>", table)]
    assert set(listed[: len(front)]) == front and len(listed) == 10
    assert "<td>yes</td>" in table


def test_with_many_parameters_the_charts_show_the_ten_most_important():
    """A 30-parameter study: the importance bars and the parallel-coordinate axes are the ten
    most important parameters (and the objective), not all thirty."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    for _ in range(40):
        trial = study.ask()
        values = [trial.suggest_float(f"p{i:02d}", 0.0, 1.0) for i in range(30)]
        study.tell(trial, values[0] + 0.5 * values[1] + 0.01 * sum(values))
    ranked = study_report.ranked_parameters(study)
    assert ranked[:2] == ["p00", "p01"]
    figures = {title: build(study, ranked) for title, build in study_report.FIGURES.items()
               if title.startswith(("Parameter imp", "Parallel"))}  # fmt: skip
    importance = next(f for title, f in figures.items() if title.startswith("Parameter imp"))
    assert sorted(importance.data[0].y) == sorted(ranked[: study_report.SHOWN_PARAMETERS])
    parallel = next(f for title, f in figures.items() if title.startswith("Parallel"))
    labels = parallel.layout.xaxis.ticktext  # Optuna draws the axes as ticks of scatter lines
    assert labels[0] == "Objective Value"
    assert sorted(labels[1:]) == sorted(ranked[: study_report.SHOWN_PARAMETERS])
