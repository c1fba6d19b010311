"""Tasks by name: what a model's output is judged by (loss and metrics), nothing else.

A task's `loss_and_metrics(outputs, batch) -> (loss, {name: (sum, count)})` works on one batch;
its `summarise({name: sum / count})` turns the means over a whole split into the reported
scalars. Tasks know nothing of architectures, and models know nothing of tasks.
"""

import dataclasses
import functools
from collections.abc import Callable

import numpy as np

from jaxconv.errors import ConfigError
from jaxconv.tasks import classification, denoising, segmentation


def scalars(means: dict) -> dict[str, float]:
    """The default summary: every mean as a float."""
    return {name: float(np.asarray(value)) for name, value in means.items()}


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    loss_and_metrics: Callable
    summarise: Callable[[dict], dict[str, float]] = scalars
    # Which of a dataset's properties sizes the model's output: classes or image channels.
    outputs: str = "classes"

    def output_size(self, source) -> int:
        """How many values per example (or per pixel) a model must output on `source`."""
        return source.image_shape[-1] if self.outputs == "channels" else source.num_classes


def names() -> list[str]:
    return ["classification", "denoising", "segmentation"]


def get(name: str, options=None) -> Task:
    """The task `name`, with its options read from the config (`config.segmentation`,
    `config.denoising`) when given."""
    if name == "classification":
        return Task(name, classification.loss_and_metrics)
    if name == "segmentation":
        settings = options.segmentation if options is not None else None
        loss = functools.partial(
            segmentation.loss_and_metrics,
            class_weights=tuple(settings.class_weights) if settings else (),
            dice_weight=settings.dice_weight if settings else 0.0,
        )
        return Task(name, loss, segmentation.summarise)
    if name == "denoising":
        predicts_noise = options.denoising.predicts_noise if options is not None else True
        loss = functools.partial(denoising.loss_and_metrics, predicts_noise=predicts_noise)
        return Task(name, loss, outputs="channels")
    raise ConfigError(f"unknown task '{name}'; known tasks: {', '.join(names())}.")
