"""oneDNN's backward convolution primitives from its own library, against XLA's gradients."""

import platform
import sys
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxconv.ops import dnnl, fast_conv, onednn
from jaxconv.ops.fast_conv import Geometry, Plan

needs_library = pytest.mark.skipif(not dnnl.available(), reason="oneDNN's library is not here")


@pytest.mark.skipif(
    platform.machine() != "x86_64" or sys.platform != "linux", reason="checked on x86-64 Linux"
)
def test_onednns_library_is_installed_and_correct_here():
    # A dependency on x86-64 Linux (pyproject.toml): the kernel gradient's speed rests on it.
    assert dnnl.available()


# (input shape, kernel shape, strides, padding, dilation)
CASES = {
    "resnet_3x3_same": ((2, 8, 8, 16), (3, 3, 16, 16), (1, 1), ((1, 1), (1, 1)), (1, 1)),
    "stride_2_even_input": ((2, 8, 8, 4), (3, 3, 4, 8), (2, 2), ((1, 1), (1, 1)), (1, 1)),
    "stride_2_1_asymmetric": ((2, 9, 8, 3), (3, 2, 3, 4), (2, 1), ((1, 0), (0, 2)), (1, 1)),
    "dilated": ((1, 12, 11, 2), (3, 3, 2, 3), (1, 1), ((2, 2), (2, 2)), (2, 2)),
    "stem_7x7_stride_2": ((2, 15, 15, 3), (7, 7, 3, 8), (2, 2), ((3, 3), (3, 3)), (1, 1)),
    "projection_1x1_stride_2": ((2, 8, 8, 8), (1, 1, 8, 16), (2, 2), ((0, 0), (0, 0)), (1, 1)),
    "lenet_1_to_6_5x5": ((3, 28, 28, 1), (5, 5, 1, 6), (1, 1), ((2, 2), (2, 2)), (1, 1)),
    "lenet_6_to_16_valid": ((3, 14, 14, 6), (5, 5, 6, 16), (1, 1), ((0, 0), (0, 0)), (1, 1)),
    "unused_high_padding": ((1, 7, 7, 2), (3, 3, 2, 2), (2, 2), ((1, 2), (0, 3)), (1, 1)),
}


def _xla_gradients(x, w, dy, strides, padding, dilation):
    def forward(x, w):
        return lax.conv_general_dilated(
            x,
            w,
            strides,
            padding,
            rhs_dilation=dilation,
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            precision=lax.Precision.HIGHEST,
        )

    y, vjp = jax.vjp(forward, x, w)
    assert y.shape == dy.shape
    return vjp(dy)


def _arrays(input_shape, kernel_shape, strides, padding, dilation, seed=0):
    geometry = Geometry(input_shape, kernel_shape, strides, padding, dilation)
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal(input_shape), jnp.float32)
    w = jnp.asarray(rng.standard_normal(kernel_shape), jnp.float32)
    output_shape = (input_shape[0], *geometry.output_size, kernel_shape[-1])
    dy = jnp.asarray(rng.standard_normal(output_shape), jnp.float32)
    return x, w, dy


def _relative_error(got, want):
    return float(jnp.max(jnp.abs(got - want)) / jnp.max(jnp.abs(want)))


@needs_library
@pytest.mark.parametrize("name", CASES)
def test_both_gradients_match_xla_under_jit(name):
    input_shape, kernel_shape, strides, padding, dilation = CASES[name]
    x, w, dy = _arrays(*CASES[name])
    want_dx, want_dw = _xla_gradients(x, w, dy, strides, padding, dilation)

    @jax.jit
    def gradients(x, w, dy):
        dw = dnnl.kernel_gradient(x, dy, kernel_shape[:2], strides, padding, dilation)
        dx = dnnl.input_gradient(w, dy, input_shape, strides, padding, dilation)
        return dx, dw

    dx, dw = gradients(x, w, dy)
    assert dx.shape == input_shape and dw.shape == kernel_shape
    assert _relative_error(dw, want_dw) <= 1e-4
    assert _relative_error(dx, want_dx) <= 1e-4


def test_the_probes_reference_is_an_independent_direct_sum():
    # The availability check trusts `_direct_gradients`; it is checked here by hand: one
    # image row, a 1x2 kernel, stride 2 and one pixel of left padding.
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 4, 1)
    w = np.array([10.0, 100.0]).reshape(1, 2, 1, 1)
    dy = np.array([1.0, -1.0]).reshape(1, 1, 2, 1)  # outputs read (pad, 1) and (2, 3)
    dx, dw = dnnl._direct_gradients(x, w, dy, (1, 2), ((0, 0), (1, 0)), (1, 1))
    np.testing.assert_allclose(dw.ravel(), [0 * 1 + 2 * -1, 1 * 1 + 3 * -1])
    np.testing.assert_allclose(dx.ravel(), [100, -10, -100, 0])


@needs_library
def test_vmap_runs_each_example_and_matches_xla():
    input_shape, kernel_shape, strides, padding, dilation = CASES["stride_2_even_input"]
    x, w, dy = _arrays(*CASES["stride_2_even_input"])
    per_example = jax.vmap(
        lambda x, dy: dnnl.kernel_gradient(x[None], dy[None], (3, 3), strides, padding, dilation)
    )(x, dy)
    for index in range(input_shape[0]):
        one = slice(index, index + 1)
        want = _xla_gradients(x[one], w, dy[one], strides, padding, dilation)[1]
        assert _relative_error(per_example[index], want) <= 1e-4


@needs_library
def test_calls_from_several_threads_at_once_each_get_their_own_result():
    # XLA may run two callbacks at once (independent layers, several CPU devices).
    input_shape, kernel_shape, strides, padding, dilation = CASES["resnet_3x3_same"]
    gradient = jax.jit(
        lambda x, dy: dnnl.kernel_gradient(x, dy, kernel_shape[:2], strides, padding, dilation)
    )
    cases = [_arrays(*CASES["resnet_3x3_same"], seed=seed) for seed in range(4)]
    want = [_xla_gradients(x, w, dy, strides, padding, dilation)[1] for x, w, dy in cases]
    got = [None] * len(cases)

    def run(index):
        x, _, dy = cases[index]
        got[index] = np.asarray(gradient(x, dy))

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(cases))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result, expected in zip(got, want):
        assert _relative_error(jnp.asarray(result), expected) <= 1e-4


@needs_library
def test_the_gradient_is_written_into_the_array_given_and_a_wrong_one_is_refused():
    # Inside a program the result is the program's own buffer, written in place.
    input_shape, kernel_shape, strides, padding, dilation = CASES["stride_2_1_asymmetric"]
    x, w, dy = (np.asarray(a) for a in _arrays(*CASES["stride_2_1_asymmetric"], seed=5))
    primitive = dnnl._Backward(
        "kernel_gradient", x.shape, w.shape, dy.shape, dnnl._window(strides, padding, dilation)
    )
    result = np.full(w.shape, np.nan, np.float32)
    assert primitive(x, dy, result) is result
    want = _xla_gradients(x, w, dy, strides, padding, dilation)[1]
    assert _relative_error(jnp.asarray(result), want) <= 1e-4
    for wrong in (np.empty(w.shape, np.float64), np.empty(w.shape[::-1], np.float32).T):
        with pytest.raises(ValueError, match="C-contiguous float32 array of shape"):
            primitive(x, dy, wrong)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (
            ((2, 8, 8, 4), (3, 3, 4, 4), (2, 8, 8, 4), (1, 1), ((-1, 0), (1, 1)), (1, 1)),
            "non-negative",
        ),
        (
            ((2, 8, 8, 4), (3, 3, 4, 4), (2, 7, 8, 4), (1, 1), ((1, 1), (1, 1)), (1, 1)),
            "does not come from",
        ),
        (((2, 8, 8, 4), (3, 3, 5, 4), (2, 8, 8, 4), (1, 1), ((1, 1), (1, 1)), (1, 1)), "disagree"),
        (((2, 8, 8, 4), (3, 3, 4, 4), (3, 8, 8, 4), (1, 1), ((1, 1), (1, 1)), (1, 1)), "disagree"),
        (((8, 8, 4), (3, 3, 4, 4), (2, 8, 8, 4), (1, 1), ((1, 1), (1, 1)), (1, 1)), "2-D NHWC"),
    ],
    ids=["negative padding", "wrong output size", "features", "batch", "rank"],
)
def test_shapes_oneDNN_would_refuse_are_named(arguments, message):
    with pytest.raises(ValueError, match=message):
        dnnl._shape(*arguments)


def test_other_dtypes_are_refused_by_name():
    x = jnp.zeros((1, 4, 4, 2), jnp.bfloat16)
    dy = jnp.zeros((1, 4, 4, 2), jnp.bfloat16)
    with pytest.raises(ValueError, match="bfloat16.*float32"):
        dnnl.kernel_gradient(x, dy, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1))


def test_a_missing_library_or_another_backend_means_unavailable(monkeypatch):
    monkeypatch.setattr(dnnl, "_library_paths", lambda: ["/nonexistent/libdnnl.so.3"])
    monkeypatch.setattr(dnnl.ctypes.util, "find_library", lambda name: None)
    dnnl._library.cache_clear()
    try:
        assert dnnl.available.__wrapped__() is False
    finally:
        dnnl._library.cache_clear()
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert dnnl.available.__wrapped__() is False


def test_a_library_that_disagrees_with_the_direct_sum_means_unavailable(monkeypatch):
    if dnnl._library() is None:
        pytest.skip("oneDNN's library is not here")
    wrong = lambda *arguments: (np.zeros((2, 9, 8, 5)), np.ones((3, 2, 5, 4)))  # noqa: E731
    monkeypatch.setattr(dnnl, "_direct_gradients", wrong)
    assert dnnl.available.__wrapped__() is False


def test_the_library_is_offered_for_what_it_computes(monkeypatch):
    monkeypatch.setattr(dnnl, "available", lambda: True)
    monkeypatch.setattr(onednn, "available", lambda: False)  # the library alone
    strided = Geometry((2, 8, 8, 4), (3, 3, 4, 4), (2, 2), ((1, 1), (1, 1)), (1, 1))
    options = fast_conv.candidates(strided)
    assert "onednn" in options["kernel_grad"] and "onednn" in options["input_grad"]
    assert "onednn" not in options["forward"]  # the forward pass is jaxlib's call only
    assert "onednn" not in fast_conv.candidates(strided, "bfloat16")["kernel_grad"]
    negative = Geometry((2, 8, 8, 4), (3, 3, 4, 4), (1, 1), ((1, -1), (1, 1)), (1, 1))
    assert "onednn" not in fast_conv.candidates(negative)["kernel_grad"]
    assert "onednn" not in fast_conv.candidates(negative)["input_grad"]
    # At stride 1 the input gradient goes through jaxlib's call when it is there.
    same = Geometry((2, 8, 8, 4), (3, 3, 4, 4), (1, 1), ((1, 1), (1, 1)), (1, 1))
    assert fast_conv._onednn_input_grad_route(same, "float32") == "library"
    monkeypatch.setattr(onednn, "available", lambda: True)
    assert fast_conv._onednn_input_grad_route(same, "float32") == "jaxlib"
    assert fast_conv._onednn_input_grad_route(strided, "float32") == "library"


@needs_library
def test_a_planned_layer_with_every_product_by_onednn_matches_jax_grad():
    input_shape, kernel_shape, strides, padding, dilation = CASES["stride_2_1_asymmetric"]
    geometry = Geometry(input_shape, kernel_shape, strides, padding, dilation)
    plan = Plan(
        forward="onednn" if onednn.available() else "xla", input_grad="onednn", kernel_grad="onednn"
    )
    fast_conv.check_plan(plan, geometry)
    x, w, dy = _arrays(*CASES["stride_2_1_asymmetric"])

    def loss(conv, x, w):
        return jnp.sum(conv(x, w) * dy)

    def conv(x, w):
        return fast_conv.planned_conv(x, w, geometry, plan)

    dx, dw = jax.jit(jax.grad(lambda x, w: loss(conv, x, w), (0, 1)))(x, w)
    want_dx, want_dw = _xla_gradients(x, w, dy, strides, padding, dilation)
    assert _relative_error(dx, want_dx) <= 1e-4
    assert _relative_error(dw, want_dw) <= 1e-4
