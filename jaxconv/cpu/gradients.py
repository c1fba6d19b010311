"""The CPU custom gradients of the layers: a bias, a tiled max pool and batch norm whose
backward passes XLA:CPU runs poorly when they are differentiated automatically.

Each function computes exactly what its plain form does (`y + bias`, `nn.max_pool`, Flax's
batch norm) on every platform; only the gradient is written out. As custom VJPs they have
reverse-mode derivatives only (`jax.grad`, `jax.vjp`), not `jax.jvp`'s forward mode.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv.ops.pooling import lowest_value

Array = jax.Array


@jax.custom_vjp
def add_bias(y: Array, bias: Array) -> Array:
    """`y + bias`, the bias (of y's dtype) along the last (feature) axis.

    The bias's gradient sums the output gradient over every other axis. XLA:CPU sums an
    array only a few features wide one narrow row at a time; `sum_over_leading_axes` reads it
    as rows of about 128 values (several pixels side by side) and folds them back.
    """
    return y + bias


def _add_bias_forward(y: Array, bias: Array):
    return y + bias, bias


def _add_bias_backward(bias: Array, dy: Array):
    return dy, sum_over_leading_axes(dy).astype(bias.dtype)


add_bias.defvjp(_add_bias_forward, _add_bias_backward)

_NARROW_FEATURES = 16  # fewer features than this are summed in rows of about _ROW_VALUES
_ROW_VALUES = 128


def sum_over_leading_axes(x: Array) -> Array:
    """`x` summed over every axis but the last, in at least float32: the bias gradient of
    `add_bias` (see there for the grouping of narrow rows) and batch norm's sums."""
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    features = x.shape[-1]
    if not 0 < features < _NARROW_FEATURES:
        return jnp.sum(x, axis=tuple(range(x.ndim - 1)))
    rows = x.size // features
    group = _ROW_VALUES // features
    while rows % group:  # pixels side by side in a row: a divisor of their number
        group -= 1
    return x.reshape(-1, group * features).sum(axis=0).reshape(group, features).sum(axis=0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def tiled_max_pool(x: Array, window: int) -> Array:
    """Max pooling of NHWC `x` over non-overlapping `window` x `window` tiles ('VALID': rows and
    columns past the last whole tile are dropped).

    The same values and, NaN aside, the same gradient as `nn.max_pool`. XLA differentiates a
    windowed max with `select_and_scatter`, a scalar loop on XLA:CPU. Here the forward pass is
    one variadic reduction over the tile's `window**2` strided views that keeps each tile's
    maximum and the position of its winner (a byte per output), and the gradient is one
    elementwise pass that hands each upstream value to that position.

    Ties go to the first entry in row-major order, as in the windowed max and PyTorch's
    MaxPool2d. A tile holding NaN has the maximum NaN, and its gradient goes to its first NaN.
    """
    return functools.reduce(jnp.maximum, _tile_views(x, window))


def _tile_views(x: Array, window: int) -> list[Array]:
    """The `window**2` strided views of `x`, one per position in the tile in row-major order,
    each the pooled shape (N, H // window, W // window, C)."""
    rows, cols = x.shape[1] // window, x.shape[2] // window
    return [
        x[:, a : a + rows * window : window, b : b + cols * window : window]
        for a in range(window)
        for b in range(window)
    ]


def _maximum_and_winner(views: list[Array]) -> tuple[Array, Array]:
    """The elementwise maximum of `views` and the index of the first view that holds it (of
    the first NaN where there is one), as one variadic reduction: a reduction is never fused
    into its consumers, so the gradient reads the stored index instead of recounting."""
    values = jnp.stack(views, axis=-1)
    index_dtype = jnp.uint8 if len(views) <= np.iinfo(np.uint8).max else jnp.int32
    indices = lax.broadcasted_iota(index_dtype, values.shape, values.ndim - 1)

    def first_of_larger(a, b):  # commutative and associative, as a reduction needs
        (value_a, index_a), (value_b, index_b) = a, b
        a_first = index_a < index_b
        nan_a, nan_b = jnp.isnan(value_a), jnp.isnan(value_b)
        takes_a = jnp.where(
            nan_a | nan_b,
            nan_a & (a_first | ~nan_b),
            (value_a > value_b) | ((value_a == value_b) & a_first),
        )
        return jnp.where(takes_a, value_a, value_b), jnp.where(takes_a, index_a, index_b)

    start = (lowest_value(values.dtype), np.array(np.iinfo(index_dtype).max, index_dtype))
    return lax.reduce((values, indices), start, first_of_larger, (values.ndim - 1,))


def _tiled_max_pool_forward(x: Array, window: int):
    pooled, winner = _maximum_and_winner(_tile_views(x, window))
    return pooled, (winner, x.shape)


def _tiled_max_pool_backward(window: int, residuals, upstream: Array):
    winner, (batch, height, width, channels) = residuals
    rows, cols = winner.shape[1:3]
    # Tile position (a, b) is index a * window + b, laid out as the tiles' rows and columns.
    positions = jnp.arange(window * window, dtype=winner.dtype).reshape(window, 1, window, 1)
    grad = jnp.where(
        winner[:, :, None, :, None, :] == positions, upstream[:, :, None, :, None, :], 0
    ).reshape(batch, rows * window, cols * window, channels)
    dropped = ((0, 0), (0, height - rows * window), (0, width - cols * window), (0, 0))
    return (jnp.pad(grad, dropped),)


tiled_max_pool.defvjp(_tiled_max_pool_forward, _tiled_max_pool_backward)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def normalize_with_batch_statistics(
    x: Array, scale: Array, bias: Array, epsilon: float, axis_name: str | None = None
) -> tuple[Array, Array, Array]:
    """(y, mean, var): `x` normalised with its own per-feature (last axis) mean and variance,
    then scaled and shifted, all in float32; the statistics span `axis_name` too when given.

    The gradient is batch norm's closed form: one pass for the sums of dy and dy * x_hat, one
    for dx, where autodiff of the forward pass gives XLA:CPU more passes over the activations
    and a materialised x - mean. Evaluation mode (running statistics) needs no custom rule."""
    y, mean, var, _ = _batch_statistics_forward(x, scale, bias, epsilon, axis_name)
    return y, mean, var


def _feature_sums(values: list[Array], axis_name: str | None) -> list[Array]:
    """Each array summed over every axis but the last, and across `axis_name` when given (in
    one collective), in at least float32."""
    sums = [sum_over_leading_axes(value) for value in values]
    if axis_name is None:
        return sums
    return list(jax.lax.psum(jnp.stack(sums), axis_name))


def _count(x: Array, axis_name: str | None) -> Array:
    count = jnp.asarray(x.size // x.shape[-1], jnp.float32)
    return count if axis_name is None else jax.lax.psum(count, axis_name)


def _batch_statistics_forward(x, scale, bias, epsilon, axis_name):
    wide = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    count = _count(x, axis_name)
    total, total_of_squares = _feature_sums([wide, jnp.square(wide)], axis_name)
    mean = total / count
    var = jnp.maximum(total_of_squares / count - jnp.square(mean), 0)
    inverse_std = jax.lax.rsqrt(var + epsilon)
    y = (wide - mean) * (inverse_std * scale) + bias
    return y, mean, var, inverse_std


def _normalize_forward(x, scale, bias, epsilon, axis_name):
    y, mean, var, inverse_std = _batch_statistics_forward(x, scale, bias, epsilon, axis_name)
    return (y, mean, var), (x, mean, inverse_std, scale)


def _normalize_backward(epsilon, axis_name, residuals, cotangents):
    del epsilon
    x, mean, inverse_std, scale = residuals
    dy, dmean, dvar = cotangents
    centred = x.astype(mean.dtype) - mean
    x_hat = centred * inverse_std
    # The parameters' gradients are this device's share (the step sums them across devices);
    # dx needs the whole batch's sums, since the statistics were the whole batch's.
    dbias, dscale = _feature_sums([dy, dy * x_hat], None)
    count = _count(x, axis_name)
    total_dbias, total_dscale = (
        (dbias, dscale) if axis_name is None else jax.lax.psum((dbias, dscale), axis_name)
    )
    dx = (scale * inverse_std) * (dy - (total_dbias + x_hat * total_dscale) / count)
    dx = dx + (dmean + 2 * dvar * centred) / count  # through the returned statistics
    return dx.astype(x.dtype), dscale.astype(scale.dtype), dbias.astype(scale.dtype)


normalize_with_batch_statistics.defvjp(_normalize_forward, _normalize_backward)
