"""A labelled-data budget: `examples_per_class` training examples of each class.

For the transfer-learning experiments (how much labelled data does a pretrained backbone
save?). The chosen examples are the first `k` of each class in the order of
`numpy.random.default_rng(seed).permutation(len(source))`, so a budget of 10 is contained in a
budget of 100 drawn with the same seed.
"""

import dataclasses

import numpy as np

from jaxconv.errors import DataError


@dataclasses.dataclass(frozen=True)
class Subset:
    """The examples `indices` of `source`, with its `num_classes` and `image_shape`."""

    source: object
    indices: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        return self.source[int(self.indices[index])]

    def __getitems__(self, indices) -> list[dict]:
        chosen = self.indices[np.asarray(indices)]
        if hasattr(self.source, "__getitems__"):
            return self.source.__getitems__(chosen)
        return [self.source[int(i)] for i in chosen]

    @property
    def num_classes(self) -> int:
        return self.source.num_classes

    @property
    def image_shape(self) -> tuple[int, ...]:
        return self.source.image_shape


def _labels(source) -> np.ndarray:
    if hasattr(source, "labels"):
        return np.asarray(source.labels)
    return np.asarray([source[i]["label"] for i in range(len(source))])


def per_class(source, examples_per_class: int, seed: int = 0) -> Subset:
    """`examples_per_class` examples of every class of `source` (all of a smaller class)."""
    if examples_per_class < 1:
        raise DataError(f"examples_per_class must be at least 1, got {examples_per_class}.")
    labels = _labels(source)
    if labels.ndim != 1:
        raise DataError(
            "examples_per_class needs one class label per example; this dataset "
            f"has labels of shape {labels.shape[1:]} (per-pixel?)."
        )
    order = np.random.default_rng(seed).permutation(len(labels))
    chosen = [order[labels[order] == label][:examples_per_class] for label in np.unique(labels)]
    return Subset(source, np.sort(np.concatenate(chosen)))
