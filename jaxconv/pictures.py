"""Image arithmetic shared by the report's figures and TensorBoard: pure numpy, no plotting.

Images are NHWC (or HWC) floats in [0, 1] once `denormalise` has undone the pipeline's
`(x / 255 - mean) / std`; label maps are integer (N, H, W).
"""

import colorsys

import numpy as np

# Matplotlib's 'tab10' colours, written out so TensorBoard images need no matplotlib.
TAB10 = (
    (0.122, 0.467, 0.706),
    (1.000, 0.498, 0.055),
    (0.173, 0.627, 0.173),
    (0.839, 0.153, 0.157),
    (0.580, 0.404, 0.741),
    (0.549, 0.337, 0.294),
    (0.890, 0.467, 0.761),
    (0.498, 0.498, 0.498),
    (0.737, 0.741, 0.133),
    (0.090, 0.745, 0.812),
)
CORRECT = (0.173, 0.627, 0.173)
WRONG = (0.839, 0.153, 0.157)


def denormalise(images: np.ndarray, mean, std) -> np.ndarray:
    """Undoes the pipeline's normalisation: pixels back on the [0, 1] scale (not clipped)."""
    images = np.asarray(images, np.float32)
    return images * np.asarray(std, np.float32) + np.asarray(mean, np.float32)


def to_rgb(images: np.ndarray) -> np.ndarray:
    """(..., H, W, 1 or 3) -> (..., H, W, 3), clipped to [0, 1]."""
    images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images[..., :3]


def background_class(class_names) -> int | None:
    """The class left untinted in overlays: the one named 'background', else class 0 when the
    classes are unnamed (jaxconv's own segmentation sets), else none."""
    names = [str(name).lower() for name in class_names]
    if "background" in names:
        return names.index("background")
    return None if names else 0


def label_colours(num_classes: int, background: int | None = 0) -> np.ndarray:
    """(num_classes, 3) RGB: the background black, the other classes tab10 in order, then
    evenly spaced hues."""
    count = num_classes - (background is not None)
    # Golden-ratio steps around the hue circle keep any number of extra classes apart.
    extra = [colorsys.hsv_to_rgb((0.1 + 0.618 * k) % 1.0, 0.75, 0.9) for k in range(count)]
    colours = [*TAB10, *extra][:count]
    if background is not None:
        colours.insert(background, (0.0, 0.0, 0.0))
    return np.asarray(colours, np.float32).reshape(num_classes, 3)


def overlay(
    images: np.ndarray,
    labels: np.ndarray,
    colours: np.ndarray,
    background: int | None = 0,
    alpha: float = 0.6,
) -> np.ndarray:
    """RGB images with every pixel outside the background tinted by its class colour."""
    rgb = to_rgb(images)
    labels = np.clip(np.asarray(labels), 0, len(colours) - 1)
    weight = alpha * (labels != background)[..., None]
    return (1.0 - weight) * rgb + weight * colours[labels]


def center_crop(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The central `size` window of axes 1 and 2 of (N, H, W, ...): a valid-padding U-Net's
    output covers only the middle of its input."""
    top = (array.shape[1] - size[0]) // 2
    left = (array.shape[2] - size[1]) // 2
    return array[:, top : top + size[0], left : left + size[1]]


def psnr(estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Peak signal-to-noise ratio in dB of each (H, W, C) image of a batch, data range 1."""
    squared = (np.asarray(estimate, np.float64) - np.asarray(reference, np.float64)) ** 2
    mse = squared.reshape(len(squared), -1).mean(axis=1)
    return 10.0 * np.log10(1.0 / np.maximum(mse, 1e-12))


def restored(noisy: np.ndarray, outputs: np.ndarray, predicts_noise: bool) -> np.ndarray:
    """The denoised estimate: the input minus the predicted noise, or the output itself."""
    return noisy - outputs if predicts_noise else outputs


def framed(images: np.ndarray, colours: np.ndarray, width: int = 2) -> np.ndarray:
    """RGB images (N, H, W, 3) inside a border of `width` pixels of their own colour (N, 3)."""
    count, height, breadth, _ = images.shape
    out = np.empty((count, height + 2 * width, breadth + 2 * width, 3), np.float32)
    out[:] = np.asarray(colours, np.float32)[:, None, None, :]
    out[:, width : width + height, width : width + breadth] = images
    return out


def tile(images: np.ndarray, columns: int, gap: int = 2, fill: float = 1.0) -> np.ndarray:
    """(N, H, W, C) images as one (rows * H, columns * W, C) grid, `gap` pixels apart."""
    count, height, width, channels = images.shape
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    grid = np.full(
        (rows * (height + gap) - gap, columns * (width + gap) - gap, channels), fill, np.float32
    )
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top, left = row * (height + gap), column * (width + gap)
        grid[top : top + height, left : left + width] = image
    return grid


def side_by_side(*columns: np.ndarray) -> np.ndarray:
    """Batches of equal shape (N, H, W, 3) -> (N * columns) images, each row one example."""
    return np.stack(columns, axis=1).reshape(-1, *columns[0].shape[1:])
