"""Training and evaluation curves from `metrics.jsonl` records, for one run or several.

Records are what `MetricWriter` wrote: training records hold `train_<metric>`, the norms, the
learning rate and the throughput; evaluation records hold `<split>_<metric>` (e.g.
`test_accuracy`). Curves pair them by metric: one panel shows train and test loss together.
"""

import dataclasses
import re

import numpy as np
from matplotlib import ticker

from jaxconv import pictures
from jaxconv.report import figures

SCHEDULE_KEYS = ("step", "learning_rate", "images_per_second", "epoch")
# Seconds per step waiting for the input pipeline, and in the step itself: one panel.
TIMING_KEYS = ("input_seconds", "step_seconds")
TIMING_HIDDEN = ("input_wait_share",)
NORM_KEYS = ("train_grad_norm", "train_param_norm", "train_update_norm")
HIDDEN_KEYS = ("train_nonfinite",)
# Per-class scores (segmentation's iou_<class>) would be a panel each: their mean is drawn, and
# the segmentation section shows the classes side by side.
PER_CLASS = re.compile(r"_iou_\d+$")
METRIC_TITLES = {
    "loss": "loss",
    "accuracy": "accuracy",
    "pixel_accuracy": "pixel accuracy",
    "miou": "mean IoU",
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
}


@dataclasses.dataclass(frozen=True)
class Panel:
    title: str
    keys: tuple[str, ...]
    log_scale: bool = False


def series(records: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of the records that hold `key`, non-finite values left out."""
    pairs = [(r["step"], r[key]) for r in records if isinstance(r.get(key), int | float)]
    if not pairs:
        return np.zeros(0), np.zeros(0)
    steps, values = np.asarray(pairs, np.float64).T
    finite = np.isfinite(values)
    return steps[finite], values[finite]


def split_key(key: str) -> tuple[str, str]:
    """'test_pixel_accuracy' -> ('test', 'pixel_accuracy'): splits are named without '_'."""
    split, _, metric = key.partition("_")
    return split, metric


def metric_title(metric: str) -> str:
    return METRIC_TITLES.get(metric, metric.replace("_", " "))


def metric_keys(records: list[dict]) -> list[str]:
    """Every train or evaluation metric key in the records, in the order first seen."""
    skipped = set(SCHEDULE_KEYS + NORM_KEYS + HIDDEN_KEYS + TIMING_KEYS + TIMING_HIDDEN)
    keys = {}
    for record in records:
        for key in record:
            if key not in skipped and not PER_CLASS.search(key):
                keys.setdefault(key, None)
    return list(keys)


def wide_range(records: list[dict], keys) -> bool:
    """Whether positive values span more than a factor of 10 (then a log scale reads better)."""
    values = np.concatenate([series(records, key)[1] for key in keys] or [np.zeros(0)])
    return bool(values.size and values.min() > 0 and values.max() / values.min() > 10)


def run_panels(records: list[dict]) -> list[Panel]:
    """Loss first, then each metric (train and evaluation together), the norms, the learning
    rate and the throughput, each when the records hold it."""
    by_metric: dict[str, list[str]] = {}
    for key in metric_keys(records):
        by_metric.setdefault(split_key(key)[1], []).append(key)
    order = sorted(by_metric, key=lambda metric: metric != "loss")
    panels = [
        Panel(
            metric_title(metric),
            tuple(by_metric[metric]),
            metric == "loss" and wide_range(records, by_metric[metric]),
        )
        for metric in order
    ]
    norms = tuple(key for key in NORM_KEYS if series(records, key)[0].size)
    if norms:
        panels.append(Panel("gradient, parameter and update norms", norms, log_scale=True))
    for key, title in (("learning_rate", "learning rate"), ("images_per_second", "images / s")):
        if series(records, key)[0].size:
            panels.append(Panel(title, (key,)))
    timings = tuple(key for key in TIMING_KEYS if series(records, key)[0].size)
    if timings:
        panels.append(Panel("seconds per step: waiting for input, in the step", timings))
    return panels


def line_label(key: str) -> str:
    if key in NORM_KEYS:
        return key.removeprefix("train_").removesuffix("_norm")
    if key in TIMING_KEYS:
        return key.removesuffix("_seconds")
    return split_key(key)[0] if "_" in key and key not in SCHEDULE_KEYS else ""


def throughput(steps: np.ndarray, values: np.ndarray):
    """The first logging interval includes compilation: drawn, it would squash the rest."""
    return (steps[1:], values[1:]) if len(steps) > 1 else (steps, values)


class PlainLogFormatter(ticker.LogFormatter):
    """Labels the ticks matplotlib's log formatter would label, written 0.2 rather than 2e-01."""

    def __call__(self, value, position=None) -> str:
        return f"{value:g}" if super().__call__(value, position) else ""


def log_axis(axis) -> None:
    axis.set_yscale("log")
    axis.yaxis.set_major_formatter(PlainLogFormatter(labelOnlyBase=False))
    axis.yaxis.set_minor_formatter(
        PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.5))
    )


def panel_grid(count: int):
    columns = 2 if count > 1 else 1
    rows = -(-count // columns)
    figure = figures.new_figure(height=2.2 * rows + 0.3)
    axes = figures.panel_grid(figure, rows, columns)
    axes = list(axes.flat)
    for axis in axes[count:]:
        axis.set_visible(False)
    return figure, axes[:count]


@figures.styled
def training_curves(records: list[dict], title: str = ""):
    """One panel per quantity against the step: train lines, evaluation points joined."""
    panels = run_panels(records)
    figure, axes = panel_grid(len(panels))
    for axis, panel in zip(axes, panels):
        for index, key in enumerate(panel.keys):
            steps, values = series(records, key)
            if key == "images_per_second":
                steps, values = throughput(steps, values)
            evaluation = not key.startswith("train_") and key not in SCHEDULE_KEYS
            axis.plot(
                steps,
                values,
                marker="o" if evaluation else None,
                markersize=3,
                linewidth=1.2,
                color=pictures.TAB10[index % 10],
                label=line_label(key),
            )
        axis.set_title(panel.title)
        axis.set_xlabel("step")
        if panel.log_scale:
            log_axis(axis)
        if panel.keys == ("images_per_second",):
            axis.set_ylim(bottom=0)  # from zero, so noise between intervals looks its size
        if any(line_label(key) for key in panel.keys):
            axis.legend(frameon=False)
    figure.suptitle(title)
    return figure


@figures.styled
def comparison_curves(runs: dict[str, list[dict]]):
    """Training loss, then each evaluation metric any run logged, with one colour per run."""
    keys = ["train_loss"]
    for records in runs.values():
        keys += [key for key in metric_keys(records) if not key.startswith("train_")]
    keys = [
        key for key in dict.fromkeys(keys) if any(series(r, key)[0].size for r in runs.values())
    ]
    everything = [record for records in runs.values() for record in records]
    figure, axes = panel_grid(len(keys))
    for axis, key in zip(axes, keys):
        for index, (name, records) in enumerate(runs.items()):
            steps, values = series(records, key)
            if steps.size:
                axis.plot(
                    steps,
                    values,
                    marker=None if key.startswith("train_") else "o",
                    markersize=3,
                    linewidth=1.2,
                    color=pictures.TAB10[index % 10],
                    label=name,
                )
        split, metric = split_key(key)
        axis.set_title(f"{'training' if split == 'train' else split} {metric_title(metric)}")
        axis.set_xlabel("step")
        if metric == "loss" and wide_range(everything, [key]):
            log_axis(axis)
    handles, labels = [], []
    for axis in axes:
        for handle, label in zip(*axis.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4))
    return figure
