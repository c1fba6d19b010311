"""The random-access source every dataset returns.

Its shape is the one `tfds.data_source` has: `len(source)` and `source[i]` -> a dict with `image`
(uint8, HWC) and `label`. Grain reads any such object.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class ArraySource:
    """A dataset held in memory as arrays: `images` (N, H, W, C) uint8 and `labels` (N, ...).

    `labels` holds class indices for classification, or per-pixel class maps (N, H, W) for
    segmentation. `num_classes` counts the classes the labels range over.
    """

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    name: str = ""

    def __post_init__(self):
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise ValueError(
                f"images must be uint8 (N, H, W, C), got {self.images.dtype} {self.images.shape}."
            )
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels.")

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
