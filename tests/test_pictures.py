"""Image arithmetic (and the report's confusion and IoU counts), against independent references."""

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio
from sklearn.metrics import confusion_matrix

from jaxconv import pictures
from jaxconv.report import predictions


def test_psnr_matches_scikit_image():
    rng = np.random.default_rng(0)
    clean = rng.random((3, 8, 8, 1))
    noisy = clean + rng.normal(0, 0.1, clean.shape)
    expected = [peak_signal_noise_ratio(c, n, data_range=1.0) for c, n in zip(clean, noisy)]
    np.testing.assert_allclose(pictures.psnr(noisy, clean), expected, rtol=1e-10)


def test_confusion_and_iou_match_scikit_learn_and_hand_counts():
    true = np.array([0, 0, 1, 2, 2, 2])
    predicted = np.array([0, 1, 1, 2, 2, 0])
    matrix = predictions.confusion(true, predicted, 4)
    np.testing.assert_array_equal(matrix, confusion_matrix(true, predicted, labels=range(4)))
    # class 0: 1 hit, 2 true, 2 predicted -> 1/3; class 3 absent from both -> NaN.
    np.testing.assert_allclose(predictions.iou_per_class(matrix), [1 / 3, 1 / 2, 2 / 3, np.nan])


def test_overlay_leaves_the_background_untouched():
    picture = np.full((1, 2, 2, 1), 0.5, np.float32)
    labels = np.array([[[0, 1], [2, 0]]])
    colours = pictures.label_colours(3)
    tinted = pictures.overlay(picture, labels, colours, background=0, alpha=1.0)
    np.testing.assert_allclose(tinted[0, 0, 0], [0.5, 0.5, 0.5])
    np.testing.assert_allclose(tinted[0, 0, 1], pictures.TAB10[0])
    np.testing.assert_allclose(tinted[0, 1, 0], pictures.TAB10[1])


@pytest.mark.parametrize(
    ("names", "expected"), [((), 0), (("pet", "background", "border"), 1), (("a", "b"), None)]
)
def test_background_class_follows_the_class_names(names, expected):
    assert pictures.background_class(names) == expected
    colours = pictures.label_colours(3, expected)
    assert len(np.unique(colours, axis=0)) == 3
