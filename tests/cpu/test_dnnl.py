"""oneDNN's backward convolution primitives from its own library, against XLA's gradients."""

import pathlib
import platform
import sys
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxconv.cpu import dnnl, fast_conv, onednn
from jaxconv.cpu.fast_conv import Geometry, Plan

needs_library = pytest.mark.skipif(not dnnl.available(), reason="oneDNN's library is not here")
needs_winograd = pytest.mark.skipif(
    not dnnl.winograd_available(), reason="oneDNN has no Winograd kernels here (AVX-512 only)"
)


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
    # The availability check trusts `_direct_products`; it is checked here by hand: one
    # image row, a 1x2 kernel, stride 2 and one pixel of left padding.
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 4, 1)
    w = np.array([10.0, 100.0]).reshape(1, 2, 1, 1)
    dy = np.array([1.0, -1.0]).reshape(1, 1, 2, 1)  # outputs read (pad, 1) and (2, 3)
    y, dx, dw = dnnl._direct_products(x, w, dy, (1, 2), ((0, 0), (1, 0)), (1, 1))
    np.testing.assert_allclose(y.ravel(), [0 * 10 + 1 * 100, 2 * 10 + 3 * 100])
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
    primitive = dnnl._Primitive(
        "kernel_gradient",
        dnnl.DIRECT,
        x.shape,
        w.shape,
        dy.shape,
        dnnl._window(strides, padding, dilation),
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
    monkeypatch.setattr(dnnl, "_library_paths", lambda: ["/nonexistent/libdnnl.so.2"])
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
    right = dnnl._direct_products
    for wrong_one in range(3):

        def wrong(*arguments, wrong_one=wrong_one):
            products = list(right(*arguments))
            products[wrong_one] = products[wrong_one] + 1.0
            return tuple(products)

        monkeypatch.setattr(dnnl, "_direct_products", wrong)
        assert dnnl.available.__wrapped__() is False
    monkeypatch.setattr(dnnl, "_direct_products", right)
    assert dnnl.available.__wrapped__() is True


def test_a_winograd_kernel_that_disagrees_with_the_direct_sum_is_not_offered(monkeypatch):
    if not dnnl.available():
        pytest.skip("oneDNN's library is not here")
    right = dnnl._direct_products
    wrong = lambda *arguments: tuple(p + 1.0 for p in right(*arguments))  # noqa: E731
    monkeypatch.setattr(dnnl, "_direct_products", wrong)
    assert dnnl.winograd_available.__wrapped__() is False
    monkeypatch.setattr(dnnl, "_direct_products", right)
    # Where oneDNN has Winograd kernels (AVX-512), they agree with the direct sum.
    flags = set(pathlib.Path("/proc/cpuinfo").read_text().split())
    kernels = {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags  # oneDNN's avx512_core
    assert dnnl.winograd_available.__wrapped__() is kernels


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
    assert "onednn_library" not in fast_conv.candidates(same)["input_grad"]  # 'onednn' is it
    monkeypatch.setattr(onednn, "available", lambda: True)
    assert fast_conv._onednn_input_grad_route(same, "float32") == "jaxlib"
    assert fast_conv._onednn_input_grad_route(strided, "float32") == "library"
    # The library's backward-data primitive is then a formulation of its own, at stride 1.
    assert "onednn_library" in fast_conv.candidates(same)["input_grad"]
    assert "onednn_library" not in fast_conv.candidates(strided)["input_grad"]
    assert "onednn_library" not in fast_conv.candidates(same, partitioned=True)["input_grad"]


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


# (input NHWC, kernel HWIO, padding) for oneDNN's Winograd F(4x4, 3x3): output sizes that are
# not multiples of its 4x4 tiles, no padding, and more features than channels.
WINOGRAD_CASES = {
    "same_16": ((2, 8, 8, 16), (3, 3, 16, 16), ((1, 1), (1, 1))),
    "odd_sizes": ((2, 9, 7, 16), (3, 3, 16, 32), ((1, 1), (1, 1))),
    "valid_few_channels": ((2, 9, 8, 5), (3, 3, 5, 6), ((0, 0), (0, 0))),
}


@needs_winograd
@pytest.mark.parametrize("case", WINOGRAD_CASES)
def test_winograd_products_match_xla(case):
    input_shape, kernel_shape, padding = WINOGRAD_CASES[case]
    window = ((1, 1), padding, (1, 1))
    assert dnnl.winograd_applies(input_shape, kernel_shape, *window)
    x, w, dy = _arrays(input_shape, kernel_shape, *window, seed=7)
    y_want = jax.lax.conv_general_dilated(
        x, w, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    want_dx, want_dw = _xla_gradients(x, w, dy, *window)

    @jax.jit
    def products(x, w, dy):
        return (
            dnnl.forward(x, w, *window, dnnl.WINOGRAD),
            dnnl.input_gradient(w, dy, input_shape, *window, dnnl.WINOGRAD),
            dnnl.kernel_gradient(x, dy, (3, 3), *window, dnnl.WINOGRAD),
        )

    y, dx, dw = products(x, w, dy)
    assert _relative_error(y, y_want) <= 1e-4
    assert _relative_error(dx, want_dx) <= 1e-4
    assert _relative_error(dw, want_dw) <= 1e-4
    shape = dnnl._shape(input_shape, kernel_shape, y.shape, *window)
    for role in dnnl.ROLES:
        assert "wino" in dnnl._primitive(role, dnnl.WINOGRAD, *shape).implementation


@needs_winograd
def test_winograd_is_offered_for_3x3_stride_1_only():
    window = ((1, 1), ((1, 1), (1, 1)), (1, 1))
    assert dnnl.winograd_applies((2, 8, 8, 16), (3, 3, 16, 16), *window)
    assert not dnnl.winograd_applies((2, 8, 8, 16), (3, 3, 16, 16), (2, 2), *window[1:])
    assert not dnnl.winograd_applies((2, 8, 8, 16), (3, 3, 16, 16), (1, 1), window[1], (2, 2))
    assert not dnnl.winograd_applies((2, 8, 8, 16), (5, 5, 16, 16), *window)
    geometry = Geometry((2, 8, 8, 16), (3, 3, 16, 16), (1, 1), ((1, 1), (1, 1)), (1, 1))
    assert all("onednn_winograd" in names for names in fast_conv.candidates(geometry).values())
    assert not any(
        "onednn_winograd" in names for names in fast_conv.candidates(geometry, "bfloat16").values()
    )
    partitioned = fast_conv.candidates(geometry, partitioned=True)
    assert not any("onednn_winograd" in names for names in partitioned.values())


@needs_winograd
def test_a_primitive_runs_on_threads_other_than_its_creators():
    # XLA runs a host call on whichever of its threads is free. oneDNN's own scratchpad is a
    # per-thread buffer sized when a primitive is created, which a Winograd primitive created
    # on one thread overran on another; each primitive now has a scratchpad of its own.
    input_shape, kernel_shape = (4, 32, 32, 64), (3, 3, 64, 64)
    window = ((1, 1), ((1, 1), (1, 1)), (1, 1))
    x, w, dy = (np.asarray(a) for a in _arrays(input_shape, kernel_shape, *window, seed=3))
    shape = dnnl._shape(input_shape, kernel_shape, dy.shape, *window)
    primitive = dnnl._primitive("kernel_gradient", dnnl.WINOGRAD, *shape)  # made here
    results = []
    thread = threading.Thread(target=lambda: results.append(primitive(x, dy)))
    thread.start()
    thread.join()
    want = _xla_gradients(x, w, dy, *window)[1]
    assert _relative_error(jnp.asarray(results[0]), want) <= 1e-4


@needs_winograd
def test_primitives_share_one_workspace_that_grows_to_the_largest_call():
    # Calls are serialised, so every primitive's reordered operands and scratchpad live in
    # one buffer per slot: a small call, a larger one (the buffers grow), the small one again.
    window = ((1, 1), ((1, 1), (1, 1)), (1, 1))
    small = _arrays((2, 8, 8, 16), (3, 3, 16, 16), *window, seed=11)
    large = _arrays((4, 16, 16, 32), (3, 3, 32, 32), *window, seed=12)
    for x, w, dy in (small, large, small):
        got = dnnl.kernel_gradient(x, dy, (3, 3), *window, dnnl.WINOGRAD)
        want = _xla_gradients(x, w, dy, *window)[1]
        assert _relative_error(got, want) <= 1e-4
    slots = dnnl._WORKSPACE._buffers
    assert set(slots) <= {"operand 0", "operand 1", "operand 2", "scratchpad", "reorder"}
    large_image = 4 * 16 * 16 * 32 * 4  # bytes, as oneDNN's blocked layout holds it
    assert slots["operand 0"].size >= large_image
