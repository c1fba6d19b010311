"""scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels): tiny, for fast tests.

Split 1,437 training / 360 test images (80/20) by `numpy.random.default_rng(0)`; pixel values
0-16 are scaled to 0-255.
"""

import numpy as np

from jaxconv.data.source import ArraySource

SPLIT_SEED = 0


def load(split: str, data_dir: str | None = None) -> ArraySource:
    del data_dir  # the data ships with a Python package
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    num_train = int(round(0.8 * len(images)))
    chosen = {"train": order[:num_train], "test": order[num_train:]}[split]
    return ArraySource(
        images[chosen],
        digits.target[chosen].astype(np.int32),
        num_classes=10,
        name=f"digits/{split}",
    )
