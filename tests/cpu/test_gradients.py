"""The CPU custom gradients against numpy loops, Flax's layers and finite differences."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxconv import layers
from jaxconv.cpu import gradients


@pytest.mark.parametrize(
    "shape", [(4, 7, 7, 6), (3, 5, 11), (13, 3), (1, 23, 7), (0, 4, 6), (2, 2, 40)]
)
def test_sum_over_leading_axes_is_numpys_sum(shape):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    total = gradients.sum_over_leading_axes(jnp.asarray(x))
    assert total.dtype == jnp.float32 and total.shape == shape[-1:]
    want = x.astype(np.float64).sum(axis=tuple(range(x.ndim - 1)))
    np.testing.assert_allclose(total, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "shape, window", [((2, 28, 28, 6), 2), ((1, 7, 9, 3), 2), ((2, 9, 9, 4), 3)]
)
def test_tiled_max_pool_matches_a_loop_and_its_gradient_finds_each_tiles_maximum(shape, window):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    rows, cols = shape[1] // window, shape[2] // window
    expected = np.zeros((shape[0], rows, cols, shape[3]), np.float32)
    for i in range(rows):
        for j in range(cols):
            tile = x[:, i * window : (i + 1) * window, j * window : (j + 1) * window]
            expected[:, i, j] = tile.max(axis=(1, 2))
    pooled = layers.pool(jnp.asarray(x), "max", window)
    np.testing.assert_array_equal(np.asarray(pooled), expected)
    # Random normals have no ties: the gradient is each tile's upstream value at its maximum,
    # zero elsewhere (and on the dropped edge), as for XLA's windowed max.
    upstream = np.random.default_rng(1).normal(size=expected.shape).astype(np.float32)
    grad = jax.grad(lambda v: jnp.sum(layers.pool(v, "max", window) * upstream))(jnp.asarray(x))
    windowed = lambda v: nn.max_pool(v, (window, window), strides=(window, window))
    reference = jax.grad(lambda v: jnp.sum(windowed(v) * upstream))(jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(grad), np.asarray(reference))
    assert np.count_nonzero(np.asarray(grad)) == upstream.size


@pytest.mark.parametrize("window", [2, 3])
def test_tiled_max_pool_gives_a_tied_maximums_gradient_to_its_first_entry(window):
    # Integers in 0..2 give every kind of tie: whole tiles of one value, two or three winners.
    shape = (3, 2 * window + 1, 4 * window - 1, 5)  # a dropped row and columns
    x = np.random.default_rng(2).integers(0, 3, size=shape).astype(np.float32)
    upstream = np.random.default_rng(3).normal(size=(3, 2, 3, 5)).astype(np.float32)
    expected, tied = np.zeros_like(x), 0
    for n, i, j, c in np.ndindex(upstream.shape):
        tile = x[n, i * window : (i + 1) * window, j * window : (j + 1) * window, c]
        a, b = np.unravel_index(np.argmax(tile), tile.shape)  # the first maximum, row-major
        expected[n, i * window + a, j * window + b, c] = upstream[n, i, j, c]
        tied += np.sum(tile == tile.max()) > 1
    assert tied > upstream.size // 2
    loss = lambda pool: lambda v: jnp.sum(pool(v) * upstream)
    grad = jax.jit(jax.grad(loss(lambda v: layers.pool(v, "max", window))))(x)
    np.testing.assert_array_equal(np.asarray(grad), expected)
    windowed = lambda v: nn.max_pool(v, (window, window), strides=(window, window))
    np.testing.assert_array_equal(np.asarray(grad), np.asarray(jax.grad(loss(windowed))(x)))


def test_tiled_max_pool_keeps_a_nan_visible_in_the_value_and_the_gradient():
    x = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    x[1, 2, 3, 0] = np.nan  # in the tile (1, 1) of image 1, channel 0
    x[0, 1, 0, 2] = x[0, 1, 1, 2] = np.nan  # two in the tile (0, 0) of image 0, channel 2
    x[0, 2:4, 0:2, 1] = -np.inf  # a tile of -inf: its maximum is -inf, its first entry wins
    upstream = np.ones((2, 2, 2, 3), np.float32)
    pooled = np.asarray(gradients.tiled_max_pool(jnp.asarray(x), 2))
    assert np.argwhere(np.isnan(pooled)).tolist() == [[0, 0, 0, 2], [1, 1, 1, 0]]
    assert pooled[0, 1, 0, 1] == -np.inf
    grad = np.asarray(jax.grad(lambda v: jnp.sum(gradients.tiled_max_pool(v, 2) * upstream))(x))
    # A NaN tile's gradient goes to its first NaN alone; every other tile's to its maximum.
    assert grad[1, 2, 3, 0] == 1 and grad[1, 2:4, 2:4, 0].sum() == 1
    assert grad[0, 1, 0, 2] == 1 and grad[0, 0:2, 0:2, 2].sum() == 1
    assert grad[0, 2, 0, 1] == 1 and grad[0, 2:4, 0:2, 1].sum() == 1
    assert np.count_nonzero(grad) == upstream.size


@pytest.mark.parametrize(
    "dtype, window",
    # bfloat16 rounds random values into many ties; a 17x17 tile has more entries than a byte
    # can number, so the winner's index is kept in a wider integer.
    [(jnp.bfloat16, 2), (jnp.float32, 17)],
)
def test_tiled_max_pool_gradient_matches_the_windowed_max(dtype, window):
    x = jnp.asarray(np.random.default_rng(5).normal(size=(2, 34, 35, 3)), dtype)
    rows, cols = 34 // window, 35 // window
    upstream = jnp.asarray(np.random.default_rng(6).normal(size=(2, rows, cols, 3)), dtype)
    windowed = lambda v: nn.max_pool(v, (window, window), strides=(window, window))
    ours, reference = (
        jax.grad(lambda v, pool=pool: jnp.sum(pool(v) * upstream).astype(jnp.float32))(x)
        for pool in (lambda v: gradients.tiled_max_pool(v, window), windowed)
    )
    assert np.count_nonzero(np.asarray(ours, np.float32)) == upstream.size
    np.testing.assert_array_equal(np.asarray(ours, np.float32), np.asarray(reference, np.float32))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_batch_norm_matches_flaxs_values_statistics_and_gradients(dtype):
    shape = (6, 5, 4, 3)
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.normal(2.0, 3.0, size=shape), dtype)
    upstream = jnp.asarray(rng.normal(size=shape), jnp.float32)
    options = dict(momentum=0.9, epsilon=1e-5, dtype=dtype)
    ours, flax_norm = layers.BatchNorm(**options), nn.BatchNorm(**options)
    variables = flax_norm.init(jax.random.PRNGKey(0), x, use_running_average=False)
    assert jax.tree.map(jnp.shape, ours.init(jax.random.PRNGKey(0), x)) == jax.tree.map(
        jnp.shape, variables
    )
    variables = {  # parameters and statistics away from their initial values
        "params": {"scale": jnp.asarray([0.5, 2.0, -1.0]), "bias": jnp.asarray([0.1, 0, -3.0])},
        "batch_stats": {"mean": jnp.asarray([1.0, 2, 3]), "var": jnp.asarray([0.5, 1, 4])},
    }

    def loss(module, variables, x, train):
        if train:
            y, updates = module.apply(variables, x, mutable=["batch_stats"])
        else:
            y, updates = module.apply(variables, x), {}
        return jnp.sum(jax.nn.relu(y.astype(jnp.float32)) * upstream), (y, updates)

    tolerance = 3e-2 if dtype == jnp.bfloat16 else 1e-5
    for train in (True, False):
        ours = layers.BatchNorm(use_running_average=not train, **options)
        reference = nn.BatchNorm(use_running_average=not train, **options)
        grad = jax.grad(loss, argnums=(1, 2), has_aux=True)
        (got, (y, updates)) = grad(ours, variables, x, train)
        (want, (y_want, updates_want)) = grad(reference, variables, x, train)
        assert y.dtype == y_want.dtype == dtype
        np.testing.assert_allclose(
            np.float32(y), np.float32(y_want), rtol=tolerance, atol=tolerance
        )
        for a, b in zip(jax.tree.leaves((got, updates)), jax.tree.leaves((want, updates_want))):
            np.testing.assert_allclose(np.float32(a), np.float32(b), rtol=tolerance, atol=tolerance)


def test_batch_norms_gradient_matches_finite_differences():
    # Against the definition, not Flax: the training-mode output through a random projection.
    x = np.random.default_rng(5).normal(size=(4, 3, 2, 2))
    upstream = np.random.default_rng(6).normal(size=x.shape)
    scale, bias = np.array([1.5, -0.5]), np.array([0.2, 0.3])

    def reference(x):  # numpy, float64
        mean = x.mean(axis=(0, 1, 2))
        var = x.var(axis=(0, 1, 2))
        return np.sum(((x - mean) / np.sqrt(var + 1e-5) * scale + bias) * upstream)

    with jax.enable_x64(True):

        def ours(x):
            y, _, _ = gradients.normalize_with_batch_statistics(x, scale, bias, 1e-5)
            return jnp.sum(y * upstream)

        grad = np.asarray(jax.grad(ours)(jnp.asarray(x)))
    step = 1e-6
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += step
        minus[index] -= step
        numeric[index] = (reference(plus) - reference(minus)) / (2 * step)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)
