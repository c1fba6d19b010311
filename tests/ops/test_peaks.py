"""ops.find_peaks, image_pyramid and multiscale_response against skimage, scipy and brute force."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
import skimage.feature

from jaxconv import ops


def smooth_random_map(shape, seed, sigma=2.0):
    """Random smooth map with distinct values, so no plateaus."""
    noise = np.random.default_rng(seed).standard_normal(shape)
    return scipy.ndimage.gaussian_filter(noise, sigma).astype(np.float32)


def brute_force_peaks(feature_map, min_distance, threshold):
    """Every cell strictly above threshold that is the maximum of its (2d+1)-window."""
    peaks = []
    for index in itertools.product(*(range(size) for size in feature_map.shape)):
        window = tuple(slice(max(i - min_distance, 0), i + min_distance + 1) for i in index)
        value = feature_map[index]
        if value > threshold and value == feature_map[window].max():
            peaks.append(index)
    return {tuple(peak) for peak in peaks}


@pytest.mark.parametrize("min_distance, threshold", [(1, 0.0), (3, 0.05), (6, -1.0)])
def test_matches_skimage_peak_local_max(min_distance, threshold):
    feature_map = smooth_random_map((48, 40), seed=0)
    peaks = ops.find_peaks(feature_map, min_distance, threshold)
    expected = skimage.feature.peak_local_max(
        feature_map, min_distance=min_distance, threshold_abs=threshold, exclude_border=False
    )
    assert {tuple(c) for c in np.asarray(peaks.coordinates)} == {tuple(c) for c in expected}
    scores = np.asarray(peaks.scores)
    assert np.all(np.diff(scores) <= 0)
    np.testing.assert_array_equal(scores, feature_map[tuple(np.asarray(peaks.coordinates).T)])


@pytest.mark.parametrize("shape, min_distance", [((60,), 2), ((9, 10, 11), 1)])
def test_matches_brute_force_in_one_and_three_dimensions(shape, min_distance):
    feature_map = smooth_random_map(shape, seed=1, sigma=1.0)
    peaks = ops.find_peaks(feature_map, min_distance, threshold=0.0)
    found = {tuple(c) for c in np.asarray(peaks.coordinates)}
    assert found == brute_force_peaks(feature_map, min_distance, 0.0)


def test_plateaus_keep_one_response_per_neighbourhood():
    feature_map = np.zeros((12, 20), np.float32)
    feature_map[2:5, 2:5] = 1.0  # a square plateau
    feature_map[8, 3:15] = 2.0  # a long ridge
    feature_map[2, 10], feature_map[2, 12] = 0.5, 0.5  # equal peaks 2 cells apart
    peaks = ops.find_peaks(feature_map, min_distance=2, threshold=0.1)
    coordinates = np.asarray(peaks.coordinates)
    for first, second in itertools.combinations(coordinates, 2):
        assert np.abs(first - second).max() > 2
    # The first cell of each tied group in row-major order wins.
    assert [tuple(c) for c in coordinates] == [(8, 3), (2, 2), (2, 10)]
    np.testing.assert_array_equal(peaks.scores, [2.0, 1.0, 0.5])


def test_threshold_is_strict_and_flat_maps_have_no_peak_above_it():
    feature_map = np.zeros((5, 5), np.float32)
    assert ops.find_peaks(feature_map, 1, threshold=0.0).scores.shape == (0,)
    feature_map[2, 2] = 0.5
    assert ops.find_peaks(feature_map, 1, threshold=0.5).scores.shape == (0,)
    assert ops.find_peaks(feature_map, 1, threshold=0.4).scores.shape == (1,)


def test_zero_distance_along_an_axis_keeps_slices_independent():
    stack = np.stack([smooth_random_map((20, 20), seed=s) for s in (2, 3)])
    peaks = ops.find_peaks(stack, (0, 2, 2), threshold=0.0)
    found = {tuple(c) for c in np.asarray(peaks.coordinates)}
    for index in range(2):
        per_slice = ops.find_peaks(stack[index], 2, threshold=0.0)
        assert {(index, *c) for c in np.asarray(per_slice.coordinates).tolist()} == {
            c for c in found if c[0] == index
        }


def test_fixed_size_result_under_jit():
    feature_map = smooth_random_map((30, 30), seed=4)
    exact = ops.find_peaks(feature_map, 3, 0.0)
    count = exact.scores.shape[0]
    find = jax.jit(lambda fm: ops.find_peaks(fm, 3, 0.0, max_peaks=count + 3))
    padded = find(feature_map)
    np.testing.assert_array_equal(padded.coordinates[:count], exact.coordinates)
    np.testing.assert_array_equal(padded.coordinates[count:], -1)
    assert np.all(np.isneginf(padded.scores[count:]))
    with pytest.raises(ValueError, match="max_peaks"):
        jax.jit(lambda fm: ops.find_peaks(fm, 3, 0.0))(feature_map)


def test_image_pyramid_matches_gaussian_filter_and_subsampling():
    with jax.enable_x64(True):
        image = np.random.default_rng(5).standard_normal((33, 20))
        levels = ops.image_pyramid(image, num_levels=4)
        assert [level.shape for level in levels] == [(33, 20), (17, 10), (9, 5), (5, 3)]
        expected = scipy.ndimage.gaussian_filter(image, 2 / 3, mode="reflect")[::2, ::2]
        np.testing.assert_allclose(levels[1], expected, atol=1e-12)
        batched = ops.image_pyramid(np.stack([image, image]), num_levels=2, ndim=2)
        np.testing.assert_allclose(batched[1][1], levels[1], atol=1e-12)


def test_multiscale_response_stacks_correlations_per_scale():
    image = np.random.default_rng(6).standard_normal((25, 30)).astype(np.float32)

    def detector(radius):
        return ops.matched_filter(ops.disk(radius, size=2 * int(radius) + 2))  # even sizes too

    scales = (1.0, 2.5, 4.0)
    responses = ops.multiscale_response(image, detector, scales)
    assert responses.shape == (3, 25, 30)
    for response, scale in zip(responses, scales, strict=True):
        expected = scipy.signal.correlate(image.astype(np.float64), detector(scale), "same")
        np.testing.assert_allclose(response, expected, atol=1e-5 * np.abs(expected).max())


def test_multiscale_response_resizes_an_array_kernel_keeping_its_norm():
    kernel = ops.matched_filter(ops.gaussian(1.0, radius=3))
    image = jnp.zeros((20, 20)).at[10, 10].set(1.0)
    responses = ops.multiscale_response(image, kernel, (1.0, 2.0))
    # The impulse response is the kernel reversed, so its norm is the kernel's at every scale.
    norms = np.sqrt(np.sum(np.asarray(responses) ** 2, axis=(1, 2)))
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    np.testing.assert_allclose(responses[0][7:14, 7:14], kernel[::-1, ::-1], atol=1e-6)
