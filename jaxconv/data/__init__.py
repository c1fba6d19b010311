"""Datasets by name, and the grain pipelines that batch them.

`get_source(name, split)` returns a random-access source (`len`, `source[i]` -> dict with `image`
uint8 HWC and `label`), the shape `tfds.data_source` has.
"""

from collections.abc import Callable

from jaxconv.data import digits, mnist_5k
from jaxconv.data.source import ArraySource

# name -> loader(split, data_dir) -> source.
_SOURCES: dict[str, Callable] = {
    "mnist_5k": lambda split, data_dir: mnist_5k.load(split),
    "digits": lambda split, data_dir: digits.load(split),
}

SPLITS = ("train", "test")


def names() -> list[str]:
    return sorted(_SOURCES)


def get_source(name: str, split: str, data_dir: str | None = None):
    """The source of dataset `name` for `split` ('train' or 'test')."""
    if name not in _SOURCES:
        raise KeyError(f"unknown dataset '{name}'; known datasets: {', '.join(names())}.")
    if split not in SPLITS:
        raise ValueError(f"unknown split '{split}' of dataset '{name}'; use one of {SPLITS}.")
    return _SOURCES[name](split, data_dir)


__all__ = ["ArraySource", "get_source", "names"]
