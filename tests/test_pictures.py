"""Image arithmetic and the TensorBoard prediction images, against independent references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio
from sklearn.metrics import confusion_matrix

from jaxconv import models, report
from jaxconv.configs import base
from jaxconv.data.source import ArraySource
from jaxconv.report import images, predictions
from jaxconv.workdir.writers import MetricWriter


def test_psnr_matches_scikit_image():
    rng = np.random.default_rng(0)
    clean = rng.random((3, 8, 8, 1))
    noisy = clean + rng.normal(0, 0.1, clean.shape)
    expected = [peak_signal_noise_ratio(c, n, data_range=1.0) for c, n in zip(clean, noisy)]
    np.testing.assert_allclose(images.psnr(noisy, clean), expected, rtol=1e-10)


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
    colours = images.label_colours(3)
    tinted = images.overlay(picture, labels, colours, background=0, alpha=1.0)
    np.testing.assert_allclose(tinted[0, 0, 0], [0.5, 0.5, 0.5])
    np.testing.assert_allclose(tinted[0, 0, 1], images.TAB10[0])
    np.testing.assert_allclose(tinted[0, 1, 0], images.TAB10[1])


@pytest.mark.parametrize(
    ("names", "expected"), [((), 0), (("pet", "background", "border"), 1), (("a", "b"), None)]
)
def test_background_class_follows_the_class_names(names, expected):
    assert images.background_class(names) == expected
    colours = images.label_colours(3, expected)
    assert len(np.unique(colours, axis=0)) == 3


def test_classification_images_frame_right_green_and_wrong_red():
    batch = {"image": np.zeros((2, 4, 4, 1), np.float32), "label": np.array([1, 0])}
    logits = np.array([[0.0, 5.0], [0.0, 5.0]])  # right, then wrong
    grid = report.prediction_images("classification", batch, logits)["predictions/classification"]
    assert grid.shape == (8, 8 + 2 + 8, 3)  # two framed 8x8 images, 2 pixels apart
    np.testing.assert_allclose(grid[0, 0], images.CORRECT)
    np.testing.assert_allclose(grid[0, 10], images.WRONG)
    assert grid.min() >= 0 and grid.max() <= 1


def test_denoising_images_subtract_the_predicted_noise():
    clean = np.full((1, 4, 4, 1), 0.5, np.float32)
    noise = np.full_like(clean, 0.25)
    batch = {"image": clean + noise, "target": clean}
    grid = report.prediction_images("denoising", batch, noise, predicts_noise=True)
    row = grid["predictions/denoising"]
    assert row.shape == (4, 3 * 4 + 2 * 2, 3)
    np.testing.assert_allclose(row[:, 6:10], 0.5)  # the denoised panel equals the clean one


def test_segmentation_images_crop_to_a_smaller_output():
    batch = {"image": np.ones((2, 8, 8, 1), np.float32), "label": np.ones((2, 8, 8), np.int32)}
    logits = np.zeros((2, 4, 4, 3), np.float32)
    grid = report.prediction_images("segmentation", batch, logits, num_classes=3)
    assert grid["predictions/segmentation"].shape == (2 * 4 + 2, 3 * 4 + 2 * 2, 3)


def test_prediction_images_reach_tensorboard(tmp_path):
    config = base.get_config()
    images_uint8 = np.random.default_rng(0).integers(0, 255, (4, 28, 28, 1), dtype=np.uint8)
    source = ArraySource(images_uint8, np.arange(4) % 10, num_classes=10)
    model = models.create("lenet5", num_classes=10)
    init = jax.jit(lambda rng: model.init(rng, jnp.zeros((1, 28, 28, 1)), train=False))
    variables = init(jax.random.PRNGKey(0))
    drawn = report.PredictionImages(config, model, source, count=4)(variables)
    assert drawn["predictions/classification"].shape == (32, 4 * 32 + 3 * 2, 3)
    writer = MetricWriter(tmp_path)
    writer.write_images(1, drawn)
    writer.close()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
