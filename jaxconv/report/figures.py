"""The report's figures, drawn with matplotlib's object interface on the Agg canvas.

No pyplot: a `Figure` made directly renders headless and touches no global state, so a report
written inside a training process or a notebook changes nobody's backend. Figures are 7 inches
wide (a page's text width) at `DPI`, and saved at exactly their size (constrained layout instead
of a tight bounding box), so a figure's pixel size is known before it is drawn.
"""

import functools
import pathlib
import textwrap

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from jaxconv import pictures
from jaxconv.report import html, output

DPI = 150
WIDTH = 7.0  # inches
STYLE = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "image.interpolation": "nearest",  # pixels stay pixels: no blurred kernels or digits
    "savefig.facecolor": "white",
}
TAB_BLUE = pictures.TAB10[0]


def styled(draw):
    """Draws under the report's style (matplotlib reads rc settings as artists are made)."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper


def new_figure(height: float, width: float = WIDTH) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def save(figure: Figure, path: pathlib.Path) -> pathlib.Path:
    output.refuse_link(path)
    with matplotlib.rc_context(STYLE):
        figure.savefig(path, dpi=DPI)
    output.record(path)
    return path


def publish(figure: Figure, directory: pathlib.Path, name: str, caption: str) -> str:
    """Saves `figure` as `directory/name.png` and returns the HTML that embeds it."""
    return html.figure(save(figure, directory / f"{name}.png"), caption, DPI)


def bare(axis, label: str = "") -> None:
    """An image panel: no ticks, spines or grid, but room for a row label on the left."""
    axis.set_xticks([])
    axis.set_yticks([])
    axis.grid(False)
    for spine in axis.spines.values():
        spine.set_visible(False)
    if label:
        axis.set_ylabel(label)


def show(axis, image: np.ndarray, **options) -> None:
    """An (H, W, 1 or 3) image in [0, 1]: grey images in grey, colour as they are."""
    image = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
    if image.shape[-1] == 1:
        axis.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0, **options)
    else:
        axis.imshow(image[..., :3], **options)


def panel_grid(figure: Figure, rows: int, columns: int) -> np.ndarray:
    return np.asarray(figure.subplots(rows, columns, squeeze=False))


def class_label(class_names, index: int) -> str:
    return str(class_names[index]) if index < len(class_names) else str(index)


def cell_percent(fraction: float) -> str:
    return "<1%" if fraction < 0.005 else f"{fraction:.0%}"


@styled
def confusion_matrix(matrix: np.ndarray, class_names=(), title: str = "") -> Figure:
    """Rows: true class; columns: predicted; colour: the fraction of the row, with the count
    (or, for pixel counts, the percentage of the row) written in each non-empty cell when the
    classes are few enough to read."""
    matrix = np.asarray(matrix)
    count = len(matrix)
    fractions = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    figure = new_figure(height=4.6, width=5.2)
    axis = figure.subplots()
    shown = axis.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    axis.grid(False)
    labels = [class_label(class_names, k) for k in range(count)]
    step = max(1, count // 20)
    crowded = count > 12 or max(map(len, labels)) > 3
    axis.set_xticks(
        range(0, count, step),
        labels[::step],
        rotation=45 if crowded else 0,
        ha="right" if crowded else "center",
        rotation_mode="anchor",
    )
    axis.set_yticks(range(0, count, step), labels[::step])
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    axis.set_title(textwrap.fill(title, 70))
    if count <= 15:
        # Counts in the thousands (pixels) would overflow their cells: those give percentages.
        percent = matrix.max() >= 1000
        for row, column in zip(*np.nonzero(matrix)):
            fraction = fractions[row, column]
            text = cell_percent(fraction) if percent else str(matrix[row, column])
            axis.text(
                column,
                row,
                text,
                ha="center",
                va="center",
                fontsize=7,
                color="white" if fraction > 0.5 else "black",
            )
    figure.colorbar(shown, ax=axis, label="fraction of the true class", shrink=0.85)
    return figure


@styled
def mistakes(shown_images, true, predicted, confidence, class_names=(), columns: int = 8) -> Figure:
    """The misclassified images, each titled 'true -> predicted' with the model's confidence."""
    pairs = [
        (class_label(class_names, t), class_label(class_names, p)) for t, p in zip(true, predicted)
    ]
    # Long class names (Fashion-MNIST's 'T-shirt/top') take a line each, in every title alike.
    long_names = any(len(a) + len(b) > 10 for a, b in pairs)
    arrow = "\n→ " if long_names else " → "
    rows = max(1, -(-len(shown_images) // columns))
    figure = new_figure(height=(1.3 if long_names else 1.15) * rows + 0.1)
    axes = panel_grid(figure, rows, columns)
    for index, axis in enumerate(axes.flat):
        bare(axis)
        if index >= len(shown_images):
            axis.set_visible(False)
            continue
        show(axis, shown_images[index])
        true_name, predicted_name = pairs[index]
        axis.set_title(f"{true_name}{arrow}{predicted_name}\n{confidence[index]:.0%}", fontsize=7.5)
    figure.suptitle("true → predicted class, with the predicted probability")
    return figure


@styled
def grad_cams(shown_images, maps, titles, num_right: int) -> Figure:
    """Each image under its Grad-CAM map (jet, half transparent), the right ones first."""
    columns = max(1, len(shown_images))
    figure = new_figure(height=1.5)
    axes = panel_grid(figure, 1, columns)
    for index, axis in enumerate(axes.flat):
        bare(axis)
        show(axis, shown_images[index])
        axis.imshow(maps[index], cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0)
        colour = pictures.CORRECT if index < num_right else pictures.WRONG
        axis.set_title(titles[index], fontsize=7.5, color=colour)
    return figure


def kernel_images(kernel: np.ndarray) -> tuple[np.ndarray, bool]:
    """HWIO kernel -> (filters, kh, kw, 3 or 1) and whether the images are colour.

    Three input channels are shown as colour, each filter scaled by its own largest weight
    (0.5 is zero); other counts as their mean over input channels, on one shared scale.
    """
    kernel = np.moveaxis(np.asarray(kernel, np.float32), -1, 0)
    if kernel.shape[-1] == 3:
        peak = np.abs(kernel).reshape(len(kernel), -1).max(axis=1)
        return 0.5 + 0.5 * kernel / np.maximum(peak, 1e-12)[:, None, None, None], True
    return kernel.mean(axis=-1, keepdims=True), False


@styled
def kernels(kernel: np.ndarray, layer: str, limit: int = 64) -> Figure:
    """The first layer's filters as small images, on a diverging colour map centred at zero."""
    filters, colour = kernel_images(kernel)
    filters = filters[:limit]
    columns = min(len(filters), 16 if len(filters) > 32 else 8)
    rows = -(-len(filters) // columns)
    panel = (WIDTH - 0.9) / columns
    figure = new_figure(height=panel * rows + 0.55)
    axes = panel_grid(figure, rows, columns)
    scale = float(np.abs(filters).max()) or 1.0
    shown = None
    for index, axis in enumerate(axes.flat):
        bare(axis)
        if index >= len(filters):
            axis.set_visible(False)
        elif colour:
            axis.imshow(filters[index])
        else:
            shown = axis.imshow(filters[index, ..., 0], cmap="RdBu_r", vmin=-scale, vmax=scale)
    if shown is not None:
        figure.colorbar(shown, ax=axes, label="weight", shrink=0.9, aspect=30)
    height, width, inputs, outputs = np.shape(kernel)
    figure.suptitle(f"{layer}: {outputs} filters of {height}×{width}×{inputs}")
    return figure


def strongest_channels(feature_map: np.ndarray, count: int) -> np.ndarray:
    """The `count` channels of an (H, W, C) map with the largest mean activation, strongest
    first: the ones this image drives, rather than an arbitrary first few."""
    strength = np.abs(feature_map).mean(axis=(0, 1))
    return np.argsort(-strength, kind="stable")[:count]


@styled
def feature_maps(picture: np.ndarray, maps: dict, title: str = "", channels: int = 8) -> Figure:
    """The input, then one row per stage: the channel mean and the most active channels,
    each scaled to its own range. `maps` holds (H, W, C) maps of one example, in depth order."""
    columns = channels + 1
    panel = (WIDTH - 0.7) / columns
    figure = new_figure(height=(panel + 0.12) * (len(maps) + 1) + 0.4)
    axes = panel_grid(figure, len(maps) + 1, columns)
    for axis in axes.flat:
        bare(axis)
    show(axes[0, 0], picture)
    height, width, depth = picture.shape
    axes[0, 0].set_ylabel(f"input\n{height}×{width}×{depth}", fontsize=8)
    axes[0, 0].set_title("input", fontsize=8)
    if maps:
        axes[1, 0].set_title("channel mean", fontsize=8)
    for axis in axes[0, 1:]:
        axis.set_visible(False)
    for row, (name, feature_map) in enumerate(maps.items(), start=1):
        height, width, depth = feature_map.shape
        axes[row, 0].imshow(feature_map.mean(axis=-1), cmap="viridis")
        axes[row, 0].set_ylabel(f"{name}\n{height}×{width}×{depth}", fontsize=8)
        for column, channel in enumerate(strongest_channels(feature_map, channels), start=1):
            axes[row, column].imshow(feature_map[..., channel], cmap="viridis")
            axes[row, column].set_title(f"#{channel}", fontsize=7, pad=2)
        for axis in axes[row, 1 + min(channels, depth) :]:
            axis.set_visible(False)
    figure.suptitle(title)
    return figure


def class_legend(figure: Figure, colours: np.ndarray, classes, class_names, background) -> None:
    handles = [
        Patch(color=colours[k], label=class_label(class_names, k))
        for k in classes
        if k != background
    ]
    if handles:
        figure.legend(
            handles=handles, loc="outside lower center", ncols=min(len(handles), 11), frameon=False
        )


@styled
def segmentation(shown_images, truth, predicted, accuracy, class_names=()) -> Figure:
    """Columns: examples; rows: image, ground truth and prediction overlaid on it."""
    count = len(shown_images)
    background = pictures.background_class(class_names)
    num_classes = max(int(truth.max()), int(predicted.max()), len(class_names) - 1, 1) + 1
    colours = pictures.label_colours(num_classes, background)
    panel = (WIDTH - 0.4) / max(count, 3)
    figure = new_figure(height=3 * (panel + 0.1) + 0.7)
    axes = panel_grid(figure, 3, count)

    def overlay(k, labels):
        return pictures.overlay(shown_images[k], labels[k], colours, background)

    rows = (
        ("image", lambda k: pictures.to_rgb(shown_images[k])),
        ("ground truth", lambda k: overlay(k, truth)),
        ("prediction", lambda k: overlay(k, predicted)),
    )
    for row, (label, draw) in enumerate(rows):
        for column in range(count):
            axis = axes[row, column]
            bare(axis, label if column == 0 else "")
            show(axis, draw(column))
    for column in range(count):
        axes[2, column].set_title(f"pixel accuracy {accuracy[column]:.1%}", fontsize=8)
    present = np.union1d(np.unique(truth), np.unique(predicted)).astype(int)
    class_legend(figure, colours, present, class_names, background)
    return figure


@styled
def class_scores(scores: dict, label: str, title: str = "") -> Figure:
    """One bar per class (e.g. IoU), classes on the x axis."""
    figure = new_figure(height=2.4)
    axis = figure.subplots()
    names = list(scores)
    axis.bar(range(len(names)), [scores[name] for name in names], color=TAB_BLUE)
    axis.set_xticks(range(len(names)), names)
    axis.set_ylim(0.0, 1.0)
    axis.set_xlabel("class")
    axis.set_ylabel(label)
    axis.set_title(title)
    axis.grid(axis="x", visible=False)
    return figure


@styled
def denoising(noisy, denoised, clean, noisy_psnr, denoised_psnr) -> Figure:
    """Columns: examples; rows: noisy input, the model's estimate and the clean image, with
    each estimate's PSNR against the clean one."""
    count = len(clean)
    panel = (WIDTH - 0.4) / max(count, 3)
    figure = new_figure(height=3 * (panel + 0.15) + 0.2)
    axes = panel_grid(figure, 3, count)
    rows = (("noisy", noisy, noisy_psnr), ("denoised", denoised, denoised_psnr))
    for row, (label, shown_images, values) in enumerate(rows):
        for column in range(count):
            bare(axes[row, column], label if column == 0 else "")
            show(axes[row, column], shown_images[column])
            axes[row, column].set_title(f"PSNR {values[column]:.2f} dB", fontsize=8)
    for column in range(count):
        bare(axes[2, column], "clean" if column == 0 else "")
        show(axes[2, column], clean[column])
    return figure
