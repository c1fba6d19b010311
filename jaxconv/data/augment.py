"""Augmentations of whole batches, declared in the config as '|'-separated operations.

`parse('translate:2|flip_horizontal')` returns one function `(batch, rng) -> batch`. Each
operation draws its random parameters for the whole *global* batch from `rng` and then applies
the rows that belong to this process, so a run gives the same batches on 1 or on 8 processes.
Geometric operations move the `image` and, for segmentation, the per-pixel `label` together.
"""

from collections.abc import Callable

import numpy as np

from jaxconv.errors import ConfigError

# An operation: (batch, rng, global_size, rows) -> batch. It draws parameters for all
# `global_size` examples of the global batch and applies `rows`, this process's part of them.
Operation = Callable[[dict, np.random.Generator, int, slice], dict]


def _spatial_keys(batch: dict) -> list[str]:
    """Keys whose arrays are images (N, H, W, ...) that geometric operations must move."""
    height, width = batch["image"].shape[1:3]
    return [
        key
        for key, value in batch.items()
        if value.ndim >= 3 and value.shape[1:3] == (height, width)
    ]


def translate(max_shift: int, padding: str = "constant") -> Operation:
    """Shifts each image by up to `max_shift` pixels in each direction, filling with zeros
    (`padding='constant'`) or mirrored pixels (`'reflect'`), then crops back to its size."""

    def apply(batch, rng, global_size, rows):
        shifts = rng.integers(-max_shift, max_shift + 1, size=(global_size, 2))[rows]
        out = dict(batch)
        for key in _spatial_keys(batch):
            out[key] = _shift(batch[key], shifts, max_shift, padding)
        return out

    return apply


def _shift(images: np.ndarray, shifts: np.ndarray, pad: int, padding: str) -> np.ndarray:
    count, height, width = images.shape[:3]
    widths = [(0, 0), (pad, pad), (pad, pad)] + [(0, 0)] * (images.ndim - 3)
    padded = np.pad(images, widths, mode=padding)
    rows = (pad - shifts[:, 0])[:, None] + np.arange(height)  # (N, H)
    cols = (pad - shifts[:, 1])[:, None] + np.arange(width)  # (N, W)
    return padded[np.arange(count)[:, None, None], rows[:, :, None], cols[:, None, :]]


def flip(axis: int) -> Operation:
    """Flips each image along `axis` (1: vertical, 2: horizontal) with probability 1/2."""

    def apply(batch, rng, global_size, rows):
        chosen = rng.random(global_size)[rows] < 0.5
        out = dict(batch)
        for key in _spatial_keys(batch):
            flipped = batch[key].copy()
            flipped[chosen] = np.flip(batch[key][chosen], axis=axis)
            out[key] = flipped
        return out

    return apply


# name -> factory(argument string or None) -> Operation.
OPERATIONS: dict[str, Callable[[str | None], Operation]] = {
    "translate": lambda arg: translate(int(arg or 2)),
    "crop": lambda arg: translate(int(arg or 4), padding="reflect"),
    "flip_horizontal": lambda arg: flip(axis=2),
    "flip_vertical": lambda arg: flip(axis=1),
}


def parse(spec: str) -> Operation:
    """Builds the augmentation `spec` ('' for none) into one batch function."""
    operations = []
    for item in filter(None, (part.strip() for part in spec.split("|"))):
        name, _, argument = item.partition(":")
        if name not in OPERATIONS:
            raise ConfigError(
                f"unknown augmentation '{name}' in data.augment='{spec}'; known: "
                f"{', '.join(sorted(OPERATIONS))} (e.g. 'translate:2|flip_horizontal')."
            )
        operations.append(OPERATIONS[name](argument or None))

    def apply(batch, rng, global_size, rows):
        for operation in operations:
            batch = operation(batch, rng, global_size, rows)
        return batch

    return apply
