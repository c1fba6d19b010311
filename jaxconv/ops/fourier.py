"""Valid correlation computed through the FFT, for large kernels.

Same layout and result as `direct.correlate_direct`: inputs `(*batch, *spatial, C)`, kernels
`(M, *kernel_spatial, C)`, outputs `(*batch, *out_spatial, M)`; the input may also be extended
by zeros (`widths`) without being copied.

Correlating with a kernel is convolving with the flipped kernel, and a convolution is a product
of spectra, which computes it circularly: with transform length L, cell t of the result sums
`input[(t - m + 1 + j) mod L] * kernel[j]`. Output cell o of the valid correlation of the input
extended by (before, after) zeros is then cell `o + m - 1 - before`, provided that no index
wraps onto the input: `L >= n + max(before, after)` (and `L >= m`, so the kernel fits). The
length is rounded up to one with small prime factors, on which the FFT is fast (a length with a
large prime factor can be several times slower).
"""

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv.ops.direct import output_shape

_SMALL_PRIMES = (2, 3, 5, 7)


def next_fast_length(size: int) -> int:
    """The smallest length >= `size` whose prime factors are all 2, 3, 5 or 7."""
    candidate = max(size, 1)
    while True:
        remainder = candidate
        for prime in _SMALL_PRIMES:
            while remainder % prime == 0:
                remainder //= prime
        if remainder == 1:
            return candidate
        candidate += 1


def transform_lengths(spatial_shape, kernel_shape, widths) -> tuple[int, ...]:
    """Fast FFT lengths, per axis, for which the circular result holds the valid correlation."""
    return tuple(
        next_fast_length(max(size + max(before, after), width))
        for size, width, (before, after) in zip(spatial_shape, kernel_shape, widths, strict=True)
    )


def correlate_fft(inputs: jax.Array, kernels: jax.Array, stride: tuple[int, ...], widths=None):
    """Valid correlation of real channels-last `inputs`, extended by `widths` zeros (before, after)
    per spatial axis, with a real bank of `kernels`; every `stride`-th output cell."""
    num_spatial = len(stride)
    num_batch = inputs.ndim - num_spatial - 1
    spatial_shape = inputs.shape[num_batch:-1]
    kernel_shape = kernels.shape[1:-1]
    widths = ((0, 0),) * num_spatial if widths is None else widths
    lengths = transform_lengths(spatial_shape, kernel_shape, widths)
    # XLA transforms trailing axes only, so channels move in front of the spatial axes (free
    # for one channel) instead of every spectrum being transposed around the transforms.
    inputs = jnp.moveaxis(inputs, -1, num_batch)  # (*batch, C, *spatial)
    kernels = jnp.flip(jnp.moveaxis(kernels, -1, 1), axis=tuple(range(2, kernels.ndim)))
    axes = tuple(range(-num_spatial, 0))
    input_spectrum = jnp.fft.rfftn(inputs, lengths, axes=axes)  # (*batch, C, *F)
    kernel_spectrum = _small_array_spectrum(kernels, lengths)  # (M, C, *F)
    if kernels.shape[1] == 1:
        product = input_spectrum * kernel_spectrum[:, 0]  # (*batch, 1, *F) * (M, *F)
    else:  # sum over channels at every frequency
        frequency_shape = input_spectrum.shape[num_batch + 1 :]
        flat_inputs = input_spectrum.reshape(input_spectrum.shape[: num_batch + 1] + (-1,))
        flat_kernels = kernel_spectrum.reshape(kernel_spectrum.shape[:2] + (-1,))
        product = jnp.einsum(
            "...cf,mcf->...mf", flat_inputs, flat_kernels, precision=lax.Precision.HIGHEST
        )
        product = product.reshape(product.shape[:-1] + frequency_shape)
    circular = jnp.fft.irfftn(product, lengths, axes=axes)  # (*batch, M, *lengths)

    extended = [size + before + after for size, (before, after) in zip(spatial_shape, widths)]
    out_shape = output_shape(extended, kernel_shape, stride)
    starts = [width - 1 - before for width, (before, _) in zip(kernel_shape, widths)]
    limits = [start + (size - 1) * step + 1 for start, size, step in zip(starts, out_shape, stride)]
    leading = circular.shape[: num_batch + 1]
    valid = lax.slice(
        circular,
        (0,) * len(leading) + tuple(starts),
        leading + tuple(limits),
        (1,) * len(leading) + tuple(stride),
    )
    return jnp.moveaxis(valid, num_batch, -1)


def _small_array_spectrum(array: jax.Array, lengths: tuple[int, ...]) -> jax.Array:
    """`rfftn(array, lengths)` over the trailing axes, for an array much smaller than `lengths`.

    Transforming one axis at a time, the first transforms run only on the array's own extent
    instead of the zero-filled one: a 31 x 31 kernel on a 540 x 540 grid needs 31 row
    transforms, not 540, which saves about a fifth of the kernel's transform time.
    """
    spectrum = jnp.fft.rfft(array, n=lengths[-1], axis=-1)
    for axis in range(-2, -len(lengths) - 1, -1):
        spectrum = jnp.fft.fft(spectrum, n=lengths[axis], axis=axis)
    return spectrum
