"""Noisy patches: denoising pairs cut from real grey photographs, with additive Gaussian noise.

Each example holds `image`, the noisy input (float32 on the 0-255 scale, not clipped, so the
noise stays Gaussian), `target`, the clean pixels (uint8), and `sigma`, the noise's standard
deviation on the 0-255 scale. The pipeline's normalisation scales `image` and `target` alike.

The split is by photograph, so no test pixel is ever seen in training. By default the photographs
are scikit-image's (`skimage.data`): `TEST_PHOTOS` (at least camera, moon, coins and page) for
test, `TRAIN_PHOTOS` for training; the validation split is scikit-learn's two sample
photographs (`VALIDATION_PHOTOS`), in neither, so that choices made while training (how long,
which checkpoint) are judged without looking at the test photographs. `data_dir` may instead
name a folder with `train/`, `test/` and optionally `validation/` subfolders of images. Colour
photographs are converted to grey (ITU-R BT.709 luminance).

Training examples are random `patch_size` windows (the chance of a photograph is proportional to
its number of windows), turned by a random one of the 8 flips and rotations of the square.
Validation and test examples are tiles of `test_tile_size` that cover every photograph wholly
(the last row and column of tiles sit flush with the far edges, overlapping their neighbours),
or whole photographs when `test_tile_size` is 0 (they must then share one size, to be batched).
Example `i` of a split draws everything from `numpy.random.default_rng([seed, s, i])`, `s` being
0 for train, 1 for test and 2 for validation; `sigma_range` (low, high) draws each training
example's sigma uniformly for blind denoising, while validation and test always use `sigma`.
"""

import dataclasses
import functools
import pathlib

import numpy as np

from jaxconv.data import imaging
from jaxconv.errors import DataError, MissingFileError

TEST_PHOTOS = ("camera", "moon", "coins", "page")
VALIDATION_PHOTOS = ("china", "flower")  # sklearn.datasets.load_sample_image
TRAIN_PHOTOS = (
    "astronaut",
    "brick",
    "cell",
    "chelsea",
    "coffee",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "microaneurysms",
    "motorcycle_left",
    "retina",
    "rocket",
    "text",
)
PATCH_SIZE = 40  # DnCNN's training patches (Zhang et al., 2017)
SIGMA = 25.0
NUM_TRAIN_EXAMPLES = 20_000
TEST_TILE_SIZE = 128
SPLIT_STREAMS = {"train": 0, "test": 1, "validation": 2}
SPLITS = tuple(SPLIT_STREAMS)


@functools.cache
def photo(name: str) -> np.ndarray:
    """Photograph `name` as grey uint8 (H, W): scikit-image's (`skimage.data.<name>`), or one
    of scikit-learn's `VALIDATION_PHOTOS`; both packages ship their photographs."""
    from skimage import color, data

    if name == "motorcycle_left":
        image = data.stereo_motorcycle()[0]
    elif name in VALIDATION_PHOTOS:
        from sklearn.datasets import load_sample_image

        image = load_sample_image(f"{name}.jpg")
    elif name in data.__all__:
        image = getattr(data, name)()
    else:
        raise DataError(
            f"'{name}' is neither a scikit-image photograph (skimage.data.{name}) nor one of "
            f"{', '.join(VALIDATION_PHOTOS)}."
        )
    if image.ndim == 3:
        image = np.rint(color.rgb2gray(image[..., :3]) * 255).astype(np.uint8)
    image.flags.writeable = False  # shared by every caller
    return image


def folder_photos(folder: pathlib.Path) -> list[np.ndarray]:
    paths = imaging.image_files(folder)
    if not paths:
        raise MissingFileError(f"{folder} holds no images for noisy_patches.")
    return [imaging.load_image(path, channels=1)[..., 0] for path in paths]


def photos(split: str, data_dir: str | None, test_images) -> list[np.ndarray]:
    """The grey photographs of `split`: from `data_dir`/<split>, else the packaged ones."""
    if data_dir:
        folder = pathlib.Path(data_dir).expanduser() / split
        if split == "validation" and not folder.is_dir():
            raise MissingFileError(
                f"{folder} does not exist: add a validation/ folder of images beside train/ "
                "and test/, or set data.eval_split='test'."
            )
        return folder_photos(folder)
    test_images = tuple(test_images)
    if split == "test":
        return [photo(name) for name in test_images]
    if split == "validation":
        return [photo(name) for name in VALIDATION_PHOTOS]
    return [photo(name) for name in TRAIN_PHOTOS if name not in test_images]


def noisy(clean: np.ndarray, sigma: float, rng: np.random.Generator) -> dict:
    """The example of `clean` (H, W) uint8 with noise N(0, sigma^2) drawn from `rng`."""
    noise = rng.standard_normal(clean.shape, dtype=np.float32) * np.float32(sigma)
    return {
        "image": (clean.astype(np.float32) + noise)[..., None],
        "target": clean[..., None],
        "sigma": np.float32(sigma),
    }


def dihedral(patch: np.ndarray, choice: int) -> np.ndarray:
    """One of the 8 flips and rotations of a square patch: `choice` quarter turns (mod 4),
    mirrored when `choice` >= 4."""
    turned = np.rot90(patch, choice % 4)
    return np.ascontiguousarray(turned[:, ::-1] if choice >= 4 else turned)


@dataclasses.dataclass(frozen=True)
class RandomPatches:
    """Training examples: random windows of `photos`, flipped or turned, noised."""

    photos: tuple
    patch_size: int
    num_examples: int
    sigma_range: tuple[float, float]
    seed: int = 0
    stream: int = SPLIT_STREAMS["train"]
    name: str = ""
    num_classes = None  # denoising has no classes

    def __post_init__(self):
        if not any(min(shape) >= self.patch_size for shape in self.shapes):
            raise DataError(f"no training photograph is as large as patch_size={self.patch_size}.")

    @functools.cached_property
    def chances(self) -> np.ndarray:
        """Each photograph's share of all window positions: every window is equally likely."""
        size = self.patch_size
        windows = np.array(
            [max(0, height - size + 1) * max(0, width - size + 1) for height, width in self.shapes],
            np.float64,
        )
        return windows / windows.sum()

    @property
    def shapes(self) -> list[tuple[int, int]]:
        return [photo.shape for photo in self.photos]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.patch_size, self.patch_size, 1)

    def __len__(self) -> int:
        return self.num_examples

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.stream, int(index)])
        source = self.photos[rng.choice(len(self.photos), p=self.chances)]
        top = rng.integers(source.shape[0] - self.patch_size + 1)
        left = rng.integers(source.shape[1] - self.patch_size + 1)
        patch = source[top : top + self.patch_size, left : left + self.patch_size]
        patch = dihedral(patch, int(rng.integers(8)))
        return noisy(patch, rng.uniform(*self.sigma_range), rng)


def tile_starts(length: int, tile: int) -> list[int]:
    """Starts of tiles of `tile` that cover `length`, the last flush with the end."""
    starts = list(range(0, length - tile + 1, tile))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


@dataclasses.dataclass(frozen=True)
class Tiles:
    """Validation or test examples: fixed tiles (photograph, top, left) of `photos`, noised
    with `sigma`."""

    photos: tuple
    tile_shape: tuple[int, int]
    sigma: float
    seed: int = 0
    stream: int = SPLIT_STREAMS["test"]
    name: str = ""
    num_classes = None  # denoising has no classes

    @functools.cached_property
    def tiles(self) -> list[tuple[int, int, int]]:
        height, width = self.tile_shape
        return [
            (index, top, left)
            for index, image in enumerate(self.photos)
            for top in tile_starts(image.shape[0], height)
            for left in tile_starts(image.shape[1], width)
        ]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (*self.tile_shape, 1)

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, index: int) -> dict:
        photo_index, top, left = self.tiles[index]
        height, width = self.tile_shape
        clean = self.photos[photo_index][top : top + height, left : left + width]
        return noisy(clean, self.sigma, np.random.default_rng([self.seed, self.stream, index]))


def _tile_shape(images: list[np.ndarray], test_tile_size: int) -> tuple[int, int]:
    if test_tile_size:
        too_small = [image.shape for image in images if min(image.shape) < test_tile_size]
        if too_small:
            raise DataError(
                f"test images of size {too_small[0]} are smaller than "
                f"test_tile_size={test_tile_size}; lower it."
            )
        return (test_tile_size, test_tile_size)
    shapes = sorted({image.shape for image in images})
    if len(shapes) > 1:
        raise DataError(
            f"test_tile_size=0 asks for whole test images, but they differ in size ({shapes}) "
            "and could not be batched; set test_tile_size (e.g. 128)."
        )
    return shapes[0]


def load(
    split: str,
    data_dir: str | None = None,
    *,
    patch_size: int = PATCH_SIZE,
    sigma: float = SIGMA,
    sigma_range: tuple[float, float] | None = None,
    num_train_examples: int = NUM_TRAIN_EXAMPLES,
    test_images: tuple[str, ...] = TEST_PHOTOS,
    test_tile_size: int = TEST_TILE_SIZE,
    seed: int = 0,
):
    """The `split` ('train', 'validation' or 'test') of noisy patches (see the module
    docstring); validation and test have as many examples as tiles cover their photographs."""
    if split not in SPLITS:
        raise DataError(f"unknown split '{split}' of noisy_patches; it has {', '.join(SPLITS)}.")
    missing = sorted(set(TEST_PHOTOS) - set(test_images))
    if missing and not data_dir:
        raise DataError(f"test_images must keep {', '.join(missing)} out of training.")
    images = tuple(photos(split, data_dir, test_images))
    name = f"noisy_patches/{split}"
    if split == "train":
        sigma_range = tuple(sigma_range) if sigma_range is not None else (sigma, sigma)
        return RandomPatches(images, patch_size, num_train_examples, sigma_range, seed, name=name)
    shape = _tile_shape(list(images), test_tile_size)
    return Tiles(images, shape, sigma, seed, SPLIT_STREAMS[split], name=name)
