"""Max and average pooling in N dimensions.

Pooling is a correlation in which the window's multiply-add is replaced by a maximum or a mean,
so `mode` and `stride` mean what they mean for `ops.correlate`:

- `window`: an int pools every axis of `x`; a tuple of d ints pools the last d axes and leaves the
  leading ones as a batch (NHWC images: `window=(2, 2, 1)`, or `(2, 2)` on an `(N, H, W)` array).
- `stride`: defaults to the window, which gives non-overlapping windows. The output keeps every
  `stride`-th cell of the stride-1 output, starting with the first.
- `mode`: 'valid' (the default) keeps windows wholly inside the input, and drops the trailing
  cells that do not fill a window; 'same' gives `ceil(n / stride)` cells, the window starting
  `window // 2` cells before its output cell; 'full' every window that overlaps the input.
- `padding`: what the cells outside the input hold in 'same' and 'full' modes. 'ignore' (the
  default) leaves them out: the maximum is over the window's input cells only, and the average
  divides the sum of the input cells by their number, so a border average is a true mean of
  real values. A `numpy.pad` rule ('zero', 'reflect', 'symmetric', 'edge', 'wrap') fills them
  as for `ops.convolve`; they then count as cells, and the average divides by the full window
  size (with 'zero', padded zeros pull border averages down and can win a maximum of negative
  values).
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv.ops import arguments
from jaxconv.ops.padding import pad

POOL_PADDINGS = ("ignore",) + arguments.PADDINGS


def max_pool(x, window, stride=None, mode: str = "valid", padding: str = "ignore") -> jax.Array:
    """Maximum over each window; see the module docstring for the arguments."""
    x = jnp.asarray(x)
    window, stride, widths = _geometry(x.shape, window, stride, mode, padding)
    return _max_pool(x, window=window, stride=stride, widths=widths, padding=padding)


def avg_pool(x, window, stride=None, mode: str = "valid", padding: str = "ignore") -> jax.Array:
    """Mean over each window; with padding 'ignore' padded cells are not counted (module doc)."""
    x = jnp.asarray(x)
    window, stride, widths = _geometry(x.shape, window, stride, mode, padding)
    return _avg_pool(x, window=window, stride=stride, widths=widths, padding=padding)


def _geometry(shape, window, stride, mode, padding):
    """Checks the arguments; returns per-axis window, stride and (before, after) extensions."""
    num_axes = len(window) if isinstance(window, tuple | list) else len(shape)
    arguments.check_ranks(len(shape), num_axes, "window")
    window = arguments.per_axis(window, num_axes, "window", minimum=1)
    stride = window if stride is None else arguments.per_axis(stride, num_axes, "stride", 1)
    arguments.check_choice(mode, arguments.MODES, "mode")
    arguments.check_padding(padding, POOL_PADDINGS)
    spatial_shape = shape[len(shape) - num_axes :]
    arguments.check_not_empty(spatial_shape, "input")
    if mode == "valid" and any(width > size for width, size in zip(window, spatial_shape)):
        raise ValueError(
            f"window {window} is larger than the input's pooled axes {spatial_shape}, so "
            f"'valid' mode has no output: use mode='same' or a smaller window"
        )
    if mode == "full":
        widths = tuple((width - 1, width - 1) for width in window)
    elif mode == "same":
        widths = tuple((width // 2, width - 1 - width // 2) for width in window)
    else:
        widths = tuple((0, 0) for _ in window)
    return window, stride, widths


def lowest_value(dtype) -> np.ndarray:
    """The identity of a maximum: -inf, or the smallest integer.

    A numpy constant, so that `lax.reduce_window` recognises (max, identity) and uses its
    differentiable max-pooling primitive.
    """
    if jnp.issubdtype(dtype, jnp.inexact):
        return np.array(-np.inf, dtype)
    return np.array(jnp.iinfo(dtype).min, dtype)


def _window_arguments(ndim, window, stride):
    leading = ndim - len(window)
    return (1,) * leading + window, (1,) * leading + stride, ((0, 0),) * leading


@functools.partial(jax.jit, static_argnames=("window", "stride", "widths", "padding"))
def _max_pool(x, *, window, stride, widths, padding):
    dimensions, strides, unpadded = _window_arguments(x.ndim, window, stride)
    if padding == "ignore":
        # reduce_window fills its padding with the initial value, which never wins a maximum.
        return lax.reduce_window(
            x, lowest_value(x.dtype), lax.max, dimensions, strides, unpadded + widths
        )
    padded = pad(x, widths, padding)
    return lax.reduce_window(padded, lowest_value(x.dtype), lax.max, dimensions, strides, "VALID")


@functools.partial(jax.jit, static_argnames=("window", "stride", "widths", "padding"))
def _avg_pool(x, *, window, stride, widths, padding):
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    dimensions, strides, unpadded = _window_arguments(x.ndim, window, stride)
    zero = np.array(0, x.dtype)  # a constant: lax then uses its differentiable window sum
    if padding != "ignore":
        padded = pad(x, widths, padding)
        sums = lax.reduce_window(padded, zero, lax.add, dimensions, strides, "VALID")
        return sums / math.prod(window)
    sums = lax.reduce_window(x, zero, lax.add, dimensions, strides, unpadded + widths)
    # The number of input cells under each window depends only on the pooled axes' shape.
    ones = jnp.ones(x.shape[x.ndim - len(window) :], x.dtype)
    counts = lax.reduce_window(ones, zero, lax.add, window, stride, widths)
    return sums / counts
