"""Valid correlation computed in the spatial domain.

Layout: inputs `(*batch, *spatial, C)`, kernels `(M, *kernel_spatial, C)`, outputs
`(*batch, *out_spatial, M)`, with `out = (n - m) // stride + 1` per spatial axis and

    out[..., o, k] = sum_{j, c} inputs[..., o * stride + j, c] * kernels[k, j, c]

(no flip, no padding: the caller flips and pads).
"""

import itertools
import math

import jax
import jax.numpy as jnp
from jax import lax

# For one input channel the fastest direct form is a sum of shifted copies of the input, each
# times one kernel tap: XLA fuses the multiply-adds into one pass, where its convolution emitter
# is slow for C = 1. Past a few dozen taps one fused pass grows slow and slow to compile, so a
# larger kernel is taken in blocks of at most this many taps, one fused pass each, in a loop
# (benchmarks/convolve_vs_scipy.py measures the result).
MAX_UNROLLED_TAPS = 32


def correlate_direct(inputs: jax.Array, kernels: jax.Array, stride: tuple[int, ...]) -> jax.Array:
    """Valid correlation of channels-last `inputs` with a bank of `kernels` (see module doc)."""
    if kernels.shape[-1] == 1:
        return _sum_of_shifted_copies(inputs, kernels, stride)
    return _xla_convolution(inputs, kernels, stride)


def output_shape(spatial_shape, kernel_shape, stride) -> tuple[int, ...]:
    """Spatial shape of a valid correlation kept every `stride` cells."""
    return tuple(
        (size - width) // step + 1
        for size, width, step in zip(spatial_shape, kernel_shape, stride, strict=True)
    )


def _sum_of_shifted_copies(inputs, kernels, stride):
    """One input channel: sum over taps j of `kernels[:, j, 0]` times the input shifted by j."""
    num_spatial = len(stride)
    num_batch = inputs.ndim - num_spatial - 1
    kernel_shape = kernels.shape[1:-1]
    out_shape = output_shape(inputs.shape[num_batch:-1], kernel_shape, stride)
    extent = inputs.shape[:num_batch] + tuple(
        (size - 1) * step + 1 for size, step in zip(out_shape, stride)
    )
    strides = (1,) * num_batch + tuple(stride) + (1,)

    def shifted_term(tap):
        start = (0,) * num_batch + tuple(tap) + (0,)
        if all(isinstance(offset, int) for offset in tap):
            window = lax.slice(inputs, start, tuple(map(sum, zip(start, extent + (1,)))), strides)
        else:
            window = lax.dynamic_slice(inputs, start, extent + (1,))
            window = lax.slice(window, (0,) * inputs.ndim, window.shape, strides)
        return window * kernels[(slice(None), *tap, 0)]  # (*batch, *out, 1) * (M,)

    if not kernel_shape:  # a 0-d kernel: one tap
        return shifted_term(())
    # A block is a run of `block` indices along kernel axis `split` and every index of the axes
    # after it; blocks are unrolled, and a loop runs over the leading indices and the runs.
    # The run length divides the axis: zero taps to round it up would need a padded copy of the
    # input, which was measured to cost more than shorter runs.
    split = num_spatial - 1
    while split > 0 and math.prod(kernel_shape[split:]) <= MAX_UNROLLED_TAPS:
        split -= 1
    trailing = math.prod(kernel_shape[split + 1 :])
    block = max(
        length
        for length in range(1, kernel_shape[split] + 1)
        if kernel_shape[split] % length == 0 and length * trailing <= MAX_UNROLLED_TAPS
    )
    num_runs = kernel_shape[split] // block
    outer_shape = kernel_shape[:split] + (num_runs,)
    inner_shape = (block,) + kernel_shape[split + 1 :]

    def add_block(outer_index, total):
        leading, first = tuple(outer_index[:-1]), outer_index[-1] * block
        for inner in itertools.product(*(range(width) for width in inner_shape)):
            term = shifted_term(leading + (first + inner[0],) + inner[1:])
            total = term if total is None else total + term
        return total

    total = add_block((0,) * len(outer_shape), None)
    if math.prod(outer_shape) == 1:
        return total
    return lax.fori_loop(
        1,
        math.prod(outer_shape),
        lambda index, total: add_block(jnp.unravel_index(index, outer_shape), total),
        total,
    )


def _xla_convolution(inputs, kernels, stride):
    """Several channels: XLA's convolution, which is a matrix product inside."""
    num_spatial = len(stride)
    batch_shape = inputs.shape[: inputs.ndim - num_spatial - 1]
    flat = inputs.reshape((-1,) + inputs.shape[len(batch_shape) :])
    spatial_axes = tuple(range(1, num_spatial + 1))
    layout = (0, num_spatial + 1) + spatial_axes  # batch/out-features first, then channels
    numbers = lax.ConvDimensionNumbers(lhs_spec=layout, rhs_spec=layout, out_spec=layout)
    out = lax.conv_general_dilated(
        flat,
        kernels,
        window_strides=tuple(stride),
        padding="VALID",
        dimension_numbers=numbers,
        precision=lax.Precision.HIGHEST,  # no TF32 or bf16 passes on accelerators
    )
    return out.reshape(batch_shape + out.shape[1:])
