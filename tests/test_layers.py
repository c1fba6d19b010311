"""The shared blocks of jaxconv.layers against scipy, numpy and PyTorch's documented formulas."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import signal

from jaxconv import layers
from jaxconv.models.resnet import zero_pad_shortcut

# The rbg generator's initialisers compile several times faster on the CPU than threefry's.
KEY = jax.random.key(0, impl="rbg")


def reference_adaptive_avg_pool(x, output_size):
    """PyTorch's AdaptiveAvgPool2d, written from its definition with explicit loops."""
    batch, height, width, channels = x.shape
    rows, columns = output_size
    out = np.zeros((batch, rows, columns, channels), x.dtype)
    for i in range(rows):
        top, bottom = (i * height) // rows, -(-((i + 1) * height) // rows)
        for j in range(columns):
            left, right = (j * width) // columns, -(-((j + 1) * width) // columns)
            out[:, i, j] = x[:, top:bottom, left:right].mean(axis=(1, 2))
    return out


@pytest.mark.parametrize(
    "input_size, output_size",
    [((13, 13), (6, 6)), ((5, 7), (6, 6)), ((14, 14), (7, 7)), ((1, 2), (7, 7)), ((6, 6), (6, 6))],
)
def test_adaptive_avg_pool_bins_match_pytorch(input_size, output_size):
    x = np.random.default_rng(0).standard_normal((2, *input_size, 3)).astype(np.float32)
    got = layers.adaptive_avg_pool(jnp.asarray(x), output_size)
    np.testing.assert_allclose(got, reference_adaptive_avg_pool(x, output_size), atol=1e-6)


def convolve_layer(module, x):
    variables = module.init(KEY, x)
    return variables["params"]["conv"], module.apply(variables, x)


def test_conv_layer_is_correlation_then_nonlinearity_then_pooling():
    """One channel in and out: scipy's 2-D correlation, tanh, then 2x2 average pooling."""
    image = np.random.default_rng(1).standard_normal((1, 8, 8, 1)).astype(np.float32)
    layer = layers.ConvLayer(1, 3, padding="SAME", activation="tanh", pooling="avg")
    params, got = convolve_layer(layer, jnp.asarray(image))
    kernel, bias = np.asarray(params["kernel"][:, :, 0, 0]), float(params["bias"][0])
    expected = np.tanh(signal.correlate2d(image[0, :, :, 0], kernel, mode="same") + bias)
    expected = expected.reshape(4, 2, 4, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(got[0, :, :, 0], expected, atol=1e-5)


@pytest.mark.parametrize(
    "activation, pool_size, pool_strides, use_bias",
    [
        ("relu", 2, None, True),  # pooled before the bias and the activation
        ("tanh", 3, 2, True),  # overlapping windows, as AlexNet's
        ("identity", 2, None, False),
        ("gelu", 2, None, True),  # not monotone: pooled after the activation
    ],
)
def test_conv_layer_with_max_pooling_matches_flaxs_conv_activation_then_pool(
    activation, pool_size, pool_strides, use_bias
):
    """Same values and gradients as nn.Conv, the activation, then nn.max_pool, in that order,
    whichever order ConvLayer computes them in."""
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.normal(size=(2, 11, 12, 3)), jnp.float32)
    options = dict(padding="SAME", activation=activation, pooling="max", use_bias=use_bias)
    layer = layers.ConvLayer(5, 3, pool_size=pool_size, pool_strides=pool_strides, **options)
    variables = layer.init(KEY, x)
    # A bias that is not zero, so that where it is added matters.
    variables = jax.tree.map(lambda v: jnp.asarray(rng.normal(size=v.shape), v.dtype), variables)

    def reference(variables, x):
        y = nn.Conv(5, (3, 3), padding="SAME", use_bias=use_bias).apply(
            {"params": variables["params"]["conv"]}, x
        )
        y = layers.activation_by_name(activation)(y)
        strides = pool_strides or pool_size
        return nn.max_pool(y, (pool_size, pool_size), strides=(strides, strides))

    upstream = jnp.asarray(rng.normal(size=reference(variables, x).shape), jnp.float32)
    loss = lambda f: lambda variables, x: jnp.sum(f(variables, x) * upstream)
    np.testing.assert_allclose(layer.apply(variables, x), reference(variables, x), atol=1e-6)
    ours = jax.grad(loss(layer.apply), argnums=(0, 1))(variables, x)
    expected = jax.grad(loss(reference), argnums=(0, 1))(variables, x)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [8, 9])
def test_torch_padding_places_stride_two_windows_like_pytorch(size):
    """With padding k // 2 on both sides, a stride-2 convolution is the stride-1 'same' one
    sampled at even positions (PyTorch's placement); Flax's 'SAME' would shift it on even input."""
    image = np.random.default_rng(2).standard_normal((1, size, size, 1)).astype(np.float32)
    layer = layers.ConvLayer(
        1, 3, strides=2, padding=layers.torch_padding(3), activation="identity", use_bias=False
    )
    params, got = convolve_layer(layer, jnp.asarray(image))
    kernel = np.asarray(params["kernel"][:, :, 0, 0])
    expected = signal.correlate2d(image[0, :, :, 0], kernel, mode="same")[::2, ::2]
    np.testing.assert_allclose(got[0, :, :, 0], expected, atol=1e-5)


def test_zero_pad_shortcut_subsamples_and_appends_zero_channels():
    x = jnp.arange(2 * 4 * 4 * 2, dtype=jnp.float32).reshape(2, 4, 4, 2)
    y = zero_pad_shortcut(x, 2, 6)
    assert y.shape == (2, 2, 2, 6)
    np.testing.assert_array_equal(y[..., 2:4], x[:, ::2, ::2, :])
    assert not np.any(y[..., :2]) and not np.any(y[..., 4:])


def test_conv_norm_act_has_a_bias_only_without_batch_norm():
    x = jnp.ones((1, 4, 4, 2))
    with_norm = layers.ConvNormAct(3).init(KEY, x, train=False)["params"]
    without = layers.ConvNormAct(3, batch_norm=False).init(KEY, x, train=False)
    assert set(with_norm) == {"conv", "norm"} and "bias" not in with_norm["conv"]
    assert "bias" in without["params"]["conv"]


@pytest.mark.parametrize("method", ["transpose", "bilinear"])
def test_upsample_doubles_height_and_width(method):
    x = jnp.ones((2, 3, 5, 4))
    module = layers.UpSample(6, method)
    variables = module.init(KEY, x)
    assert module.apply(variables, x).shape == (2, 6, 10, 6)


def test_bilinear_upsampling_interpolates_between_pixel_centres():
    """Half-pixel centres (PyTorch's align_corners=False): [0, 1] -> [0, .25, .75, 1]."""
    x = jnp.array([0.0, 1.0]).reshape(1, 1, 2, 1)
    resized = jax.image.resize(x, (1, 2, 4, 1), "bilinear")
    np.testing.assert_allclose(resized[0, 0, :, 0], [0.0, 0.25, 0.75, 1.0], atol=1e-6)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: layers.activation_by_name("relu6"), "unknown activation 'relu6'; known: gelu"),
        (lambda: layers.pool(jnp.ones((1, 4, 4, 1)), "median", 2), "unknown pooling 'median'"),
        (
            lambda: layers.UpSample(2, "nearest").init(KEY, jnp.ones((1, 2, 2, 1))),
            "unknown up-sampling 'nearest'; known: transpose, bilinear",
        ),
    ],
)
def test_unknown_choices_list_the_known_ones(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(
    ("features", "shape", "options"),
    [
        (6, (3, 9, 7, 1), dict(kernel_size=(5, 5), padding="SAME")),  # few features: rows grouped
        (7, (2, 5, 5, 3), dict(kernel_size=(3, 3), strides=(2, 2))),  # stride: 18 pixels, 1 row
        (7, (1, 23, 1, 2), dict(kernel_size=(3, 3), padding="SAME")),  # 23 pixels: rows of 1
        (32, (2, 6, 6, 4), dict(kernel_size=(3, 3))),  # many features: summed as they are
        (5, (2, 3, 6, 6, 2), dict(kernel_size=(3, 3), padding="CIRCULAR")),  # two batch axes
        (6, (2, 6, 6, 2), dict(kernel_size=(3, 3), dtype=jnp.bfloat16)),
        (6, (2, 6, 6, 2), dict(kernel_size=(3, 3), param_dtype=jnp.bfloat16)),
        (6, (2, 6, 6, 2), dict(kernel_size=(3, 3), use_bias=False)),
    ],
)
def test_conv_matches_flax_in_parameters_outputs_and_gradients(features, shape, options):
    x = jnp.asarray(np.random.default_rng(0).standard_normal(shape), jnp.float32)
    reference, ours = nn.Conv(features, **options), layers.Conv(features, **options)
    variables = reference.init(KEY, x)
    # A bias away from zero, so that its gradient and its addition both show.
    variables = jax.tree.map(lambda v: v + 0.3, variables)
    assert jax.tree.map(jnp.shape, ours.init(KEY, x)) == jax.tree.map(jnp.shape, variables)
    for a, b in zip(jax.tree.leaves(ours.init(KEY, x)), jax.tree.leaves(reference.init(KEY, x))):
        np.testing.assert_array_equal(a, b)

    def loss(module, variables, x):
        return jnp.sum(jnp.sin(module.apply(variables, x).astype(jnp.float32)))

    in_bfloat16 = jnp.bfloat16 in (options.get("dtype"), options.get("param_dtype"))
    tolerance = 3e-2 if in_bfloat16 else 1e-5
    actual, expected = ours.apply(variables, x), reference.apply(variables, x)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    np.testing.assert_allclose(
        actual.astype(jnp.float32), expected.astype(jnp.float32), rtol=tolerance, atol=tolerance
    )
    expected = jax.grad(loss, argnums=(1, 2))(reference, variables, x)
    actual = jax.grad(loss, argnums=(1, 2))(ours, variables, x)
    for a, b in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize(
    "options",
    [
        dict(strides=(2, 2), padding="VALID"),  # U-Net's up-convolution: the matrix-product path
        dict(strides=(2, 2), padding="VALID", use_bias=False, dtype=jnp.bfloat16),
        dict(strides=(1, 1), padding="SAME"),  # any other case: Flax's own
        dict(strides=(2, 2), padding="VALID", transpose_kernel=True),
    ],
)
def test_conv_transpose_matches_flax_in_parameters_outputs_and_gradients(options):
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 4, 5, 6)), jnp.float32)
    reference, ours = (
        nn.ConvTranspose(3, (2, 2), **options),
        layers.ConvTranspose(3, (2, 2), **options),
    )
    variables = reference.init(KEY, x)
    assert jax.tree.map(jnp.shape, ours.init(KEY, x)) == jax.tree.map(jnp.shape, variables)
    for a, b in zip(jax.tree.leaves(ours.init(KEY, x)), jax.tree.leaves(variables)):
        np.testing.assert_array_equal(a, b)

    def loss(module, variables, x):
        return jnp.sum(jnp.sin(module.apply(variables, x).astype(jnp.float32)))

    tolerance = 2e-2 if options.get("dtype") == jnp.bfloat16 else 1e-5
    np.testing.assert_allclose(
        ours.apply(variables, x).astype(jnp.float32),
        reference.apply(variables, x).astype(jnp.float32),
        rtol=tolerance,
        atol=tolerance,
    )
    expected = jax.grad(loss, argnums=(1, 2))(reference, variables, x)
    actual = jax.grad(loss, argnums=(1, 2))(ours, variables, x)
    for a, b in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance)
