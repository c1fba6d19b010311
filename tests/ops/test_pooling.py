"""ops.max_pool and ops.avg_pool against numpy sliding windows and scipy.ndimage."""

import functools

import jax
import numpy as np
import pytest
import scipy.ndimage
from jax.test_util import check_grads
from numpy.lib.stride_tricks import sliding_window_view

from jaxconv import ops


def reference_pool(x, window, stride, mode, padding, reduce):
    """Pools the trailing len(window) axes with numpy: pad, slide, subsample, reduce."""
    axes = tuple(range(x.ndim - len(window), x.ndim))
    if mode == "full":
        widths = [(w - 1, w - 1) for w in window]
    elif mode == "same":
        widths = [(w // 2, w - 1 - w // 2) for w in window]
    else:
        widths = [(0, 0) for _ in window]
    widths = [(0, 0)] * (x.ndim - len(window)) + widths
    x = x.astype(np.float64)
    if padding == "ignore":  # padded cells are NaN, which nanmax / nanmean leave out
        extended = np.pad(x, widths, constant_values=np.nan)
    else:
        extended = np.pad(x, widths, mode=ops.padding.NUMPY_NAMES[padding])
    windows = sliding_window_view(extended, window, axis=axes)
    subsample = (slice(None),) * (x.ndim - len(window)) + tuple(
        slice(None, None, s) for s in stride
    )
    windows = windows[subsample]
    window_axes = tuple(range(x.ndim, windows.ndim))
    return reduce(windows, axis=window_axes)


CASES = [
    # (shape, window, stride)
    ((12,), (3,), (3,)),
    ((9, 10), (2, 3), (2, 3)),
    ((9, 10), (3, 3), (1, 2)),
    ((2, 7, 8), (4, 2), (3, 1)),  # a leading batch axis
    ((6, 5, 7), (2, 3, 2), (2, 2, 3)),
]


@pytest.mark.parametrize("padding", ["ignore", "zero", "reflect"])
@pytest.mark.parametrize("mode", ["valid", "same", "full"])
@pytest.mark.parametrize("case", CASES, ids=["1d", "2d", "2d-overlap", "batch", "3d"])
def test_pools_match_numpy_sliding_windows(case, mode, padding):
    shape, window, stride = case
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for pool, reduce in ((ops.max_pool, np.nanmax), (ops.avg_pool, np.nanmean)):
        out = pool(x, window, stride, mode=mode, padding=padding)
        expected = reference_pool(x, window, stride, mode, padding, reduce)
        np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_default_stride_is_the_window_without_overlap():
    x = np.arange(24.0).reshape(4, 6)
    out = ops.max_pool(x, 2)
    np.testing.assert_array_equal(out, x.reshape(2, 2, 3, 2).max(axis=(1, 3)))
    out = ops.avg_pool(x, (2, 3))
    np.testing.assert_array_equal(out, x.reshape(2, 2, 2, 3).mean(axis=(1, 3)))


def test_window_tuple_pools_trailing_axes_of_nhwc_arrays():
    x = np.random.default_rng(1).standard_normal((2, 8, 6, 3)).astype(np.float32)
    out = ops.max_pool(x, (2, 2, 1))
    expected = x.reshape(2, 4, 2, 3, 2, 3).max(axis=(2, 4))
    np.testing.assert_array_equal(out, expected)


def test_same_mode_stride_one_matches_scipy_filters():
    x = np.random.default_rng(2).standard_normal((11, 13))
    with jax.enable_x64(True):
        # A maximum over the input cells only equals one with the edge repeated.
        expected = scipy.ndimage.maximum_filter(x, size=(3, 5), mode="nearest")
        np.testing.assert_allclose(ops.max_pool(x, (3, 5), 1, mode="same"), expected)
        # Zero padding counts padded cells in the average, as uniform_filter's constant mode.
        expected = scipy.ndimage.uniform_filter(x, size=(3, 5), mode="constant")
        np.testing.assert_allclose(
            ops.avg_pool(x, (3, 5), 1, mode="same", padding="zero"), expected, atol=1e-12
        )


def test_avg_pool_ignore_divides_by_the_real_cells():
    x = np.ones((4, 4))
    np.testing.assert_allclose(ops.avg_pool(x, 3, 1, mode="same"), np.ones((4, 4)))
    zero_padded = np.asarray(ops.avg_pool(x, 3, 1, mode="same", padding="zero"))
    assert zero_padded[0, 0] == pytest.approx(4 / 9)
    assert zero_padded[1, 1] == pytest.approx(1.0)


def test_integer_inputs():
    x = np.arange(16, dtype=np.int32).reshape(4, 4)
    out = ops.max_pool(x, 2, mode="same", padding="ignore")
    assert out.dtype == np.int32
    np.testing.assert_array_equal(
        out, reference_pool(x, (2, 2), (2, 2), "same", "ignore", np.nanmax)
    )
    np.testing.assert_allclose(ops.avg_pool(x, 2), x.reshape(2, 2, 2, 2).mean(axis=(1, 3)))


@pytest.mark.parametrize("pool", [ops.max_pool, ops.avg_pool])
def test_gradients_match_finite_differences(pool):
    with jax.enable_x64(True):
        x = np.random.default_rng(3).standard_normal((6, 7))  # distinct values: no ties
        check_grads(functools.partial(pool, window=(3, 2), stride=(2, 1), mode="same"), (x,), 1)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: ops.max_pool(np.ones((4, 4)), (2, 2, 2)), "drop window axes"),
        (lambda: ops.max_pool(np.ones((4, 4)), 2, stride=0), "at least 1"),
        (lambda: ops.max_pool(np.ones((4, 4)), 0), "at least 1"),
        (lambda: ops.avg_pool(np.ones((4, 4)), 2, mode="half"), "unknown mode"),
        (lambda: ops.avg_pool(np.ones((4, 4)), 2, padding="nan"), "unknown padding"),
        (lambda: ops.max_pool(np.ones((4, 4)), 5), "mode='same'"),
    ],
)
def test_bad_arguments_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
