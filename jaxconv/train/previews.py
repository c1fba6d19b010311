"""A few predictions drawn as images for TensorBoard at each evaluation, without matplotlib.

The loop builds one `PredictionImages` per run, on a few examples of the evaluation split, and
calls it with the current variables; TensorBoard then shows the same examples improving
step by step. Every image is (H, W, 3) floats in [0, 1], as `MetricWriter.write_images` takes.
"""

import functools

import jax
import numpy as np

from jaxconv import pictures
from jaxconv.data import pipeline


def prediction_images(
    task: str,
    batch: dict,
    outputs: np.ndarray,
    *,
    mean=0.0,
    std=1.0,
    num_classes: int = 0,
    class_names=(),
    predicts_noise: bool = True,
) -> dict[str, np.ndarray]:
    """One grid image per task from a normalised batch and the model's outputs on it.

    classification: each image framed green when predicted right, red when wrong.
    segmentation: one row per example: image, ground truth overlay, predicted overlay.
    denoising: one row per example: noisy, denoised, clean.
    """
    outputs = np.asarray(outputs, np.float32)
    shown_images = pictures.denormalise(batch["image"], mean, std)
    if task == "classification":
        right = outputs.argmax(axis=-1) == np.asarray(batch["label"])
        colours = np.where(right[:, None], pictures.CORRECT, pictures.WRONG)
        framed = pictures.framed(pictures.to_rgb(shown_images), colours)
        return {"predictions/classification": pictures.tile(framed, columns=8)}
    if task == "segmentation":
        size = outputs.shape[1:3]
        shown_images = pictures.center_crop(shown_images, size)
        truth = pictures.center_crop(np.asarray(batch["label"]), size)
        background = pictures.background_class(class_names)
        colours = pictures.label_colours(num_classes or outputs.shape[-1], background)
        rows = pictures.side_by_side(
            pictures.to_rgb(shown_images),
            pictures.overlay(shown_images, truth, colours, background),
            pictures.overlay(shown_images, outputs.argmax(axis=-1), colours, background),
        )
        return {"predictions/segmentation": pictures.tile(rows, columns=3)}
    if task == "denoising":
        clean = pictures.denormalise(batch["target"], mean, std)
        estimate = pictures.denormalise(
            pictures.restored(np.asarray(batch["image"], np.float32), outputs, predicts_noise),
            mean,
            std,
        )
        rows = pictures.side_by_side(*map(pictures.to_rgb, (shown_images, estimate, clean)))
        return {"predictions/denoising": pictures.tile(rows, columns=3)}
    raise ValueError(f"no prediction images for task '{task}'.")


class PredictionImages:
    """Draws the model's predictions on `count` evaluation examples spread over the split.

    Call it with the model's variables (`state.variables(for_eval=True)`); the model is
    compiled once, on the first call.
    """

    def __init__(self, config, model, source, count: int = 8):
        self.task = config.task
        self.mean, self.std = config.data.mean, config.data.std
        self.num_classes = source.num_classes
        self.class_names = tuple(getattr(source, "class_names", ()) or ())
        denoising = config.get("denoising")
        self.predicts_noise = bool(denoising.predicts_noise) if denoising else True
        # Spread over the split: denoising's test tiles come photograph by photograph.
        spread = np.linspace(0, len(source) - 1, min(count, len(source))).round()
        indices = np.unique(spread.astype(np.int64))
        self.batch = pipeline.normalise_images(pipeline.read(source, indices), self.mean, self.std)
        self.apply = jax.jit(functools.partial(model.apply, train=False))

    def __call__(self, variables) -> dict[str, np.ndarray]:
        outputs = np.asarray(jax.device_get(self.apply(variables, self.batch["image"])))
        return prediction_images(
            self.task,
            self.batch,
            outputs,
            mean=self.mean,
            std=self.std,
            num_classes=self.num_classes,
            class_names=self.class_names,
            predicts_noise=self.predicts_noise,
        )
