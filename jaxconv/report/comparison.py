"""Several runs side by side: one figure of their curves and one table of their results.

`compare(workdirs, out_dir)` writes `compare.png`, `compare.md` (the table, for a README or a
paper draft) and `compare.html` (both, self-contained). Runs may differ in length and in what
they logged: a run without a metric leaves a gap ('—') in the table and no line in its panel.
"""

import pathlib

from jaxconv.errors import ConfigError
from jaxconv.report import curves, figures, html, loading, output
from jaxconv.report.html import Section


def run_names(paths: list[pathlib.Path]) -> list[str]:
    """Each run's folder name, with its parent's name too where two folders share a name."""
    names = [path.resolve().name for path in paths]
    return [
        f"{path.resolve().parent.name}/{name}" if names.count(name) > 1 else name
        for path, name in zip(paths, names)
    ]


def last_value(records: list[dict], key: str):
    steps, values = curves.series(records, key)
    return float(values[-1]) if values.size else None


def result_keys(runs: list[loading.RunFiles]) -> list[str]:
    """The evaluation metrics any run logged, in the order first seen."""
    keys = {}
    for run in runs:
        for key in curves.metric_keys(run.records):
            if not key.startswith("train_"):
                keys.setdefault(key, None)
    return list(keys)


def column_title(key: str) -> str:
    split, metric = curves.split_key(key)
    return f"{split} {curves.metric_title(metric)}"


def results_table(runs: list[loading.RunFiles], names: list[str]) -> tuple[list, list]:
    """(header, rows): one row per run with its final metrics, length, size and times.

    Final evaluation metrics come from summary.json when the run finished, else from its
    last logged evaluation."""
    metrics = result_keys(runs)
    header = [
        "run",
        "model",
        "steps",
        "final train loss",
        *[column_title(key) for key in metrics],
        "parameters",
        "wall time (s)",
        "train images/s",
    ]
    rows = []
    for run, name in zip(runs, names):
        summary = run.summary
        last_step = run.records[-1]["step"] if run.records else None
        rows.append(
            [
                name,
                summary.get("model", run.config.model.name if run.config else None),
                summary.get("steps", last_step),
                last_value(run.records, "train_loss"),
                *[summary.get(key, last_value(run.records, key)) for key in metrics],
                summary.get("num_params"),
                summary.get("wall_time_s"),
                summary.get("train_images_per_s"),
            ]
        )
    return header, rows


def compare(workdirs, out_dir: str | pathlib.Path) -> pathlib.Path:
    """Writes the comparison of the runs in `workdirs` into `out_dir`; returns compare.html."""
    paths = [pathlib.Path(workdir) for workdir in workdirs]
    if not paths:
        raise ConfigError("compare needs at least one run's workdir.")
    runs = [loading.read_run(path) for path in paths]
    names = run_names(paths)
    out = output.prepare(pathlib.Path(out_dir))  # removes what the last comparison wrote
    header, rows = results_table(runs, names)
    output.write_page(out / "compare.md", html.markdown_table(header, rows))
    sections = [Section("results", "Results", html.table(header, rows))]
    histories = {name: run.records for name, run in zip(names, runs)}
    if any(run.records for run in runs):
        caption = (
            "Training loss (means over each logging interval) and evaluation metrics against "
            "the step, one colour per run."
        )
        figure = figures.publish(curves.comparison_curves(histories), out, "compare", caption)
    else:
        figure = html.note("None of these runs has logged metrics yet.")
    sections.append(Section("curves", "Curves", figure))
    page = html.page("Comparison of " + ", ".join(names), "", sections)
    return output.write_page(out / "compare.html", page)
