"""The planned convolution against `jax.vjp` of `lax.conv_general_dilated`, shape by shape."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax

from jaxconv import layers, models
from jaxconv.cpu import fast_conv
from jaxconv.cpu.fast_conv import Geometry, Plan

# (input NHWC, kernel HWIO, strides, padding, dilation): LeNet's tiny channel counts, ResNet's
# 3x3, its stride-2 1x1 shortcut and 7x7 stem, odd sizes, asymmetric and over-wide padding.
# Each geometry tests every formulation that `candidates` offers for it.
GEOMETRIES = {
    "lenet_conv1": ((4, 28, 28, 1), (5, 5, 1, 6), (1, 1), ((2, 2), (2, 2)), (1, 1)),
    "lenet_conv2": ((4, 14, 14, 6), (5, 5, 6, 16), (1, 1), ((0, 0), (0, 0)), (1, 1)),
    "resnet_3x3": ((2, 8, 8, 16), (3, 3, 16, 16), (1, 1), ((1, 1), (1, 1)), (1, 1)),
    "stride2_3x3_odd": ((2, 9, 7, 8), (3, 3, 8, 12), (2, 2), ((1, 1), (1, 1)), (1, 1)),
    "shortcut_1x1_s2": ((2, 8, 8, 16), (1, 1, 16, 32), (2, 2), ((0, 0), (0, 0)), (1, 1)),
    "stem_7x7_s2": ((2, 16, 16, 3), (7, 7, 3, 8), (2, 2), ((3, 3), (3, 3)), (1, 1)),
    "flax_same_s2_even": ((2, 8, 8, 4), (3, 3, 4, 4), (2, 2), ((0, 1), (0, 1)), (1, 1)),
    "dilated": ((2, 12, 12, 4), (3, 3, 4, 5), (1, 1), ((2, 2), (2, 2)), (2, 2)),
    "wide_padding_1x1": ((2, 5, 5, 3), (1, 1, 3, 4), (1, 1), ((1, 2), (2, 1)), (1, 1)),
    "rectangular_strides": ((2, 10, 9, 3), (3, 2, 3, 4), (2, 1), ((1, 0), (0, 1)), (1, 1)),
    # More kernel than images (oneDNN's input gradient turns the images, not the kernel), with
    # padding that differs on every side.
    "weight_heavy": ((1, 3, 2, 8), (3, 3, 8, 12), (1, 1), ((1, 0), (2, 1)), (1, 1)),
    "weight_heavy_dilated": ((1, 5, 4, 8), (3, 3, 8, 12), (1, 1), ((2, 1), (1, 3)), (2, 2)),
    # Winograd's 2x2 output tiles on odd output sizes, and on padding wider than the kernel's
    # reach on one side and none on the other.
    "winograd_odd_valid": ((2, 9, 8, 5), (3, 3, 5, 6), (1, 1), ((0, 0), (0, 0)), (1, 1)),
    "winograd_asymmetric": ((2, 6, 11, 4), (3, 3, 4, 3), (1, 1), ((0, 3), (1, 0)), (1, 1)),
}


def relative_error(actual, expected) -> float:
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


def reference(x, w, geometry: Geometry, dy):
    """Output, input gradient and kernel gradient by XLA's convolution and jax.vjp."""

    def conv(x, w):
        return lax.conv_general_dilated(
            x,
            w,
            geometry.strides,
            geometry.padding,
            rhs_dilation=geometry.dilation,
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )

    y, vjp = jax.vjp(conv, x, w)
    return (y, *vjp(dy))


def random_case(geometry: Geometry, seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal(geometry.input_shape), jnp.float32)
    w = jnp.asarray(rng.standard_normal(geometry.kernel_shape), jnp.float32)
    out_height, out_width = geometry.output_size
    dy_shape = (geometry.input_shape[0], out_height, out_width, geometry.kernel_shape[-1])
    dy = jnp.asarray(rng.standard_normal(dy_shape), jnp.float32)
    return x, w, dy


@pytest.mark.parametrize("name", GEOMETRIES)
def test_every_formulation_matches_xla_gradients(name):
    geometry = Geometry(*GEOMETRIES[name])
    x, w, dy = random_case(geometry)
    y_ref, dx_ref, dw_ref = reference(x, w, geometry, dy)
    options = fast_conv.candidates(geometry)
    for formulation in options["forward"]:
        y = jax.jit(fast_conv.FORWARD[formulation], static_argnums=2)(x, w, geometry)
        assert y.shape == y_ref.shape
        assert relative_error(y, y_ref) <= 1e-4, ("forward", formulation)
    for formulation in options["input_grad"]:
        dx = jax.jit(fast_conv.INPUT_GRAD[formulation], static_argnums=2)(dy, w, geometry)
        assert dx.shape == dx_ref.shape
        assert relative_error(dx, dx_ref) <= 1e-4, ("input_grad", formulation)
    for formulation in options["kernel_grad"]:
        dw = jax.jit(fast_conv.KERNEL_GRAD[formulation], static_argnums=2)(x, dy, geometry)
        assert dw.shape == dw_ref.shape
        assert relative_error(dw, dw_ref) <= 1e-4, ("kernel_grad", formulation)


@pytest.mark.parametrize(
    "plan",
    [
        Plan("im2col", "col2im", "im2col"),  # patches shared by forward and kernel gradient
        Plan("taps", "col2im", "taps"),
        Plan("xla", "xla", "im2col"),
    ],
)
def test_custom_vjp_under_jit_matches_jax_grad(plan):
    geometry = Geometry(*GEOMETRIES["stride2_3x3_odd"])
    x, w, dy = random_case(geometry, seed=1)
    y_ref, dx_ref, dw_ref = reference(x, w, geometry, dy)

    @jax.jit
    def planned(x, w):
        y, vjp = jax.vjp(lambda x, w: fast_conv.planned_conv(x, w, geometry, plan), x, w)
        return (y, *vjp(dy))

    for actual, expected in zip(planned(x, w), (y_ref, dx_ref, dw_ref)):
        assert relative_error(actual, expected) <= 1e-4


def flax_conv_and_input(padding, strides):
    conv = layers.Conv(6, (5, 5), strides=strides, padding=padding)
    x = jnp.asarray(np.random.default_rng(2).standard_normal((3, 15, 14, 2)), jnp.float32)
    return conv, x, conv.init(jax.random.PRNGKey(0), x)


@pytest.mark.parametrize("padding,strides", [("SAME", 1), ("SAME", 2), ("VALID", 1), (2, 2)])
def test_flax_layer_with_plans_matches_nn_conv(padding, strides):
    conv, x, variables = flax_conv_and_input(padding, strides)
    plain = nn.Conv(6, (5, 5), strides=strides, padding=padding)

    def loss(module, variables):
        return jnp.sum(jnp.sin(module.apply(variables, x)))

    expected_loss, expected_grads = jax.value_and_grad(lambda v: loss(plain, v))(variables)
    recorder = fast_conv.ConvolutionRecorder()
    jax.eval_shape(lambda v: loss(conv.clone(conv_general_dilated=recorder), v), variables)
    assert len(recorder.found) == 1
    plans = {key: Plan("taps", "col2im", "im2col") for key in recorder.found}
    planned = conv.clone(conv_general_dilated=fast_conv.PlannedConvolution.of(plans))
    actual_loss, actual_grads = jax.jit(jax.value_and_grad(lambda v: loss(planned, v)))(variables)
    assert abs(float(actual_loss - expected_loss)) <= 1e-4 * abs(float(expected_loss))
    for actual, expected in zip(jax.tree.leaves(actual_grads), jax.tree.leaves(expected_grads)):
        assert relative_error(actual, expected) <= 1e-4


def test_unplanned_and_unplanable_convolutions_are_xla():
    # No plan in force: exactly lax's result (same program).
    conv, x, variables = flax_conv_and_input("SAME", 1)
    plain = nn.Conv(6, (5, 5), padding="SAME")
    np.testing.assert_array_equal(conv.apply(variables, x), plain.apply(variables, x))
    # 1-D, grouped and input-dilated convolutions are never collected (XLA computes them).
    recorder = fast_conv.ConvolutionRecorder()
    conv = functools.partial(layers.Conv, 4, conv_general_dilated=recorder)
    key = jax.random.PRNGKey(0)
    jax.eval_shape(lambda: conv((3,)).init(key, x[:, 0]))
    jax.eval_shape(lambda: conv((3, 3), feature_group_count=2).init(key, x))
    jax.eval_shape(lambda: conv((3, 3), input_dilation=2, padding=((1, 1), (1, 1))).init(key, x))
    assert not recorder.found


def test_winograd_4x4_is_offered_in_float32_only():
    geometry = Geometry(*GEOMETRIES["resnet_3x3"])
    for role, names in fast_conv.candidates(geometry, "float32").items():
        assert {"winograd", "winograd4"} <= set(names), role
    for role, names in fast_conv.candidates(geometry, "bfloat16").items():
        assert "winograd" in names and "winograd4" not in names, role
    strided = Geometry(*GEOMETRIES["stride2_3x3_odd"])
    for names in fast_conv.candidates(strided, "float32").values():
        assert not {"winograd", "winograd4"} & set(names)


@pytest.mark.parametrize("name", ["winograd", "winograd4"])
def test_winograd_kernel_transform_is_g_w_g_transposed(name):
    """Against numpy's G g G^T per channel pair; `flipped` is that of the kernel turned by 180
    degrees (the input gradient's kernel), read from the unturned one."""
    transform = fast_conv.WINOGRAD[name]
    w = np.random.default_rng(0).normal(size=(3, 3, 4, 5))
    g = np.asarray(transform.kernel)
    tile = transform.tile
    for flipped, kernel in ((False, w), (True, w[::-1, ::-1])):
        expected = np.einsum("ai,ijco,bj->abco", g, kernel, g).reshape(tile * tile, 4, 5)
        got = fast_conv._winograd_kernel(jnp.asarray(w, jnp.float32), transform, flipped)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_unknown_formulation_is_named():
    with pytest.raises(ValueError, match="unknown kernel_grad formulation 'fft'"):
        Plan(kernel_grad="fft")


@pytest.mark.parametrize("plan", [Plan("taps", "col2im", "taps"), Plan("im2col", "xla", "im2col")])
def test_lenet5_gradients_with_every_convolution_planned(plan):
    model = models.create("lenet5", num_classes=10)
    images = jnp.asarray(np.random.default_rng(3).standard_normal((8, 28, 28, 1)), jnp.float32)
    labels = jnp.arange(8) % 10
    variables = model.init(jax.random.PRNGKey(0), images, train=False)

    def loss(params):
        logits = model.apply({**variables, "params": params}, images, train=False)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))

    expected = jax.grad(loss)(variables["params"])
    recorder = fast_conv.ConvolutionRecorder()
    model = model.clone(convolution=recorder)
    jax.eval_shape(loss, variables["params"])
    assert len(recorder.found) == 2  # conv1 and conv2
    model = model.clone(
        convolution=fast_conv.PlannedConvolution.of(dict.fromkeys(recorder.found, plan))
    )
    actual = jax.jit(jax.grad(loss))(variables["params"])
    flat_expected = dict(jax.tree_util.tree_leaves_with_path(expected))
    for path, leaf in jax.tree_util.tree_leaves_with_path(actual):
        assert relative_error(leaf, flat_expected[path]) <= 1e-4, jax.tree_util.keystr(path)


def test_a_plan_that_cannot_compute_its_shape_is_refused():
    # Winograd's F(2x2, 3x3) computes 3x3 stride-1 convolutions only: a plan file that names it
    # for a 5x5 layer is refused rather than computing something else.
    x = jnp.zeros((2, 12, 12, 3))
    conv = layers.Conv(4, (5, 5))
    recorder = fast_conv.ConvolutionRecorder()
    recording = conv.clone(conv_general_dilated=recorder)
    variables = jax.eval_shape(lambda: recording.init(jax.random.PRNGKey(0), x))
    with pytest.raises(ValueError, match="cannot compute that shape"):
        fast_conv.PlannedConvolution.of(dict.fromkeys(recorder.found, Plan(forward="winograd")))
    assert len(recorder.found) == 1 and variables["params"]["kernel"].shape == (5, 5, 3, 4)
