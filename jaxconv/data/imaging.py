"""Decoding image files and resizing images and label maps, with Pillow.

Images are uint8 HWC arrays. Label maps (segmentation masks) are (H, W) integer arrays of class
ids: they are resized by nearest neighbour, since interpolating between class ids invents
classes that are not there.
"""

import contextlib
import pathlib

import numpy as np
from PIL import Image

from jaxconv.errors import DataError, JaxconvError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def size_pair(size: int | tuple[int, int]) -> tuple[int, int]:
    """(height, width) from `size`: one number means a square."""
    height, width = (size, size) if np.isscalar(size) else size
    if height < 1 or width < 1:
        raise DataError(f"image size must be positive, got {size}.")
    return int(height), int(width)


def as_hwc(image: np.ndarray) -> np.ndarray:
    """`image` as uint8 (H, W, C): a grey (H, W) image gets a channel axis."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise DataError(f"expected uint8 pixels, got {image.dtype}.")
    return image[..., None] if image.ndim == 2 else image


def resize_image(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resizes a uint8 HWC image to `size` bilinearly; Pillow widens the filter when shrinking,
    so a downscaled image is antialiased instead of aliased."""
    height, width = size_pair(size)
    if image.shape[:2] == (height, width):
        return image
    channels = [
        np.asarray(Image.fromarray(image[..., c]).resize((width, height), Image.BILINEAR))
        for c in range(image.shape[-1])
    ]
    return np.stack(channels, axis=-1)


def resize_mask(mask: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resizes an (H, W) map of class ids to `size` by nearest neighbour."""
    height, width = size_pair(size)
    if mask.shape == (height, width):
        return mask
    # Nearest neighbour by index arithmetic keeps any integer dtype and class id intact.
    rows = ((np.arange(height) + 0.5) * mask.shape[0] / height).astype(np.int64)
    cols = ((np.arange(width) + 0.5) * mask.shape[1] / width).astype(np.int64)
    return mask[rows[:, None], cols[None, :]]


@contextlib.contextmanager
def decoding(path: str | pathlib.Path):
    """Turns Pillow's failures on a damaged or foreign file into a DataError that names it."""
    try:
        yield
    except JaxconvError:
        raise
    except Image.DecompressionBombError as error:
        raise _too_large(path, error) from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:  # Pillow's damaged files
        raise DataError(
            f"{path} cannot be read as an image ({error}); replace or remove the file."
        ) from None


def opened(path: str | pathlib.Path) -> Image.Image:
    """The image file at `path`, opened (not yet decoded) and refused past Pillow's pixel
    limit (`Image.MAX_IMAGE_PIXELS`): a small file can decompress to gigabytes."""
    image = Image.open(path)
    limit = Image.MAX_IMAGE_PIXELS
    if limit and image.width * image.height > limit:
        image.close()
        raise _too_large(path, f"{image.width} x {image.height} pixels, over {limit}")
    return image


def _too_large(path, why) -> DataError:
    return DataError(
        f"{path} is too large to decode ({why}); shrink it, or raise "
        "PIL.Image.MAX_IMAGE_PIXELS if you trust the file."
    )


def load_image(path: str | pathlib.Path, channels: int | None = None) -> np.ndarray:
    """The image file at `path` as uint8 HWC, with `channels` 1 (grey) or 3 (RGB), or as stored
    (grey stays grey, anything else becomes RGB) when `channels` is None."""
    with decoding(path), opened(path) as image:
        if channels is None:
            channels = 1 if image.mode in ("1", "L", "I", "I;16", "F") else 3
        if channels not in (1, 3):
            raise DataError(f"channels must be 1 or 3, got {channels}.")
        if image.mode in ("I", "I;16", "F"):  # 16-bit or float grey: scale to 8 bits
            values = np.asarray(image, np.float64)
            top = values.max() or 1.0
            grey = Image.fromarray(np.round(values * (255 / top)).astype(np.uint8))
            image = grey if channels == 1 else grey.convert("RGB")
        else:
            image = image.convert("L" if channels == 1 else "RGB")
        return as_hwc(np.asarray(image))


def load_mask(path: str | pathlib.Path) -> np.ndarray:
    """The label map at `path`: a grey or palette image whose pixel values are class ids."""
    with decoding(path), opened(path) as image:
        if image.mode not in ("1", "L", "P", "I", "I;16"):
            raise DataError(
                f"mask {path} is a {image.mode} image; a mask must be a single-channel image "
                "(grey or palette PNG) whose pixel values are class ids."
            )
        return np.asarray(image).astype(np.int32)


def image_files(folder: pathlib.Path) -> list[pathlib.Path]:
    """The image files directly inside `folder`, sorted by name."""
    return sorted(
        path
        for path in folder.iterdir()
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    )
