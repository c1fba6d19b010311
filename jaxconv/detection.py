"""Counting coins by convolution: zero-mean disk detectors at many radii, then peak finding.

The classical pipeline that ConvNets learned to replace, built only from `jaxconv.ops`:

1. A bank of detectors, one per radius r: a zero-mean centre-surround disk (`disk_detector`),
   positive on the disk of radius r and negative on the ring out to `surround * r`.
2. `ops.multiscale_response` correlates the image with every detector at once; the maximum over
   radii is the feature map and the argmax the radius at each pixel.
3. `ops.find_peaks` keeps one response per neighbourhood above a threshold: the detections.

`run(config, workdir)` does this on scikit-image's `coins` photograph, matches the detections to
the hand-checked centres packaged beside this module (`coins_centres.json`), prints
precision and recall, and writes `summary.json` and a figure to `workdir`. Its settings are
`config.detection`: `radii`, `surround`, `threshold`, `min_distance`, `padding`,
`match_tolerance`, `reference_path`.
"""

import json
import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from jaxconv import ops
from jaxconv.errors import DataError, MissingFileError, StorageError
from jaxconv.workdir import files

# The hand-checked (row, col, radius) of the 24 coins of `skimage.data.coins()`.
PACKAGED_REFERENCE = pathlib.Path(__file__).with_name("coins_centres.json")


class Detections(NamedTuple):
    """Detected disks, strongest first: `centres` (K, 2) as (row, col), `radii` (K,) and
    `scores` (K,), the mean brightness inside the disk minus that of its ring."""

    centres: np.ndarray
    radii: np.ndarray
    scores: np.ndarray


class Match(NamedTuple):
    """Detections paired one-to-one with reference centres closer than the tolerance."""

    pairs: list[tuple[int, int]]  # (detection index, reference index)
    precision: float
    recall: float


def disk_detector(radius: float, surround: float, size: int) -> jax.Array:
    """Zero-mean centre-surround disk in a `size` x `size` kernel.

    `ops.matched_filter` of a disk of `radius` over the support of radius `surround * radius`,
    rescaled so that its positive lobe sums to one: the response is then the mean value inside
    the disk minus the mean on the surrounding ring, in the image's units at every radius, so
    that one threshold serves all scales. (A unit-norm detector's response would grow with the
    radius, and large disks would win everywhere.)
    """
    if surround <= 1:
        raise ValueError(f"surround must be > 1 (the ring's outer radius / r), got {surround!r}")
    detector = ops.matched_filter(
        ops.disk(radius, size=size), support=ops.disk(surround * radius, size=size)
    )
    return detector / jnp.sum(jnp.maximum(detector, 0.0))


def scale_space(image, radii, *, surround: float = 1.5, padding: str = "symmetric") -> jax.Array:
    """Responses of `image` (H, W) to the disk detector at each radius: (len(radii), H, W).

    All detectors share one odd size, the largest ring's, so they run as one bank. 'symmetric'
    padding mirrors the image at its border, so the ring of a detector near the edge sees
    background like the one inside rather than zeros, which would look like a dark ring.
    """
    size = 2 * int(np.ceil(surround * max(radii))) + 1
    return ops.multiscale_response(
        image, lambda radius: disk_detector(radius, surround, size), radii, padding=padding
    )


def detect(responses, radii, threshold: float, min_distance: int) -> Detections:
    """Peaks of the strongest response over radii, each with the radius that gave it."""
    feature_map = responses.max(axis=0)
    peaks = ops.find_peaks(feature_map, min_distance, threshold)
    coordinates = np.asarray(peaks.coordinates)
    best = np.asarray(responses.argmax(axis=0))[tuple(coordinates.T)]
    return Detections(coordinates, np.asarray(radii)[best], np.asarray(peaks.scores))


def count_coins(
    image,
    radii,
    threshold: float,
    min_distance: int,
    *,
    surround: float = 1.5,
    padding: str = "symmetric",
) -> Detections:
    """Detects bright disks of the given radii in a grey `image` (H, W) scaled to [0, 1].

    `threshold`: the least contrast (disk mean minus ring mean) a detection must exceed;
    `min_distance`: peaks closer than this (in pixels, along rows or columns) merge into one.
    """
    image = jnp.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"count_coins takes one grey image (H, W), got shape {image.shape}")
    responses = scale_space(image, radii, surround=surround, padding=padding)
    return detect(responses, radii, threshold, min_distance)


def match(found: np.ndarray, reference: np.ndarray, tolerance: float) -> Match:
    """Pairs found and reference centres one-to-one (fewest total distance), within tolerance."""
    found, reference = np.asarray(found, float), np.asarray(reference, float)
    distances = np.linalg.norm(found[:, None, :] - reference[None, :, :], axis=-1)
    # Pairs further apart than the tolerance are made too costly to choose.
    costs = np.where(distances <= tolerance, distances, 1e9)
    rows, columns = scipy.optimize.linear_sum_assignment(costs)
    pairs = [(int(i), int(j)) for i, j in zip(rows, columns) if distances[i, j] <= tolerance]
    precision = len(pairs) / len(found) if len(found) else 1.0
    recall = len(pairs) / len(reference) if len(reference) else 1.0
    return Match(pairs, precision, recall)


def load_reference(path: str | pathlib.Path = "") -> np.ndarray:
    """Reference (row, col, radius) rows from a JSON file's "centres"; '' is the packaged one."""
    path = pathlib.Path(path) if path else PACKAGED_REFERENCE
    if not path.exists():
        raise MissingFileError(
            f"no reference centres at {path}: set config.detection.reference_path to a JSON "
            "file with a 'centres' list of [row, col, radius], or '' for skimage's coins."
        )
    try:
        return np.array(json.loads(path.read_text())["centres"], float).reshape(-1, 3)
    except (ValueError, KeyError, TypeError) as error:
        raise DataError(
            f"{path} holds no readable 'centres' list of [row, col, radius] ({error})."
        ) from None


def run(config, workdir: str | pathlib.Path) -> dict:
    """Counts the coins of `skimage.data.coins()`; writes summary.json and coins.png to workdir."""
    import skimage.data  # the photograph ships inside the scikit-image wheel

    settings = config.detection
    workdir = pathlib.Path(workdir)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StorageError(f"cannot make the workdir {workdir} ({error.strerror}).") from error
    image = jnp.asarray(skimage.data.coins(), jnp.float32) / 255.0
    radii = tuple(settings.radii)
    responses = scale_space(image, radii, surround=settings.surround, padding=settings.padding)
    detections = detect(responses, radii, settings.threshold, settings.min_distance)
    reference = load_reference(settings.reference_path)
    matched = match(detections.centres, reference[:, :2], settings.match_tolerance)

    true_positives = len(matched.pairs)
    summary = {
        "image": "skimage.data.coins",
        "num_reference": len(reference),
        "num_detections": len(detections.scores),
        "true_positives": true_positives,
        "false_positives": len(detections.scores) - true_positives,
        "false_negatives": len(reference) - true_positives,
        "precision": matched.precision,
        "recall": matched.recall,
        "detections": [
            {"row": int(row), "col": int(col), "radius": float(radius), "score": float(score)}
            for (row, col), radius, score in zip(*detections)
        ],
    }
    print(
        f"coins: {summary['num_detections']} detections, {true_positives} of "
        f"{summary['num_reference']} reference coins found; precision {matched.precision:.3f}, "
        f"recall {matched.recall:.3f}",
        flush=True,
    )
    _save_figure(
        workdir / "coins.png",
        np.asarray(image),
        np.asarray(responses.max(axis=0)),
        detections,
        reference,
        matched,
    )
    files.write_json(workdir / "summary.json", summary)
    return summary


def _save_figure(path, image, feature_map, detections, reference, matched):
    """Input, feature map, and detections (green: matched, red: false, yellow: missed)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    axes[0].imshow(image, cmap="gray")
    axes[0].set_title("input: skimage.data.coins()")
    shown = axes[1].imshow(feature_map, cmap="magma")
    figure.colorbar(shown, ax=axes[1], fraction=0.04)
    axes[1].set_title("feature map: best disk contrast over radii")
    axes[2].imshow(image, cmap="gray")
    matched_detections = {found for found, _ in matched.pairs}
    matched_references = {known for _, known in matched.pairs}
    for index, ((row, col), radius) in enumerate(zip(detections.centres, detections.radii)):
        colour = "lime" if index in matched_detections else "red"
        axes[2].add_patch(plt.Circle((col, row), radius, fill=False, color=colour, lw=1.2))
    for index, (row, col, radius) in enumerate(reference):
        if index not in matched_references:
            axes[2].add_patch(plt.Circle((col, row), radius, fill=False, color="yellow", ls="--"))
    axes[2].set_title(
        f"{len(detections.scores)} detections, {len(matched.pairs)}/{len(reference)} coins"
    )
    for axis in axes:
        axis.set_axis_off()
    figure.tight_layout()
    figure.savefig(files.refuse_link(path), dpi=100)
    plt.close(figure)
