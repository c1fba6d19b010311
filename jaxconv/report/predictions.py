"""The report's task sections: what the restored model predicts on the evaluation split.

Classification: a confusion matrix over the first `max_examples` examples and the most
confident mistakes. Segmentation: overlays of ground truth and prediction, the pixel confusion
matrix and per-class IoU. Denoising: noisy, denoised and clean images with their PSNR.
"""

import pathlib

import numpy as np
from scipy import special

from jaxconv import pictures
from jaxconv.report import figures, html
from jaxconv.report.figures import class_label
from jaxconv.report.html import Section
from jaxconv.report.loading import Restored

NUM_EXPLAINED = 4  # right and wrong examples each in the Grad-CAM panel
NUM_MISTAKES = 16
NUM_SHOWN = 4  # segmentation and denoising examples drawn
SEGMENTATION_EXAMPLES = 64  # for the pixel confusion matrix (a few hundred thousand pixels)


def class_names(source, num_classes: int, segmentation: bool = False) -> tuple[str, ...]:
    """The source's class names, else numbers (and 'background' for class 0 of an unnamed
    segmentation set, as jaxconv's own sets number them)."""
    names = tuple(getattr(source, "class_names", ()) or ())
    if len(names) == num_classes:
        return names
    numbers = tuple(str(k) for k in range(num_classes))
    return ("background", *numbers[1:]) if segmentation else numbers


def confusion(true: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (num_classes, num_classes): row = true class, column = predicted class."""
    pairs = np.asarray(true).ravel() * num_classes + np.asarray(predicted).ravel()
    return np.bincount(pairs, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_per_class(matrix: np.ndarray) -> np.ndarray:
    """Intersection over union of each class from a confusion matrix (NaN for a class absent
    from both truth and prediction)."""
    hits = np.diag(matrix).astype(np.float64)
    union = matrix.sum(axis=0) + matrix.sum(axis=1) - hits
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, hits / union, np.nan)


def evaluation_name(restored: Restored) -> str:
    return f"{restored.config.data.eval_split} split of {restored.config.data.name}"


def pixels(images: np.ndarray) -> np.ndarray:
    """Stored images (uint8, or 0-255 floats for noisy ones) on the [0, 1] scale."""
    return np.asarray(images, np.float32) / 255.0


def classification(restored: Restored, out: pathlib.Path, max_examples: int) -> list[Section]:
    labels, probabilities = [], []
    for batch, outputs in restored.batches(max_examples):
        labels.append(np.asarray(batch["label"]))
        probabilities.append(special.softmax(outputs, axis=-1))
    labels, probabilities = np.concatenate(labels), np.concatenate(probabilities)
    predicted = probabilities.argmax(axis=-1)
    num_classes = probabilities.shape[-1]
    names = class_names(restored.source, num_classes)
    accuracy = float(np.mean(predicted == labels))
    title = f"{accuracy:.1%} right on {len(labels):,} examples of the {evaluation_name(restored)}"
    matrix = figures.confusion_matrix(confusion(labels, predicted, num_classes), names, title)
    sections = [
        Section(
            "confusion",
            "Confusion matrix",
            figures.publish(
                matrix,
                out,
                "confusion_matrix",
                f"Confusion matrix {restored.trained}: rows are true classes, "
                "colour is the fraction of each row.",
            ),
        )
    ]
    confidence = probabilities[np.arange(len(predicted)), predicted]
    wrong = np.flatnonzero(predicted != labels)
    worst = wrong[np.argsort(-confidence[wrong], kind="stable")][:NUM_MISTAKES]
    if not len(worst):
        body = html.note(f"No mistakes on these {len(labels):,} examples.")
    else:
        grid = figures.mistakes(
            pixels(restored.examples(worst)["image"]),
            labels[worst],
            predicted[worst],
            confidence[worst],
            names,
        )
        body = figures.publish(
            grid,
            out,
            "confident_mistakes",
            f"The {len(worst)} most confident of {len(wrong):,} mistakes, each titled "
            "true → predicted class with the predicted probability.",
        )
    sections.append(Section("mistakes", "Most confident mistakes", body))
    return [*sections, explanations(restored, out, labels, predicted, names)]


def explanations(restored: Restored, out: pathlib.Path, labels, predicted, names) -> Section:
    """Grad-CAM of the predicted class at the model's last spatial stage, on the first right
    and the first wrong evaluation examples."""
    from jaxconv import explain

    right = np.flatnonzero(predicted == labels)[:NUM_EXPLAINED]
    wrong = np.flatnonzero(predicted != labels)[:NUM_EXPLAINED]
    chosen = np.concatenate([right, wrong])
    batch = restored.batch(chosen)
    names_of_stages = explain.stages(restored.model, restored.variables, batch["image"][:1])
    if not names_of_stages:
        note = html.note(f"Model '{restored.config.model.name}' sows no spatial feature maps.")
        return Section("explanations", "Where the model looked", note)
    stage = names_of_stages[-1]
    maps, _ = explain.grad_cam(restored.model, restored.variables, batch["image"], stage)
    figure = figures.grad_cams(
        pixels(restored.examples(chosen)["image"]),
        maps,
        [f"{class_label(names, labels[i])} → {class_label(names, predicted[i])}" for i in chosen],
        num_right=len(right),
    )
    caption = (
        f"Grad-CAM of the predicted class at {stage} {restored.trained} (Selvaraju et al. "
        f"2017): the first {len(right)} right and {len(wrong)} wrong evaluation examples, "
        "titled true → predicted; red is where the class's evidence lies."
    )
    return Section(
        "explanations",
        "Where the model looked",
        figures.publish(figure, out, "grad_cam", caption),
    )


def segment(restored: Restored, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images in [0, 1], true label maps, predicted label maps) of the first `count`
    examples, cropped to the model's output: a valid-padding U-Net predicts only the middle."""
    shown_images, truth, predicted = [], [], []
    mean, std = restored.config.data.mean, restored.config.data.std
    for batch, outputs in restored.batches(count):
        size = outputs.shape[1:3]
        shown_images.append(
            pictures.center_crop(pictures.denormalise(batch["image"], mean, std), size)
        )
        truth.append(pictures.center_crop(np.asarray(batch["label"]), size))
        predicted.append(outputs.argmax(axis=-1))
    return tuple(np.concatenate(parts) for parts in (shown_images, truth, predicted))


def segmentation(restored: Restored, out: pathlib.Path, max_examples: int) -> list[Section]:
    shown_images, truth, predicted = segment(restored, min(max_examples, SEGMENTATION_EXAMPLES))
    num_classes = max(restored.source.num_classes, int(truth.max()) + 1, int(predicted.max()) + 1)
    names = class_names(restored.source, num_classes, segmentation=True)
    shown = slice(0, NUM_SHOWN)
    accuracy = (truth[shown] == predicted[shown]).reshape(len(truth[shown]), -1).mean(axis=1)
    matrix = confusion(truth, predicted, num_classes)
    iou = iou_per_class(matrix)
    title = (
        f"pixel accuracy {np.trace(matrix) / matrix.sum():.1%}, mean IoU "
        f"{np.nanmean(iou):.3f} on {len(truth):,} examples of the {evaluation_name(restored)}"
    )
    scores = {names[k]: float(np.nan_to_num(iou[k])) for k in range(num_classes)}
    overlays = figures.segmentation(
        shown_images[shown], truth[shown], predicted[shown], accuracy, names
    )
    body = "".join(
        [
            figures.publish(
                overlays,
                out,
                "segmentation",
                f"The first {len(accuracy)} evaluation examples {restored.trained}: "
                "ground truth and prediction coloured by class over the image.",
            ),
            figures.publish(
                figures.confusion_matrix(matrix, names, title),
                out,
                "segmentation_confusion",
                "Pixel confusion matrix: rows are true classes; colour and numbers give the "
                "fraction of each row.",
            ),
            figures.publish(
                figures.class_scores(scores, "IoU", title),
                out,
                "segmentation_iou",
                "Intersection over union of each class (0 where a class is absent).",
            ),
        ]
    )
    return [Section("segmentation", "Segmentation", body)]


def denoising(restored: Restored, out: pathlib.Path, max_examples: int) -> list[Section]:
    config = restored.config
    denoising_options = config.get("denoising")
    predicts_noise = bool(denoising_options.predicts_noise) if denoising_options else True
    # Spread over the split: test tiles come photograph by photograph.
    count = min(NUM_SHOWN, max_examples, len(restored.source))
    indices = np.linspace(0, len(restored.source) - 1, count).round().astype(np.int64)
    batch, outputs = restored.predict(indices)
    noisy = pictures.denormalise(batch["image"], config.data.mean, config.data.std)
    clean = pictures.denormalise(batch["target"], config.data.mean, config.data.std)
    estimate = pictures.denormalise(
        pictures.restored(np.asarray(batch["image"], np.float32), outputs, predicts_noise),
        config.data.mean,
        config.data.std,
    )
    noisy_psnr, denoised_psnr = pictures.psnr(noisy, clean), pictures.psnr(estimate, clean)
    panels = figures.denoising(noisy, estimate, clean, noisy_psnr, denoised_psnr)
    caption = (
        f"{count} examples spread over the {evaluation_name(restored)} {restored.trained}; "
        f"PSNR against the clean image (unclipped, as the task computes it): "
        f"{np.mean(noisy_psnr):.2f} dB noisy, {np.mean(denoised_psnr):.2f} dB denoised on average."
    )
    return [Section("denoising", "Denoising", figures.publish(panels, out, "denoising", caption))]


TASK_SECTIONS = {
    "classification": classification,
    "segmentation": segmentation,
    "denoising": denoising,
}


def task_sections(restored: Restored, out: pathlib.Path, max_examples: int) -> list[Section]:
    draw = TASK_SECTIONS.get(restored.config.task)
    if draw is None:
        return [
            Section(
                "predictions",
                "Predictions",
                html.note(f"The report draws no predictions for task '{restored.config.task}'."),
            )
        ]
    return draw(restored, out, max_examples)
