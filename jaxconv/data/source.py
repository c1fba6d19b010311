"""The random-access sources every dataset returns.

Their shape is the one `tfds.data_source` has: `len(source)` and `source[i]` -> a dict with `image`
(uint8, HWC) and `label`. Grain reads any such object. Besides, every source says what a model
needs to be built for it: `num_classes` and `image_shape` (H, W, C).
"""

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from jaxconv.errors import DataError


@dataclasses.dataclass(frozen=True)
class ArraySource:
    """A dataset held in memory as arrays: `images` (N, H, W, C) uint8 and `labels` (N, ...).

    `labels` holds class indices for classification, or per-pixel class maps (N, H, W) for
    segmentation. `num_classes` counts the classes the labels range over; `class_names`, when
    known, names them.
    """

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    name: str = ""
    class_names: tuple[str, ...] = ()

    def __post_init__(self):
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise DataError(
                f"images must be uint8 (N, H, W, C), got {self.images.dtype} {self.images.shape}."
            )
        if len(self.images) != len(self.labels):
            raise DataError(f"{len(self.images)} images but {len(self.labels)} labels.")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "label": self.labels[index]}

    def __getitems__(self, indices) -> list[dict]:
        """Batched read: one fancy-indexing call instead of a Python loop per example."""
        indices = np.asarray(indices)
        images, labels = self.images[indices], self.labels[indices]
        return [
            {"image": image, "label": label} for image, label in zip(images, labels, strict=True)
        ]

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])


@dataclasses.dataclass(frozen=True)
class RecordSource:
    """A source over stored records (a TFDS data source), read on demand.

    `transform` maps one stored example to jaxconv's `{'image': uint8 HWC, 'label': ...}`, so the
    records keep their own layout on disk and every dataset looks the same to the pipeline.
    """

    records: Sequence
    transform: Callable[[dict], dict]
    num_classes: int
    image_shape: tuple[int, ...]
    name: str = ""
    class_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        return self.transform(self.records[int(index)])

    def __getitems__(self, indices) -> list[dict]:
        # TFDS sources read a list of indices in parallel threads; they refuse numpy arrays.
        indices = [int(index) for index in indices]
        if hasattr(self.records, "__getitems__"):
            examples = self.records.__getitems__(indices)
        else:
            examples = [self.records[index] for index in indices]
        return [self.transform(example) for example in examples]


# Reading a whole split into memory pays off for small images: decoding one stored record in
# Python costs more than the augmentation of a batch. Splits larger than this stay on disk.
MEMORY_LIMIT_BYTES = 1 << 30


def fits_in_memory(num_examples: int, image_shape: tuple[int, ...]) -> bool:
    return num_examples * int(np.prod(image_shape)) <= MEMORY_LIMIT_BYTES


def to_memory(source, chunk_size: int = 4096) -> ArraySource:
    """Reads every example of `source` once and holds them as an `ArraySource`."""
    images, labels = [], []
    for start in range(0, len(source), chunk_size):
        indices = range(start, min(start + chunk_size, len(source)))
        for example in source.__getitems__(indices):
            images.append(example["image"])
            labels.append(example["label"])
    return ArraySource(
        np.stack(images),
        np.stack(labels),
        num_classes=source.num_classes,
        name=source.name,
        class_names=source.class_names,
    )
