"""ops.convolve / correlate and their banks against scipy, on random inputs in 1-D to 3-D."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
from jax.test_util import check_grads

from jaxconv import ops

MODES = ("full", "same", "valid")
METHODS = ("direct", "fft")
PADDINGS = ("zero", "reflect", "symmetric", "edge", "wrap")
# numpy.pad's names, used here, against scipy.ndimage's names for the same extensions.
NDIMAGE_MODES = {
    "zero": "constant",
    "reflect": "mirror",
    "symmetric": "reflect",
    "edge": "nearest",
    "wrap": "wrap",
}
# (input shape, kernel shape): 1-D to 3-D, odd and even kernel sizes, mixed per axis.
SHAPES = [
    ((17,), (4,)),
    ((16,), (5,)),
    ((11, 13), (3, 4)),
    ((12, 9), (6, 5)),
    ((7, 8, 9), (3, 2, 4)),
    ((6, 7, 5), (5, 3, 3)),
]
SHAPE_IDS = ["1d-even", "1d-odd", "2d-odd-even", "2d-even-odd", "3d-mixed", "3d-odd"]
# Each padding test compiles per shape, so they split the shapes between them; together they
# still cover 1-D to 3-D with odd and even kernel sizes.
DEFINITION_SHAPES, NDIMAGE_SHAPES = SHAPES[0::2], SHAPES[1::2]


def random_pair(input_shape, kernel_shape, seed=0):
    rng = np.random.default_rng(seed)
    f = rng.standard_normal(input_shape).astype(np.float32)
    k = rng.standard_normal(kernel_shape).astype(np.float32)
    return f, k


def assert_close(actual, expected, tolerance=1e-5):
    """Max abs error within `tolerance` times the reference's largest magnitude."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    scale = max(np.abs(expected).max(), 1e-30)
    np.testing.assert_array_less(np.abs(actual - expected).max(), tolerance * scale)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shapes", SHAPES, ids=SHAPE_IDS)
def test_zero_padding_matches_scipy_signal(shapes, mode, method):
    f, k = random_pair(*shapes)
    reference_f, reference_k = f.astype(np.float64), k.astype(np.float64)
    for ours, theirs in (
        (ops.convolve, scipy.signal.convolve),
        (ops.correlate, scipy.signal.correlate),
    ):
        expected = theirs(reference_f, reference_k, mode=mode, method="direct")
        assert_close(ours(f, k, mode=mode, method=method), expected)


def padded_reference(function, f, k, mode, padding):
    """The definition: extend f by numpy.pad, then take scipy's valid output."""
    if mode == "full":
        widths = [(m - 1, m - 1) for m in k.shape]
    else:  # 'same' reads m // 2 cells before and (m - 1) // 2 after, for both operations
        widths = [(m // 2, (m - 1) // 2) for m in k.shape]
    extended = np.pad(f.astype(np.float64), widths, mode=ops.padding.NUMPY_NAMES[padding])
    return function(extended, k.astype(np.float64), mode="valid", method="direct")


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("shapes", DEFINITION_SHAPES, ids=SHAPE_IDS[0::2])
def test_padding_matches_numpy_pad_definition(shapes, padding):
    f, k = random_pair(*shapes, seed=1)
    for mode in ("full", "same"):
        expected = padded_reference(scipy.signal.convolve, f, k, mode, padding)
        assert_close(ops.convolve(f, k, mode=mode, padding=padding, method="direct"), expected)
    expected = padded_reference(scipy.signal.correlate, f, k, "same", padding)
    assert_close(ops.correlate(f, k, mode="same", padding=padding, method="direct"), expected)


@pytest.mark.parametrize("padding", PADDINGS)
def test_padding_through_the_fft_matches_numpy_pad_definition(padding):
    # The FFT reads zero padding from its own zero fill and other paddings from a copy.
    f, k = random_pair((7, 8, 9), (3, 2, 4), seed=15)
    for mode in ("full", "same"):
        expected = padded_reference(scipy.signal.convolve, f, k, mode, padding)
        assert_close(ops.convolve(f, k, mode=mode, padding=padding, method="fft"), expected)


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("shapes", NDIMAGE_SHAPES, ids=SHAPE_IDS[1::2])
def test_same_mode_matches_scipy_ndimage(shapes, padding):
    f, k = random_pair(*shapes, seed=2)
    mode = NDIMAGE_MODES[padding]
    reference_f, reference_k = f.astype(np.float64), k.astype(np.float64)
    # ndimage.correlate centres kernel cell m // 2, as scipy.signal does. ndimage.convolve puts
    # an even kernel one cell later than scipy.signal.convolve, which origin -1 undoes.
    origins = [-1 if m % 2 == 0 else 0 for m in k.shape]
    expected = scipy.ndimage.convolve(reference_f, reference_k, mode=mode, origin=origins)
    assert_close(ops.convolve(f, k, mode="same", padding=padding), expected)
    expected = scipy.ndimage.correlate(reference_f, reference_k, mode=mode)
    assert_close(ops.correlate(f, k, mode="same", padding=padding), expected)


@pytest.mark.parametrize("padding", PADDINGS)
def test_padding_wider_than_input_repeats_the_rule(padding):
    f, k = random_pair((3, 4), (9, 7), seed=3)
    expected = padded_reference(scipy.signal.convolve, f, k, "full", padding)
    assert_close(ops.convolve(f, k, mode="full", padding=padding), expected)


@pytest.mark.parametrize("padding", PADDINGS)
def test_valid_mode_ignores_padding(padding):
    f, k = random_pair((10, 9), (3, 4), seed=4)
    expected = scipy.signal.convolve(f.astype(np.float64), k.astype(np.float64), mode="valid")
    assert_close(ops.convolve(f, k, mode="valid", padding=padding), expected)


@pytest.mark.parametrize("method", METHODS)
def test_valid_mode_with_longer_kernel_swaps_roles_as_scipy(method):
    f, k = random_pair((4, 3), (7, 6), seed=5)
    for ours, theirs in (
        (ops.convolve, scipy.signal.convolve),
        (ops.correlate, scipy.signal.correlate),
    ):
        expected = theirs(f.astype(np.float64), k.astype(np.float64), mode="valid")
        assert_close(ours(f, k, mode="valid", method=method), expected)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", MODES)
def test_stride_keeps_every_stride_th_output(mode, method):
    f, k = random_pair((15, 14), (4, 3), seed=6)
    dense = ops.convolve(f, k, mode=mode, padding="reflect", method="direct")
    for stride in (2, (3, 2)):
        steps = stride if isinstance(stride, tuple) else (stride, stride)
        out = ops.convolve(f, k, mode=mode, padding="reflect", stride=stride, method=method)
        assert_close(out, np.asarray(dense)[:: steps[0], :: steps[1]])


@pytest.mark.parametrize("method", METHODS)
def test_leading_axes_are_a_batch(method):
    f, k = random_pair((2, 3, 10, 9), (4, 3), seed=7)
    out = ops.convolve(f, k, mode="same", padding="edge", method=method)
    assert out.shape == (2, 3, 10, 9)
    for index in itertools.product(range(2), range(3)):
        expected = ops.convolve(f[index], k, mode="same", padding="edge", method="direct")
        assert_close(out[index], expected)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", MODES)
def test_bank_sums_channels_and_stacks_features(mode, method):
    rng = np.random.default_rng(8)
    images = rng.standard_normal((2, 9, 8, 3)).astype(np.float32)  # NHWC
    kernels = rng.standard_normal((4, 3, 2, 3)).astype(np.float32)  # (M, h, w, C)
    for ours, theirs in (
        (ops.convolve_bank, scipy.signal.convolve),
        (ops.correlate_bank, scipy.signal.correlate),
    ):
        out = ours(images, kernels, mode=mode, method=method)
        expected = np.stack(
            [
                np.stack(
                    [
                        sum(
                            theirs(images[n, ..., c].astype(np.float64), kernels[m, ..., c], mode)
                            for c in range(3)
                        )
                        for m in range(4)
                    ],
                    axis=-1,
                )
                for n in range(2)
            ]
        )
        assert_close(out, expected)


def test_bank_of_one_channel_in_three_dimensions():
    rng = np.random.default_rng(9)
    volume = rng.standard_normal((6, 7, 5, 1)).astype(np.float32)
    kernels = rng.standard_normal((2, 3, 2, 3, 1)).astype(np.float32)
    out = ops.convolve_bank(volume, kernels, mode="same", padding="wrap")
    for m in range(2):
        expected = ops.convolve(volume[..., 0], kernels[m, ..., 0], mode="same", padding="wrap")
        assert_close(out[..., m], expected)


@pytest.mark.parametrize("mode", MODES)
def test_complex_inputs_follow_scipy(mode):
    rng = np.random.default_rng(10)
    f = rng.standard_normal((9, 8)) + 1j * rng.standard_normal((9, 8))
    k = rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4))
    f, k = f.astype(np.complex64), k.astype(np.complex64)
    assert_close(ops.convolve(f, k, mode=mode), scipy.signal.convolve(f, k, mode=mode))
    # scipy.signal.correlate conjugates a complex kernel.
    assert_close(ops.correlate(f, k, mode=mode), scipy.signal.correlate(f, k, mode=mode))


def test_integer_inputs_give_floating_output():
    f = np.arange(12, dtype=np.int32).reshape(3, 4)
    k = np.array([[1, 2], [3, 4]], dtype=np.int32)
    out = ops.convolve(f, k)
    assert jnp.issubdtype(out.dtype, jnp.floating)
    np.testing.assert_array_equal(out, scipy.signal.convolve(f, k))


@pytest.mark.parametrize("shapes", [((300,), (96,)), ((30, 28), (11, 7)), ((9, 10, 11), (4, 3, 5))])
def test_kernels_larger_than_one_fused_pass_loop_over_blocks_of_taps(shapes):
    f, k = random_pair(*shapes, seed=16)
    expected = scipy.signal.correlate(f.astype(np.float64), k.astype(np.float64), mode="same")
    out = ops.correlate(f, k, mode="same", stride=2, method="direct")
    assert_close(out, expected[(slice(None, None, 2),) * f.ndim])


def test_half_precision_is_summed_in_float32_and_returned_as_given():
    f, k = random_pair((20, 20), (5, 5), seed=17)
    for method in METHODS:
        out = ops.convolve(f.astype(jnp.bfloat16), k.astype(jnp.bfloat16), "same", method=method)
        assert out.dtype == jnp.bfloat16
        expected = scipy.signal.convolve(
            f.astype(jnp.bfloat16).astype(np.float64),
            k.astype(jnp.bfloat16).astype(np.float64),
            "same",
        )
        assert_close(out.astype(np.float32), expected, tolerance=1e-2)


def test_zero_dimensional_kernel_scales_the_input():
    f = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(ops.convolve(f, np.array(2.0)), 2 * f)


def test_auto_picks_direct_for_small_and_fft_for_large_kernels():
    image = jax.ShapeDtypeStruct((256, 256), jnp.float32)
    assert ops.choose_method(image, np.ones((3, 3)), mode="same") == "direct"
    assert ops.choose_method(image, np.ones((41, 41)), mode="same") == "fft"
    f, k = random_pair((64, 64), (25, 25), seed=11)
    expected = ops.convolve(f, k, mode="same", method="direct")
    assert_close(ops.convolve(f, k, mode="same"), expected)


def test_runs_under_jit_with_static_options():
    f, k = random_pair((10, 12), (3, 5), seed=12)
    convolve = jax.jit(
        functools.partial(ops.convolve, mode="same", padding="symmetric", stride=(2, 1))
    )
    expected = ops.convolve(f, k, mode="same", padding="symmetric", stride=(2, 1))
    assert_close(convolve(f, k), expected)


@pytest.mark.parametrize(
    "mode, padding, method",
    [("full", "zero", "direct"), ("same", "reflect", "fft"), ("same", "wrap", "direct")],
)
def test_gradients_match_finite_differences(mode, padding, method):
    with jax.enable_x64(True):
        rng = np.random.default_rng(13)
        f, k = rng.standard_normal((7, 6)), rng.standard_normal((3, 2))
        convolve = functools.partial(
            ops.convolve, mode=mode, padding=padding, stride=(1, 2), method=method
        )
        check_grads(convolve, (f, k), order=1, modes=("fwd", "rev"))
        images, kernels = rng.standard_normal((1, 5, 4, 2)), rng.standard_normal((3, 2, 3, 2))
        bank = functools.partial(ops.correlate_bank, mode=mode, padding=padding, method=method)
        check_grads(bank, (images, kernels), order=1, modes=("rev",))


def test_second_derivatives_through_the_fft():
    with jax.enable_x64(True):
        rng = np.random.default_rng(14)
        f, k = rng.standard_normal((9,)), rng.standard_normal((4,))
        convolve = functools.partial(ops.convolve, mode="valid", method="fft")
        check_grads(convolve, (f, k), order=2, modes=("rev",))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: ops.convolve(np.ones(5), np.ones((2, 2))), "drop kernel axes"),
        (lambda: ops.convolve(np.ones(5), np.ones(2), mode="sam"), "unknown mode 'sam'"),
        (lambda: ops.convolve(np.ones(5), np.ones(2), padding="mirror"), "unknown padding"),
        (lambda: ops.convolve(np.ones(5), np.ones(2), padding="constant"), "spelt 'zero'"),
        (lambda: ops.convolve(np.ones(5), np.ones(2), method="winograd"), "unknown method"),
        (lambda: ops.convolve(np.ones(5), np.ones(2), stride=0), "at least 1"),
        (lambda: ops.convolve(np.ones((5, 5)), np.ones((2, 2)), stride=(1, 2, 3)), "one per axis"),
        (lambda: ops.convolve(np.ones(5), np.ones(0)), "empty axis"),
        (lambda: ops.convolve_bank(np.ones((5, 5, 3)), np.ones((2, 3, 3, 2))), "channels"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_fix(call, message):
    with pytest.raises(ValueError, match=message):
        call()
