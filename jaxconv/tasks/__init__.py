"""Tasks by name: what a model's output is judged by (loss and metrics), nothing else.

A task is `loss_and_metrics(outputs, batch) -> (loss, {name: (sum, count)})`; it knows nothing
of architectures, and models know nothing of tasks.
"""

from collections.abc import Callable

from jaxconv.tasks import classification

_TASKS: dict[str, Callable] = {
    "classification": classification.loss_and_metrics,
}


def names() -> list[str]:
    return sorted(_TASKS)


def get(name: str) -> Callable:
    if name not in _TASKS:
        raise KeyError(f"unknown task '{name}'; known tasks: {', '.join(names())}.")
    return _TASKS[name]
