"""The report of one run: `build(workdir)` writes `workdir/report/index.html` and its PNGs.

Sections: the summary, training and evaluation curves, the resolved config, the model table,
the task's predictions (see `predictions`), the first layer's kernels and the feature maps of
one evaluation image stage by stage. A section that cannot be drawn (no config.json, no
checkpoint yet, a model that exposes no feature maps) says why instead of failing the report.
"""

import json
import pathlib

import numpy as np

from jaxconv import pictures
from jaxconv.report import curves, figures, html, loading, output, predictions
from jaxconv.report.html import Section

# Summary entries that are not one number or word (per-class lists) stay out of its table.
SCALAR_TYPES = (int, float, str, bool)


def build(workdir: str | pathlib.Path, *, max_examples: int = 1000) -> pathlib.Path:
    """Writes the report of the run in `workdir` and returns the path of its index.html.

    The model runs on at most `max_examples` evaluation examples (fewer for the heavier
    segmentation and denoising figures), so a report takes seconds on a CPU.
    """
    files = loading.read_run(workdir)
    out = output.prepare(files.workdir / "report")  # removes what the last build wrote
    sections = [overview(files), training_curves(files, out)]
    if files.config is None:
        sections.append(
            Section(
                "model",
                "Model",
                html.note(
                    f"{files.workdir / 'config.json'} is missing, so the model cannot be "
                    "rebuilt; runs write it when they start."
                ),
            )
        )
    else:
        sections.append(config_section(files))
        sections += model_sections(files, out, max_examples)
    title = f"Run {files.name}"
    subtitle = ", ".join(
        str(files.summary[key]) for key in ("model", "dataset", "devices") if key in files.summary
    )
    return output.write_page(out / "index.html", html.page(title, subtitle, sections))


def overview(files: loading.RunFiles) -> Section:
    rows = [(key, value) for key, value in files.summary.items() if isinstance(value, SCALAR_TYPES)]
    if not rows:
        return Section(
            "summary", "Summary", html.note("No summary.json yet: the run has not finished.")
        )
    return Section("summary", "Summary", html.table(("", "value"), rows))


def training_curves(files: loading.RunFiles, out: pathlib.Path) -> Section:
    if not curves.run_panels(files.records):
        return Section("curves", "Training curves", html.note("No metrics logged yet."))
    figure = curves.training_curves(files.records, title=files.name)
    caption = (
        "Training metrics are means over each logging interval; evaluation metrics (points) "
        "cover the whole evaluation split. Throughput leaves out the first interval, which "
        "includes compilation."
    )
    return Section(
        "curves", "Training curves", figures.publish(figure, out, "training_curves", caption)
    )


def flatten(tree: dict, prefix: str = "") -> list[tuple[str, object]]:
    """Nested config entries as (dotted key, value) pairs in the file's order."""
    pairs = []
    for key, value in tree.items():
        if isinstance(value, dict):
            pairs += flatten(value, f"{prefix}{key}.")
        else:
            pairs.append((f"{prefix}{key}", value))
    return pairs


def config_section(files: loading.RunFiles) -> Section:
    """The resolved config, one `key value` line each, keys as `--config.<key>=` takes them."""
    pairs = flatten(files.config_json)
    width = max(len(key) for key, _ in pairs)
    lines = [f"{key.ljust(width)}  {json.dumps(value)}" for key, value in pairs]
    caption = html.paragraph(
        "As the run resolved it (config.json); null leaves the choice to the model or dataset."
    )
    return Section("config", "Configuration", caption + html.preformatted("\n".join(lines)))


def model_sections(files: loading.RunFiles, out: pathlib.Path, max_examples: int):
    from jaxconv import models

    try:
        restored = loading.restore_model(files)
    except FileNotFoundError as error:
        return [Section("model", "Model", html.note(str(error)))]
    summary = models.summary(restored.model, (1, *restored.source.image_shape))
    return [
        Section("model", "Model", html.preformatted(str(summary))),
        *predictions.task_sections(restored, out, max_examples),
        kernels_section(restored, summary, out),
        feature_maps_section(restored, out),
    ]


def first_convolution(summary, params) -> tuple[str, np.ndarray] | None:
    """(layer path, HWIO kernel) of the first convolution the model calls, or None."""
    for layer in summary.layers:
        if layer.kind not in ("Conv", "ConvTranspose"):
            continue
        tree = params
        for name in layer.path.split("/"):
            tree = tree.get(name, {})
        kernel = tree.get("kernel")
        if kernel is not None and np.ndim(kernel) == 4:
            return layer.path, np.asarray(kernel)
    return None


def kernels_section(restored: loading.Restored, summary, out: pathlib.Path) -> Section:
    found = first_convolution(summary, restored.variables["params"])
    if found is None:
        return Section("kernels", "First-layer kernels", html.note("The model has no convolution."))
    layer, kernel = found
    caption = f"The learned kernels of {layer} {restored.trained}" + (
        ", each scaled to its own largest weight."
        if kernel.shape[2] == 3
        else (
            "; blue is negative, red positive, on one scale"
            + (" (mean over input channels)." if kernel.shape[2] > 1 else ".")
        )
    )
    figure = figures.kernels(kernel, layer)
    return Section(
        "kernels", "First-layer kernels", figures.publish(figure, out, "kernels", caption)
    )


def feature_maps_section(restored: loading.Restored, out: pathlib.Path) -> Section:
    import jax

    from jaxconv import models

    batch = restored.batch([0])
    order = []

    def sown(variables, x):
        _, maps = models.feature_maps(restored.model, variables, x)
        # A jitted function returns its dicts with sorted keys; the figure needs the order the
        # model sowed them in (encoder before decoder), which tracing sees once.
        order.extend(maps)
        return maps

    try:
        maps = jax.jit(sown)(restored.variables, batch["image"])
    except KeyError:
        return Section(
            "feature-maps",
            "Feature maps",
            html.note(f"Model '{restored.config.model.name}' exposes no feature maps."),
        )
    # Flattened vectors (a classifier's pooled features) have no picture to show.
    spatial = {
        name: np.asarray(maps[name][0], np.float32) for name in order if maps[name].ndim == 4
    }
    data = restored.config.data
    picture = pictures.denormalise(batch["image"][0], data.mean, data.std)
    label = batch.get("label")
    named = f" (class {label[0]})" if label is not None and np.ndim(label[0]) == 0 else ""
    title = f"evaluation example 0{named}, {restored.trained}"
    figure = figures.feature_maps(picture, spatial, title=title)
    caption = (
        "The feature maps of one evaluation image at each stage, from the input down: the "
        "mean over channels, then the 8 channels this image drives hardest (numbered), each "
        "scaled to its own range."
    )
    return Section(
        "feature-maps", "Feature maps", figures.publish(figure, out, "feature_maps", caption)
    )
