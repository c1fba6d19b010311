"""ops kernels applied with ops.convolve against scipy.ndimage's filters and skimage's shapes."""

import jax
import numpy as np
import pytest
import scipy.ndimage
import skimage.morphology

from jaxconv import ops


@pytest.fixture(autouse=True)
def float64():
    """Kernels are compared with scipy's float64 filters to near machine precision."""
    with jax.enable_x64(True):
        yield


def image(shape=(23, 19), seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def filtered(x, kernel, padding="symmetric"):
    return np.asarray(ops.convolve(x, kernel, mode="same", padding=padding))


@pytest.mark.parametrize("sigma", [0.8, 2.0, (1.0, 2.5)])
def test_gaussian_matches_gaussian_filter(sigma):
    x = image()
    kernel = ops.gaussian(sigma)
    assert float(kernel.sum()) == pytest.approx(1.0)
    # numpy's 'symmetric' extension is ndimage's 'reflect'.
    expected = scipy.ndimage.gaussian_filter(x, sigma, mode="reflect")
    np.testing.assert_allclose(filtered(x, kernel), expected, atol=1e-12)


@pytest.mark.parametrize("order", [(1, 0), (0, 1), (2, 1), (0, 3)])
def test_gaussian_derivatives_match_gaussian_filter_orders(order):
    x = image(seed=1)
    kernel = ops.gaussian(1.5, order=order, truncate=3.0)
    expected = scipy.ndimage.gaussian_filter(x, 1.5, order=order, mode="wrap", truncate=3.0)
    np.testing.assert_allclose(filtered(x, kernel, "wrap"), expected, atol=1e-12)


def test_gaussian_in_three_dimensions_with_explicit_radius():
    x = image((9, 10, 11), seed=2)
    kernel = ops.gaussian(1.2, ndim=3, radius=2)
    assert kernel.shape == (5, 5, 5)
    expected = scipy.ndimage.gaussian_filter(x, 1.2, mode="nearest", radius=2)
    np.testing.assert_allclose(filtered(x, kernel, "edge"), expected, atol=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_laplacian_of_gaussian_matches_gaussian_laplace(ndim):
    x = image((15, 14, 13)[:ndim], seed=3)
    kernel = ops.laplacian_of_gaussian(1.3, ndim)
    expected = scipy.ndimage.gaussian_laplace(x, 1.3, mode="reflect")
    np.testing.assert_allclose(filtered(x, kernel), expected, atol=1e-12)


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_laplacian_matches_laplace(ndim):
    x = image((12, 11, 10)[:ndim], seed=4)
    expected = scipy.ndimage.laplace(x, mode="mirror")
    np.testing.assert_allclose(filtered(x, ops.laplacian(ndim), "reflect"), expected, atol=1e-12)


@pytest.mark.parametrize("axis", [0, 1])
def test_sobel_and_prewitt_match_ndimage(axis):
    x = image(seed=5)
    for ours, theirs in ((ops.sobel, scipy.ndimage.sobel), (ops.prewitt, scipy.ndimage.prewitt)):
        expected = theirs(x, axis=axis, mode="nearest")
        np.testing.assert_allclose(filtered(x, ours(axis), "edge"), expected, atol=1e-12)


def test_sobel_in_three_dimensions():
    x = image((8, 9, 10), seed=6)
    expected = scipy.ndimage.sobel(x, axis=2, mode="constant")
    np.testing.assert_allclose(filtered(x, ops.sobel(2, ndim=3), "zero"), expected, atol=1e-12)


def test_derivatives_are_exact_on_quadratics():
    rows, cols = np.meshgrid(np.arange(8.0), np.arange(9.0), indexing="ij")
    f = 3 * rows**2 + 2 * rows * cols - cols
    first = np.asarray(ops.convolve(f, ops.derivative(axis=0), mode="valid"))
    np.testing.assert_allclose(first, (6 * rows + 2 * cols)[1:-1, :], atol=1e-9)
    second = np.asarray(ops.convolve(f, ops.derivative(axis=1, order=2), mode="valid"))
    np.testing.assert_allclose(second, np.zeros_like(f)[:, 1:-1], atol=1e-9)


@pytest.mark.parametrize("size", [3, (5, 3)])
def test_box_matches_uniform_filter(size):
    x = image(seed=7)
    kernel = ops.box(size)
    assert float(kernel.sum()) == pytest.approx(1.0)
    expected = scipy.ndimage.uniform_filter(x, size, mode="wrap")
    np.testing.assert_allclose(filtered(x, kernel, "wrap"), expected, atol=1e-12)


@pytest.mark.parametrize("radius", [1, 4, 7])
def test_disk_and_ball_match_skimage(radius):
    np.testing.assert_array_equal(ops.disk(radius), skimage.morphology.disk(radius))
    np.testing.assert_array_equal(ops.disk(radius, ndim=3), skimage.morphology.ball(radius))


def test_disk_in_a_larger_even_grid_is_centred():
    kernel = np.asarray(ops.disk(2.5, size=6))
    np.testing.assert_array_equal(kernel, kernel[::-1, ::-1])
    np.testing.assert_array_equal(kernel, kernel.T)
    assert kernel[0, 0] == 0 and kernel[2, 2] == 1


def test_matched_filter_is_zero_mean_unit_norm_and_peaks_on_its_pattern():
    rng = np.random.default_rng(8)
    patch = rng.uniform(size=(7, 7))
    kernel = np.asarray(ops.matched_filter(patch))
    assert kernel.mean() == pytest.approx(0.0, abs=1e-12)
    assert np.linalg.norm(kernel) == pytest.approx(1.0)
    np.testing.assert_allclose(kernel, (patch - patch.mean()) / (patch.std() * 7))
    # Embedded in a scene, the pattern is where the correlation is largest.
    scene = rng.uniform(size=(30, 30))
    scene[11:18, 20:27] = patch * 3
    response = np.asarray(ops.correlate(scene, kernel, mode="same"))
    assert np.unravel_index(response.argmax(), response.shape) == (14, 23)


def test_matched_filter_with_support_and_constant_patch():
    support = np.asarray(ops.disk(3.0, size=9), bool)
    kernel = np.asarray(ops.matched_filter(ops.disk(2.0, size=9), support=support))
    assert np.all(kernel[~support] == 0)
    assert kernel[support].sum() == pytest.approx(0.0, abs=1e-12)
    assert np.linalg.norm(kernel) == pytest.approx(1.0)
    np.testing.assert_array_equal(ops.matched_filter(np.ones((3, 3))), np.zeros((3, 3)))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: ops.gaussian(0.0), "sigma must be positive"),
        (lambda: ops.gaussian((1.0, 2.0), ndim=3), "make them agree"),
        (lambda: ops.sobel(axis=2, ndim=2), "out of range"),
        (lambda: ops.derivative(order=3), "order must be 1 or 2"),
        (lambda: ops.disk(-1.0), "radius must be"),
        (lambda: ops.matched_filter(np.ones((3, 3)), support=np.ones((2, 2))), "support"),
    ],
)
def test_bad_arguments_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
