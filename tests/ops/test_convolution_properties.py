"""Algebraic properties of convolution, checked on random shapes drawn by hypothesis."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxconv import ops

# Every new shape compiles, so few examples; no deadline since the first call compiles.
PROPERTY_SETTINGS = settings(max_examples=12, deadline=None, derandomize=True)


@st.composite
def signal_and_kernel(draw, min_input=1, max_input=9, max_kernel=5):
    ndim = draw(st.integers(1, 3))
    input_shape = tuple(draw(st.integers(min_input, max_input)) for _ in range(ndim))
    kernel_shape = tuple(draw(st.integers(1, max_kernel)) for _ in range(ndim))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    f = rng.standard_normal(input_shape).astype(np.float32)
    k = rng.standard_normal(kernel_shape).astype(np.float32)
    return f, k


def assert_close(actual, expected, scale):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=0, atol=1e-5 * scale)


@PROPERTY_SETTINGS
@given(
    pair=signal_and_kernel(),
    weights=st.tuples(st.floats(-3, 3), st.floats(-3, 3)),
    mode=st.sampled_from(["full", "same", "valid"]),
    padding=st.sampled_from(["zero", "reflect", "symmetric", "edge", "wrap"]),
)
def test_linearity(pair, weights, mode, padding):
    f, k = pair
    g = np.random.default_rng(1).standard_normal(f.shape).astype(np.float32)
    a, b = weights
    left = ops.convolve(a * f + b * g, k, mode=mode, padding=padding)
    right = a * ops.convolve(f, k, mode=mode, padding=padding) + b * ops.convolve(
        g, k, mode=mode, padding=padding
    )
    scale = (abs(a) + abs(b) + 1) * np.abs(k).sum() * 4
    assert_close(left, right, scale)


@PROPERTY_SETTINGS
@given(pair=signal_and_kernel(min_input=6, max_input=12, max_kernel=4), data=st.data())
def test_shift_invariance_away_from_the_border(pair, data):
    f, k = pair
    shifts = tuple(
        data.draw(st.integers(1, size - k_size)) for size, k_size in zip(f.shape, k.shape)
    )
    shifted = np.roll(f, shifts, axis=tuple(range(f.ndim)))
    # A valid output cell at index >= shift reads only cells the roll moved, never wrapped ones.
    moved = np.asarray(ops.convolve(shifted, k, mode="valid"))
    original = np.asarray(ops.convolve(f, k, mode="valid"))
    inner = tuple(slice(shift, None) for shift in shifts)
    source = tuple(slice(0, -shift) for shift in shifts)
    assert_close(moved[inner], original[source], np.abs(k).sum() * 4)


@PROPERTY_SETTINGS
@given(pair=signal_and_kernel(), data=st.data())
def test_delta_in_gives_kernel_out(pair, data):
    f, k = pair
    position = tuple(data.draw(st.integers(0, size - 1)) for size in f.shape)
    delta = np.zeros(f.shape, np.float32)
    delta[position] = 1.0
    expected = np.zeros(tuple(n + m - 1 for n, m in zip(f.shape, k.shape)), np.float32)
    expected[tuple(slice(p, p + m) for p, m in zip(position, k.shape))] = k
    method = data.draw(st.sampled_from(["direct", "fft"]))
    assert_close(ops.convolve(delta, k, mode="full", method=method), expected, np.abs(k).max())
    # Correlation does not flip the kernel, so the delta returns it reversed.
    flipped = np.zeros_like(expected)
    flipped[tuple(slice(p, p + m) for p, m in zip(position, k.shape))] = np.flip(k)
    assert_close(ops.correlate(delta, k, mode="full", method=method), flipped, np.abs(k).max())


@PROPERTY_SETTINGS
@given(pair=signal_and_kernel(), method=st.sampled_from(["direct", "fft"]))
def test_commutativity_in_full_mode(pair, method):
    f, k = pair
    scale = np.abs(f).max() * np.abs(k).sum() + 1
    assert_close(
        ops.convolve(f, k, mode="full", method=method),
        ops.convolve(k, f, mode="full", method=method),
        scale,
    )


@PROPERTY_SETTINGS
@given(
    pair=signal_and_kernel(),
    mode=st.sampled_from(["full", "same", "valid"]),
    padding=st.sampled_from(["zero", "reflect", "symmetric", "edge", "wrap"]),
    stride=st.integers(1, 3),
)
def test_direct_and_fft_agree(pair, mode, padding, stride):
    f, k = pair
    direct = ops.correlate(f, k, mode=mode, padding=padding, stride=stride, method="direct")
    fourier = ops.correlate(f, k, mode=mode, padding=padding, stride=stride, method="fft")
    assert_close(direct, fourier, np.abs(f).max() * np.abs(k).sum() + 1)
