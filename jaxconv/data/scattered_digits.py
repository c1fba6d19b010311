"""Scattered digits: a segmentation set of real MNIST (or Fashion-MNIST) items placed at random
positions and scales on a larger canvas, with a per-pixel class map.

Each canvas holds `items_per_canvas` items (default 1 to 3; training canvases may hold another
number, `train_items_per_canvas`, for more items seen per step), each zoomed by a factor drawn from
`scale_range` (default 0.7-1.3, linear interpolation, `scipy.ndimage.zoom`) and placed wholly
inside the canvas (default 64x64, any size that fits the largest item). Training items may also
be turned by up to `train_rotation` degrees and sheared by up to `train_shear` (a random affine
map per item, drawn uniformly in each range): new shapes of the same few thousand digits. On the
20-minute budget of experiments/unet_scattered_digits.py they lowered the test IoU (a harder
task than that budget teaches; see the README), so that config leaves them off. The label map is
`class + 1` where an item is brighter than `THRESHOLD` of its own maximum, and 0 (background)
elsewhere: 11 classes. Where items overlap, the image keeps the brighter pixel and the label
follows it.

Items come from `mnist_5k` (its 4,000 training digits for the train split, its 1,000 test digits
for the test split, so no digit is shared) or from `fashion_mnist` (its own splits). Canvases are
made on demand: canvas `i` of a split is drawn from `numpy.random.default_rng([seed, s, i])`,
where `s` is 0 for train and 1 for test, so any canvas is reproducible on its own.
"""

import dataclasses

import numpy as np
from scipy import ndimage

from jaxconv.errors import DataError

NUM_EXAMPLES = {"train": 20_000, "test": 500}
CANVAS_SIZE = 64
ITEMS_PER_CANVAS = (1, 3)
SCALE_RANGE = (0.7, 1.3)
THRESHOLD = 0.3
SPLIT_STREAMS = {"train": 0, "test": 1}
ITEM_DATASETS = ("mnist_5k", "fashion_mnist")


@dataclasses.dataclass(frozen=True)
class ScatteredDigits:
    """A random-access source of canvases built from `item_images` (N, h, w, 1) uint8 and their
    `item_labels` (N,) class ids 0-9."""

    item_images: np.ndarray
    item_labels: np.ndarray
    num_examples: int
    canvas_size: tuple[int, int] = (CANVAS_SIZE, CANVAS_SIZE)
    items_per_canvas: tuple[int, int] = ITEMS_PER_CANVAS
    scale_range: tuple[float, float] = SCALE_RANGE
    rotation: float = 0.0  # largest turn of an item, in degrees
    shear: float = 0.0  # largest shear of an item (columns moved per row)
    seed: int = 0
    stream: int = 0
    name: str = ""
    num_classes: int = 11

    def __post_init__(self):
        low, high = self.items_per_canvas
        if not 1 <= low <= high:
            raise DataError(
                f"items_per_canvas must be (min, max) with 1 <= min <= max, got {low, high}."
            )
        if not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise DataError(
                f"scale_range must be (low, high) with 0 < low <= high, got {self.scale_range}."
            )
        if not (0 <= self.rotation <= 45 and 0 <= self.shear <= 1):
            raise DataError(
                f"rotation must be in [0, 45] degrees and shear in [0, 1], got {self.rotation} "
                f"and {self.shear}."
            )
        largest = max(
            (
                warped_shape(self.item_images.shape[1:3], self.scale_range[1], angle, shear)
                for angle in (-self.rotation, self.rotation)
                for shear in (-self.shear, self.shear)
            ),
            key=max,
        )
        if self.canvas_size[0] < largest[0] or self.canvas_size[1] < largest[1]:
            raise DataError(
                f"canvas {self.canvas_size[0]}x{self.canvas_size[1]} cannot hold an item zoomed "
                f"to {largest[0]}x{largest[1]}; use canvas_size >= {max(largest)} or a smaller "
                "scale_range."
            )

    def __len__(self) -> int:
        return self.num_examples

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (*self.canvas_size, 1)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_examples:
            raise IndexError(f"canvas {index} of {self.num_examples}")
        rng = np.random.default_rng([self.seed, self.stream, int(index)])
        image = np.zeros(self.canvas_size, np.uint8)
        label = np.zeros(self.canvas_size, np.int32)
        low, high = self.items_per_canvas
        for _ in range(rng.integers(low, high + 1)):
            chosen = rng.integers(len(self.item_images))
            scale = rng.uniform(*self.scale_range)
            if self.rotation or self.shear:
                angle = rng.uniform(-self.rotation, self.rotation)
                shear = rng.uniform(-self.shear, self.shear)
                item = warped(self.item_images[chosen, ..., 0], scale, angle, shear)
            else:
                item = zoomed(self.item_images[chosen, ..., 0], scale)
            top = rng.integers(self.canvas_size[0] - item.shape[0] + 1)
            left = rng.integers(self.canvas_size[1] - item.shape[1] + 1)
            place(image, label, item, int(self.item_labels[chosen]) + 1, top, left)
        return {"image": image[..., None], "label": label}


def zoomed(item: np.ndarray, scale: float) -> np.ndarray:
    """`item` (uint8) zoomed by `scale` with linear interpolation, rounded back to uint8."""
    if scale == 1.0:
        return item
    values = ndimage.zoom(item.astype(np.float32), scale, order=1)
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _affine(scale: float, angle: float, shear: float) -> np.ndarray:
    """The 2x2 map of (row, col) offsets: shear along the columns, then turn by `angle`
    degrees, then zoom by `scale`."""
    theta = np.deg2rad(angle)
    turn = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return scale * turn @ np.array([[1.0, 0.0], [shear, 1.0]])


def warped_shape(shape, scale: float, angle: float, shear: float) -> tuple[int, int]:
    """The (height, width) of the box that holds an item of `shape` after `warped`, rounded
    as `scipy.ndimage.zoom` rounds (the same sizes as `zoomed` when there is no turn or shear)."""
    extent = np.abs(_affine(scale, angle, shear)) @ np.asarray(shape, np.float64)
    return tuple(max(1, round(size)) for size in extent)


def warped(item: np.ndarray, scale: float, angle: float, shear: float) -> np.ndarray:
    """`item` (uint8) mapped by `_affine(scale, angle, shear)` about its centre (linear
    interpolation) into the box that holds it, rounded back to uint8."""
    forward = _affine(scale, angle, shear)
    out_shape = warped_shape(item.shape, scale, angle, shear)
    inverse = np.linalg.inv(forward)
    # Output pixel o reads input pixel inverse @ (o - out_centre) + in_centre.
    out_centre = (np.asarray(out_shape) - 1) / 2
    in_centre = (np.asarray(item.shape) - 1) / 2
    values = ndimage.affine_transform(
        item.astype(np.float32),
        inverse,
        offset=in_centre - inverse @ out_centre,
        output_shape=out_shape,
        order=1,
    )
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def place(image, label, item, class_id: int, top: int, left: int) -> None:
    """Draws `item` into `image` at (top, left), keeping the brighter pixel, and marks
    `class_id` in `label` where the item is visible and brighter than THRESHOLD of its max."""
    window = np.s_[top : top + item.shape[0], left : left + item.shape[1]]
    region = image[window]
    visible = (item > THRESHOLD * item.max()) & (item >= region)
    label[window][visible] = class_id
    np.maximum(region, item, out=region)


def _items(item_dataset: str, split: str, data_dir: str | None):
    if item_dataset == "mnist_5k":
        from jaxconv.data import mnist_5k

        return mnist_5k.load(split)
    if item_dataset == "fashion_mnist":
        from jaxconv.data import fashion_mnist

        return fashion_mnist.load(split, data_dir, in_memory=True)
    raise DataError(f"item_dataset must be one of {ITEM_DATASETS}, got '{item_dataset}'.")


def _pair(value, name: str) -> tuple:
    """`value` as (low, high): a single number means exactly that."""
    pair = (value, value) if np.isscalar(value) else tuple(value)
    if len(pair) != 2:
        raise DataError(f"{name} must be a number or a (low, high) pair, got {value}.")
    return pair


def load(
    split: str,
    data_dir: str | None = None,
    *,
    canvas_size: int | tuple[int, int] = CANVAS_SIZE,
    items_per_canvas: int | tuple[int, int] = ITEMS_PER_CANVAS,
    train_items_per_canvas: int | tuple[int, int] | None = None,
    scale_range: float | tuple[float, float] = SCALE_RANGE,
    train_rotation: float = 0.0,
    train_shear: float = 0.0,
    item_dataset: str = "mnist_5k",
    num_train_examples: int = NUM_EXAMPLES["train"],
    num_test_examples: int = NUM_EXAMPLES["test"],
    seed: int = 0,
) -> ScatteredDigits:
    """The `split` of scattered digits; `data_dir` is where `fashion_mnist` items are found.
    Training canvases hold `train_items_per_canvas` items when given, else `items_per_canvas`,
    turned by up to `train_rotation` degrees and sheared by up to `train_shear`; test canvases
    are never distorted."""
    items = _items(item_dataset, split, data_dir)
    if split == "train" and train_items_per_canvas is not None:
        items_per_canvas = train_items_per_canvas
    distortion = dict(rotation=train_rotation, shear=train_shear) if split == "train" else {}
    num_examples = {"train": num_train_examples, "test": num_test_examples}[split]
    return ScatteredDigits(
        items.images,
        items.labels,
        num_examples=num_examples,
        canvas_size=_pair(canvas_size, "canvas_size"),
        items_per_canvas=_pair(items_per_canvas, "items_per_canvas"),
        scale_range=_pair(scale_range, "scale_range"),
        **distortion,
        seed=seed,
        stream=SPLIT_STREAMS[split],
        name=f"scattered_digits/{split}",
    )
