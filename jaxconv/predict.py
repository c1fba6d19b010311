"""A trained model on your own images: `predict(run, paths, out)`, what `launch.py predict` runs.

The run is a workdir or an exported folder; its model card (`restore.model_card`) gives the
task, the input shape it trained on and the class names. Each image is read in the channels
the model takes, at any size:
- classification: resized to the trained size; `predictions.csv` and `predictions.json` hold
  the top-k classes with their names and probabilities;
- segmentation: resized so that the model's output covers it (a 'VALID' U-Net's output is
  smaller than its input: the margin is filled by reflection), the mask brought back to the
  image's own size; `<name>_mask.png` (class ids) and `<name>_overlay.png`;
- denoising: at its own size, in overlapping tiles of the trained size (each tile keeps its
  centre, so no seam shows); `<name>_restored.png`, and PSNR and SSIM against a clean
  reference of the same name when `reference` is given.
`tta` averages the model over the image and its mirror image; `crops` (classification) also
averages five crops (corners and centre) at 7/8 of the image. A file that cannot be read is
skipped and named in the summary; everything else is still written.
"""

import csv
import dataclasses
import functools
import glob
import io
import pathlib

import jax
import numpy as np
from PIL import Image
from tqdm import tqdm

from jaxconv import pictures
from jaxconv.data import imaging
from jaxconv.data.pipeline import normalise
from jaxconv.errors import DataError, JaxconvError, MissingFileError
from jaxconv.workdir import files, restore

CROP_FRACTION = 7 / 8
TOP_FIELDS = ("class", "name", "probability")


@dataclasses.dataclass
class Summary:
    written: list[pathlib.Path]
    predicted: int
    skipped: list[tuple[str, str]]  # (path, why)


def image_paths(inputs) -> tuple[list[pathlib.Path], list[tuple[str, str]]]:
    """The image files that `inputs` (files, folders searched recursively, or glob
    patterns) name, in order without repeats; and the inputs that name nothing."""
    found, missing = [], []
    for item in inputs:
        path = pathlib.Path(item)
        if path.is_dir():
            matches = [
                p for p in sorted(path.rglob("*")) if p.suffix.lower() in imaging.IMAGE_SUFFIXES
            ]
        elif path.is_file():
            matches = [path]
        else:
            matches = [pathlib.Path(p) for p in sorted(glob.glob(str(item), recursive=True))]
            matches = [p for p in matches if p.is_file()]
        if not matches:
            missing.append((str(item), "no such file, or no image in it"))
        found += [p for p in matches if p not in found]
    return found, missing


class Predictor:
    """The run's model as a function of normalised image batches, compiled once per shape."""

    def __init__(self, path, batch_size: int = 32):
        self.card = restore.model_card(path)
        self.run = restore.load_run(path, self.card["num_outputs"])
        self.batch_size = batch_size
        self.height, self.width, self.channels = self.card["image_shape"]
        self._apply = jax.jit(functools.partial(self.run.model.apply, train=False))

    def normalised(self, pixels: np.ndarray) -> np.ndarray:
        return normalise(pixels, self.card["mean"], self.card["std"])

    def outputs(self, images: np.ndarray, tta: bool = False) -> np.ndarray:
        """The model's float32 outputs on normalised NHWC `images`, in padded batches of
        `batch_size`; with `tta`, averaged with those of the mirrored images (mirrored back)."""
        result = self._batched(images)
        if tta:
            mirrored = self._batched(images[:, :, ::-1])
            result = (result + (mirrored[:, :, ::-1] if result.ndim == 4 else mirrored)) / 2
        return result

    def _batched(self, images: np.ndarray) -> np.ndarray:
        parts = []
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size]
            padding = self.batch_size - len(batch)
            padded = np.concatenate([batch, np.zeros((padding, *batch.shape[1:]), batch.dtype)])
            parts.append(np.asarray(self._apply(self.run.variables, padded))[: len(batch)])
        return np.concatenate(parts).astype(np.float32)

    def output_size(self) -> tuple[int, int]:
        """The (height, width) of the output for the trained input size."""
        shape = jax.eval_shape(
            self._apply,
            self.run.variables,
            jax.ShapeDtypeStruct((1, self.height, self.width, self.channels), np.float32),
        ).shape
        return (shape[1], shape[2]) if len(shape) == 4 else (self.height, self.width)


def predict(
    path,
    inputs,
    out,
    *,
    tta: bool = False,
    crops: bool = False,
    top_k: int = 5,
    batch_size: int = 32,
    reference=None,
) -> Summary:
    """Runs the model of the run at `path` on the images `inputs` name and writes its
    predictions into the folder `out` (see the module docstring)."""
    predictor = Predictor(path, batch_size)
    paths, skipped = image_paths(inputs)
    if not paths:
        raise MissingFileError(f"no image to predict among {', '.join(map(str, inputs))}.")
    out = files.refuse_link(pathlib.Path(out))
    out.mkdir(parents=True, exist_ok=True)
    task = predictor.card["task"]
    images, readable = [], []
    for image_path in tqdm(paths, desc="reading", unit="image", leave=False):
        try:
            images.append(imaging.load_image(image_path, predictor.channels))
            readable.append(image_path)
        except JaxconvError as error:
            skipped.append((str(image_path), str(error)))
    if task == "classification":
        written = _classify(predictor, readable, images, out, tta, crops, top_k, skipped)
    elif task == "segmentation":
        written = _segment(predictor, readable, images, out, tta)
    elif task == "denoising":
        written = _denoise(predictor, readable, images, out, tta, reference)
    else:
        raise DataError(f"the run's task '{task}' has no predictions to write.")
    return Summary(written, len(readable), skipped)


def _resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return imaging.resize_image(image, size)


def _five_crops(image: np.ndarray) -> list[np.ndarray]:
    height, width = image.shape[:2]
    h, w = max(1, round(height * CROP_FRACTION)), max(1, round(width * CROP_FRACTION))
    corners = [(0, 0), (0, width - w), (height - h, 0), (height - h, width - w)]
    centre = ((height - h) // 2, (width - w) // 2)
    return [image[top : top + h, left : left + w] for top, left in (*corners, centre)]


def _classify(predictor, paths, images, out, tta, crops, top_k, skipped):
    size = (predictor.height, predictor.width)
    views = [[image, *(_five_crops(image) if crops else [])] for image in images]
    count = len(views[0]) if views else 1
    stacked = np.stack([_resized(view, size) for group in views for view in group])
    logits = predictor.outputs(predictor.normalised(stacked), tta)
    probabilities = jax.nn.softmax(logits.reshape(len(images), count, -1), axis=-1)
    probabilities = np.asarray(probabilities).mean(axis=1)
    names = predictor.card["class_names"]
    k = min(top_k, probabilities.shape[-1])
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["path", *(f"{f}_{i + 1}" for i in range(k) for f in TOP_FIELDS)])
    records = []
    for path, row in zip(paths, probabilities, strict=True):
        best = np.argsort(-row, kind="stable")[:k]
        top = [
            {"class": int(c), "name": _name(names, c), "probability": float(row[c])} for c in best
        ]
        records.append({"path": str(path), "top": top})
        writer.writerow(
            [
                str(path),
                *(f"{t[f]:.6f}" if f == "probability" else t[f] for t in top for f in TOP_FIELDS),
            ]
        )
    files.write_text(out / "predictions.csv", table.getvalue())
    skipped_records = [{"path": p, "why": why} for p, why in skipped]
    files.write_json(out / "predictions.json", {"predictions": records, "skipped": skipped_records})
    return [out / "predictions.csv", out / "predictions.json"]


def _name(names, index) -> str:
    return names[index] if index < len(names) else str(index)


def _segment(predictor, paths, images, out, tta):
    height, width = predictor.height, predictor.width
    out_height, out_width = predictor.output_size()
    top, left = (height - out_height) // 2, (width - out_width) // 2
    padding = ((top, height - out_height - top), (left, width - out_width - left), (0, 0))
    inputs = np.stack(
        [np.pad(_resized(image, (out_height, out_width)), padding, "reflect") for image in images]
    )
    masks = predictor.outputs(predictor.normalised(inputs), tta).argmax(axis=-1)
    names = predictor.card["class_names"]
    background = pictures.background_class(names)
    colours = pictures.label_colours(predictor.card["num_outputs"], background)
    written = []
    for path, image, mask in zip(paths, images, masks, strict=True):
        full = imaging.resize_mask(mask, image.shape[:2])
        dtype = np.uint8 if full.max() < 256 else np.uint16
        mask_path = _save(out / f"{path.stem}_mask.png", full.astype(dtype))
        shown = pictures.overlay(image[None] / 255.0, full[None], colours, background)[0]
        overlay_path = _save(out / f"{path.stem}_overlay.png", _to_uint8(shown))
        written += [mask_path, overlay_path]
    return written


def _denoise(predictor, paths, images, out, tta, reference):
    tile = (predictor.height, predictor.width)
    if predictor.output_size() != tile:
        raise DataError("denoising predictions need a model whose output has its input's size.")
    written, metrics = [], []
    for path, image in zip(tqdm(paths, desc="denoising", unit="image", leave=False), images):
        restored = _denoise_tiled(predictor, image, tile, tta)
        written.append(_save(out / f"{path.stem}_restored.png", _to_uint8(restored / 255.0)))
        clean = _reference(reference, path, predictor.channels)
        if clean is not None and clean.shape == image.shape:
            metrics.append({"path": str(path), **_quality(restored, clean)})
    if reference is not None:
        files.write_json(out / "metrics.json", {"images": metrics})
        written.append(out / "metrics.json")
    return written


def _denoise_tiled(predictor, image: np.ndarray, tile, tta) -> np.ndarray:
    """The restored image on the 0-255 scale: tiles of `tile` with a margin of context on
    every side, each keeping only its centre."""
    margin = (tile[0] // 8, tile[1] // 8)
    step = (tile[0] - 2 * margin[0], tile[1] - 2 * margin[1])
    height, width = image.shape[:2]
    rows, cols = -(-height // step[0]), -(-width // step[1])
    pad = (
        (margin[0], rows * step[0] - height + margin[0]),
        (margin[1], cols * step[1] - width + margin[1]),
        (0, 0),
    )
    padded = np.pad(image.astype(np.float32), pad, "reflect")
    windows = np.stack(
        [
            padded[r * step[0] : r * step[0] + tile[0], c * step[1] : c * step[1] + tile[1]]
            for r in range(rows)
            for c in range(cols)
        ]
    )
    noisy = predictor.normalised(windows)
    estimate = pictures.restored(
        noisy, predictor.outputs(noisy, tta), predictor.card["predicts_noise"]
    )
    mean = np.asarray(predictor.card["mean"], np.float32)
    pixels = (estimate * np.asarray(predictor.card["std"], np.float32) + mean) * 255
    centres = pixels[:, margin[0] : margin[0] + step[0], margin[1] : margin[1] + step[1]]
    grid = centres.reshape(rows, cols, step[0], step[1], -1).transpose(0, 2, 1, 3, 4)
    return grid.reshape(rows * step[0], cols * step[1], -1)[:height, :width]


def _reference(reference, path: pathlib.Path, channels: int) -> np.ndarray | None:
    if reference is None:
        return None
    reference = pathlib.Path(reference)
    candidate = reference / path.name if reference.is_dir() else reference
    return imaging.load_image(candidate, channels) if candidate.exists() else None


def _quality(restored: np.ndarray, clean: np.ndarray) -> dict:
    from skimage.metrics import structural_similarity

    estimate = np.clip(restored, 0, 255) / 255.0
    truth = clean.astype(np.float64) / 255.0
    return {
        "psnr": float(pictures.psnr(estimate[None], truth[None])[0]),
        "ssim": float(structural_similarity(estimate, truth, data_range=1.0, channel_axis=-1)),
    }


def _to_uint8(image: np.ndarray) -> np.ndarray:
    image = np.clip(np.asarray(image, np.float64) * 255, 0, 255).round().astype(np.uint8)
    return image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image


def _save(path: pathlib.Path, array: np.ndarray) -> pathlib.Path:
    files.refuse_link(path)
    Image.fromarray(array).save(path)
    return path
