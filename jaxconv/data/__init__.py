"""Datasets by name, and the grain pipelines that batch them.

`get_source(name, split, data_dir, options)` returns a random-access source (`len`, `source[i]`
-> dict with `image` uint8 HWC and `label`), the shape `tfds.data_source` has, with the
`num_classes` and `image_shape` a model is built for. `name` is one of `names()`, or
`tfds:<catalog name>` for any TFDS catalog dataset.

Dataset options come from `config.data` (pass the whole ConfigDict as `options`); the keys are
declared once, in `jaxconv.configs.base.DATASET_OPTIONS`, and each dataset reads those its
`load(split, data_dir, ...)` names as keyword parameters. A key left at None keeps the
dataset's own default, and setting a key the dataset does not read is an error rather than
silently ignored.
"""

import dataclasses
import functools
import importlib
import inspect
from collections.abc import Mapping

from jaxconv.configs.base import DATASET_OPTIONS
from jaxconv.data import subset
from jaxconv.data.source import ArraySource, RecordSource
from jaxconv.errors import ConfigError

OPTION_KEYS = tuple(DATASET_OPTIONS)
CATALOG_PREFIX = "tfds:"
SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Where a dataset's `load(split, data_dir, **options)` lives and the splits it has (the
    catalog's `load` takes the catalog name first).

    Modules are imported on first use, so naming a dataset costs only its own imports.
    """

    module: str
    splits: tuple[str, ...] = SPLITS

    @functools.cached_property
    def _load(self):
        return importlib.import_module(f"jaxconv.data.{self.module}").load

    @property
    def options(self) -> tuple[str, ...]:
        """The dataset options its `load` reads: its parameters named in DATASET_OPTIONS."""
        parameters = inspect.signature(self._load).parameters
        return tuple(name for name in parameters if name in DATASET_OPTIONS)

    def load(self, *arguments, options: dict):
        return self._load(*arguments, **options)


_DATASETS: dict[str, Dataset] = {
    "mnist_5k": Dataset("mnist_5k"),
    "digits": Dataset("digits"),
    "fashion_mnist": Dataset("fashion_mnist"),
    "image_folder": Dataset("image_folder"),
    "scattered_digits": Dataset("scattered_digits"),
    "noisy_patches": Dataset("noisy_patches", splits=("train", "validation", "test")),
}
_CATALOG = Dataset("catalog")


def names() -> list[str]:
    return sorted(_DATASETS)


def _dataset(name: str) -> Dataset:
    if name.startswith(CATALOG_PREFIX):
        return _CATALOG
    if name not in _DATASETS:
        raise ConfigError(
            f"unknown dataset '{name}'; known datasets: {', '.join(names())}, or "
            f"'{CATALOG_PREFIX}<name>' for a TFDS catalog dataset (e.g. 'tfds:cifar10')."
        )
    return _DATASETS[name]


def chosen_options(name: str, dataset: Dataset, options: Mapping | None) -> dict:
    """The dataset options set (not None) in `options`, checked against what `name` reads."""
    chosen = {
        key: options[key]
        for key in OPTION_KEYS
        if options is not None and key in options and options[key] is not None
    }
    unread = sorted(set(chosen) - set(dataset.options))
    if unread:
        reads = ", ".join(dataset.options) or "none"
        raise ConfigError(
            f"dataset '{name}' does not read data.{', data.'.join(unread)}; leave "
            f"{'it' if len(unread) == 1 else 'them'} at None (its options: {reads})."
        )
    return chosen


def get_source(name: str, split: str, data_dir: str | None = None, options: Mapping | None = None):
    """The source of dataset `name` for `split` (one of the dataset's splits, 'train' and
    'test' for most; any TFDS split for `tfds:` datasets), with dataset options taken from
    `options` (e.g. `config.data`)."""
    dataset = _dataset(name)
    chosen = chosen_options(name, dataset, options)
    if dataset is _CATALOG:
        source = dataset.load(name.removeprefix(CATALOG_PREFIX), split, data_dir, options=chosen)
    elif split not in dataset.splits:
        raise ConfigError(
            f"unknown split '{split}' of dataset '{name}'; it has {', '.join(dataset.splits)}."
        )
    else:
        source = dataset.load(split, data_dir, options=chosen)
    budget = options.get("examples_per_class") if options is not None else None
    if budget is not None and split == options.get("train_split", "train"):
        source = subset.per_class(source, budget, seed=options.get("seed") or 0)
    return source


__all__ = ["ArraySource", "OPTION_KEYS", "RecordSource", "get_source", "names"]
