"""Classical kernels, built as arrays for `ops.convolve`.

Every kernel here is oriented for convolution (it is flipped when applied): a derivative kernel
convolved with `f` estimates the derivative of `f` towards increasing indices along its axis,
as `scipy.ndimage` does. To correlate with one, flip it first. Sizes are odd unless given, so
that the centre cell is the origin; axis order matches the array's.

Fixed kernels are constants of their arguments: they are computed with numpy in float64 on the
host, which costs no compilation per size, and come out as JAX arrays in the default floating
type (float32, or float64 when x64 is enabled). `matched_filter` takes any array, traced ones
included, and is computed with `jax.numpy`.
"""

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv.ops import arguments


def gaussian(sigma, ndim: int | None = None, *, order=0, truncate: float = 4.0, radius=None):
    """Sampled Gaussian, or its derivatives, normalised so that the smoothing part sums to 1.

    `sigma`: a number, or one per axis (then `ndim` defaults to their count; else to 2).
    `order`: derivative order per axis (an int applies to all), as in
    `scipy.ndimage.gaussian_filter`. `radius`: half-width per axis; by default
    `int(truncate * sigma + 0.5)` as in scipy, so `convolve(f, gaussian(s), 'same',
    padding='symmetric')` equals `scipy.ndimage.gaussian_filter(f, s, mode='reflect')`.
    The kernel is separable: the outer product of 1-D kernels
    `g_n(x) = (-1 / sigma)^n He_n(x / sigma) phi(x) / sum(phi)`, with `phi(x) = exp(-x^2 / 2
    sigma^2)` and `He_n` the probabilists' Hermite polynomial, so `g_n` is the n-th derivative
    of the continuous Gaussian times the discrete normalisation.
    """
    return _as_jax(_gaussian(sigma, ndim, order, truncate, radius))


def laplacian_of_gaussian(sigma, ndim: int | None = None, *, truncate: float = 4.0, radius=None):
    """Sum over axes of the second Gaussian derivative: `scipy.ndimage.gaussian_laplace`'s kernel.

    Negative at the centre, so a bright blob gives a minimum. Multiply by `sigma ** 2` to compare
    responses across sigmas: a disk of radius r then responds most at `sigma = r / sqrt(ndim)`.
    """
    ndim = len(_per_axis_float(sigma, ndim, "sigma"))
    total = 0.0
    for axis in range(ndim):
        orders = tuple(2 if other == axis else 0 for other in range(ndim))
        total = total + _gaussian(sigma, ndim, orders, truncate, radius)
    return _as_jax(total)


def laplacian(ndim: int = 2):
    """The (2 ndim + 1)-point discrete Laplacian in a 3^ndim box: `scipy.ndimage.laplace`'s."""
    if ndim < 1:
        raise ValueError(f"ndim must be at least 1, got {ndim!r}")
    centre = (1,) * ndim
    kernel = np.zeros((3,) * ndim)
    kernel[centre] = -2.0 * ndim
    for axis in range(ndim):
        for offset in (0, 2):
            kernel[centre[:axis] + (offset,) + centre[axis + 1 :]] = 1.0
    return _as_jax(kernel)


def derivative(axis: int = 0, ndim: int = 2, order: int = 1):
    """Central finite difference along `axis`: order 1 is `(f[i+1] - f[i-1]) / 2`, order 2
    `f[i+1] - 2 f[i] + f[i-1]`, as 3-cell kernels spread over `ndim` axes."""
    stencils = {1: [0.5, 0.0, -0.5], 2: [1.0, -2.0, 1.0]}
    if order not in stencils:
        raise ValueError(f"derivative order must be 1 or 2, got {order!r}")
    return _along_axis(np.array(stencils[order]), axis, ndim, smoothing=np.ones(1))


def sobel(axis: int = 0, ndim: int = 2):
    """Sobel derivative along `axis`, smoothed by [1, 2, 1] across: `scipy.ndimage.sobel`'s."""
    return _along_axis(np.array([1.0, 0.0, -1.0]), axis, ndim, np.array([1.0, 2.0, 1.0]))


def prewitt(axis: int = 0, ndim: int = 2):
    """Prewitt derivative along `axis`, averaged by [1, 1, 1] across: `scipy.ndimage.prewitt`'s."""
    return _along_axis(np.array([1.0, 0.0, -1.0]), axis, ndim, np.ones(3))


def box(size, ndim: int | None = None):
    """Uniform averaging kernel of `size` cells per axis (an int, or one per axis), summing to 1."""
    if ndim is None:
        ndim = len(size) if isinstance(size, Sequence) else 2
    shape = arguments.per_axis(size, ndim, "size", minimum=1)
    return _as_jax(np.full(shape, 1.0 / math.prod(shape)))


def disk(radius: float, ndim: int = 2, *, size=None):
    """Indicator of the ball `|x - centre| <= radius`: 1.0 inside, 0.0 outside.

    `size` cells per axis, by default `2 * floor(radius) + 1` so the ball just fits; the centre
    is the middle of the array (a half-integer position for even sizes). Divide by its sum for
    a mean filter, or pass it to `matched_filter` for a detector.
    """
    if radius < 0:
        raise ValueError(f"disk radius must be >= 0, got {radius!r}")
    if size is None:
        size = 2 * int(radius) + 1
    shape = arguments.per_axis(size, ndim, "size", minimum=1)
    squared = 0.0
    for axis, length in enumerate(shape):
        offsets = np.arange(length) - (length - 1) / 2
        squared = squared + _expand(offsets**2, axis, ndim)
    # A small tolerance keeps cells at exactly `radius` inside despite rounding.
    return _as_jax(squared <= radius**2 + 1e-9)


def matched_filter(patch, support=None):
    """Detection kernel from an example patch: zero mean and unit L2 norm over its support.

    `(patch - mean) / ||patch - mean||`, computed over the cells where `support` is true (all
    by default) and zero elsewhere. Zero mean makes the response blind to the local brightness
    level, and unit norm makes responses of different kernels comparable; correlating a patch
    with its own matched filter gives its norm about the mean, the largest value any patch of
    that norm can give (Cauchy-Schwarz). A constant patch gives the zero kernel.
    """
    patch = jnp.asarray(patch, jnp.result_type(float))
    if support is None:
        support = jnp.ones(patch.shape, bool)
    support = jnp.asarray(support, bool)
    if support.shape != patch.shape:
        raise ValueError(
            f"support has shape {support.shape} but the patch {patch.shape}: give one mask cell "
            f"per patch cell"
        )
    count = jnp.maximum(support.sum(), 1)
    mean = jnp.where(support, patch, 0.0).sum() / count
    centred = jnp.where(support, patch - mean, 0.0)
    norm = jnp.sqrt(jnp.sum(centred**2))
    return jnp.where(norm > 0, centred / jnp.where(norm > 0, norm, 1.0), 0.0)


def _gaussian(sigma, ndim, order, truncate, radius) -> np.ndarray:
    sigmas = _per_axis_float(sigma, ndim, "sigma")
    ndim = len(sigmas)
    if any(value <= 0 for value in sigmas):
        raise ValueError(f"sigma must be positive, got {sigma!r}: for no smoothing skip the filter")
    orders = arguments.per_axis(order, ndim, "order", minimum=0)
    if radius is None:
        radii = tuple(int(truncate * value + 0.5) for value in sigmas)
    else:
        radii = arguments.per_axis(radius, ndim, "radius", minimum=0)
    return _outer([_gaussian_1d(*arguments_1d) for arguments_1d in zip(sigmas, orders, radii)])


def _gaussian_1d(sigma: float, order: int, radius: int) -> np.ndarray:
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 * (x / sigma) ** 2)
    phi = phi / phi.sum()
    # Probabilists' Hermite polynomials: He_0 = 1, He_1 = u, He_{n+1} = u He_n - n He_{n-1}.
    u = x / sigma
    previous, current = np.zeros_like(u), np.ones_like(u)
    for n in range(order):
        previous, current = current, u * current - n * previous
    return (-1.0 / sigma) ** order * current * phi


def _per_axis_float(value, ndim, what) -> tuple[float, ...]:
    if isinstance(value, Sequence):
        if ndim is not None and ndim != len(value):
            raise ValueError(f"{what} has {len(value)} entries but ndim is {ndim}: make them agree")
        return tuple(float(entry) for entry in value)
    return (float(value),) * (2 if ndim is None else ndim)


def _expand(vector, axis, ndim):
    """Places a 1-D array along `axis` of an `ndim`-D array with unit lengths elsewhere."""
    shape = [1] * ndim
    shape[axis] = vector.shape[0]
    return vector.reshape(shape)


def _outer(factors):
    """Outer product of 1-D numpy arrays, the i-th along axis i."""
    kernel = np.ones(())
    for axis, factor in enumerate(factors):
        kernel = kernel * _expand(factor, axis, len(factors))
    return kernel


def _along_axis(stencil, axis, ndim, smoothing):
    """`stencil` along `axis`, `smoothing` along every other axis."""
    if not 0 <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for ndim={ndim}: use 0 .. {ndim - 1}")
    return _as_jax(_outer([stencil if other == axis else smoothing for other in range(ndim)]))


def _as_jax(kernel) -> jax.Array:
    return jnp.asarray(np.asarray(kernel, np.float64), dtype=jnp.result_type(float))
