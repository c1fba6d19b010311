"""Detection across scales: Gaussian image pyramids and stacks of filter responses."""

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from jaxconv.ops.convolution import convolve, correlate_bank
from jaxconv.ops.kernels import gaussian


def image_pyramid(
    image,
    num_levels: int,
    *,
    downscale: int = 2,
    sigma: float | None = None,
    ndim: int | None = None,
    padding: str = "symmetric",
) -> list[jax.Array]:
    """Gaussian pyramid: `[image, level 1, ..., level num_levels - 1]`, each smaller by `downscale`.

    Level i + 1 is level i convolved with a Gaussian of `sigma` (default `2 * downscale / 6`,
    scikit-image's choice, which removes most of the frequencies that subsampling would alias)
    in 'same' mode with `padding`, keeping cells 0, downscale, 2 downscale, ... along each of
    the trailing `ndim` axes (default: all axes; leading axes are a batch). A length-n axis
    becomes `ceil(n / downscale)` long.
    """
    image = jnp.asarray(image)
    if num_levels < 1:
        raise ValueError(f"num_levels must be at least 1 (the image itself), got {num_levels!r}")
    if downscale < 1:
        raise ValueError(f"downscale must be a positive integer, got {downscale!r}")
    ndim = image.ndim if ndim is None else ndim
    kernel = gaussian(2 * downscale / 6 if sigma is None else sigma, ndim)
    levels = [image]
    for _ in range(num_levels - 1):
        levels.append(convolve(levels[-1], kernel, mode="same", padding=padding, stride=downscale))
    return levels


def multiscale_response(
    image,
    kernel: Callable[[float], jax.Array] | jax.Array,
    scales: Sequence[float],
    *,
    padding: str = "zero",
    method: str = "auto",
) -> jax.Array:
    """Correlates `image` with one kernel per scale: returns `(len(scales), *image.shape)`.

    `kernel` is either a family, a function from a scale to a kernel (e.g.
    `lambda r: ops.matched_filter(ops.disk(r))`), or one kernel array, which is then resized
    by each scale factor (linear interpolation, antialiased when shrinking; an odd size stays
    odd so the centre stays a cell) and rescaled to keep its L2 norm, so that a unit-norm
    matched filter stays one. Each response is `correlate(image, kernel_at_scale, 'same',
    padding)`: aligned with the image, so the maximum over axis 0 is a feature map and the
    argmax the best scale at each cell. The kernel acts on the image's trailing axes.
    All scales run as one bank (`correlate_bank`), so the image is transformed only once.
    """
    image = jnp.asarray(image)
    if len(scales) == 0:
        raise ValueError("scales is empty: give at least one scale")
    family = kernel if callable(kernel) else _resized_family(jnp.asarray(kernel))
    kernels = [jnp.asarray(family(scale)) for scale in scales]
    # One bank of equal-sized kernels: the image is transformed (or padded) once for all scales.
    bank = jnp.stack(_centred_on_common_grid(kernels))[..., None]
    responses = correlate_bank(image[..., None], bank, mode="same", padding=padding, method=method)
    return jnp.moveaxis(responses, -1, 0)


def _centred_on_common_grid(kernels: Sequence[jax.Array]) -> list[jax.Array]:
    """Zero-pads kernels to one odd size per axis, each keeping its 'same'-mode centre cell.

    Correlation in 'same' mode puts kernel cell `m // 2` on the output cell; padding by
    `size // 2 - m // 2` cells before keeps that cell at the common centre `size // 2`, and
    added zero taps change nothing.
    """
    ndim = kernels[0].ndim
    if any(kernel.ndim != ndim for kernel in kernels):
        raise ValueError("the kernels of the scales differ in their number of dimensions")
    half = [
        max(max(m // 2, m - 1 - m // 2) for m in sizes)
        for sizes in zip(*(k.shape for k in kernels))
    ]
    padded = []
    for kernel in kernels:
        widths = [
            (reach - m // 2, reach - (m - 1 - m // 2)) for reach, m in zip(half, kernel.shape)
        ]
        padded.append(jnp.pad(kernel, widths))
    return padded


def _resized_family(kernel: jax.Array) -> Callable[[float], jax.Array]:
    norm = jnp.linalg.norm(kernel)

    def at_scale(scale: float) -> jax.Array:
        if scale <= 0:
            raise ValueError(f"scales must be positive, got {scale!r}")
        # Same parity as the original size, so an odd kernel keeps a centre cell.
        shape = tuple(
            max(size + 2 * round((scale * size - size) / 2), 1 if size % 2 else 2)
            for size in kernel.shape
        )
        resized = jax.image.resize(kernel, shape, method="linear", antialias=True)
        resized_norm = jnp.linalg.norm(resized)
        return resized * jnp.where(resized_norm > 0, norm / resized_norm, 0.0)

    return at_scale
